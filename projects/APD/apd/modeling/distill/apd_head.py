"""APDHead: the adapters of Adaptive Perspective Distillation and its three loss terms (docs/METHOD.md §2-§3).

Shape letters: B images, C_s / C_t student / teacher channels, E embedding channels, K classes,
R points (ROIs), h×w feature grid, H×W target grid.
"""
from typing import Dict, List

import torch

from ..heads.outputs import SegHeadOutputs
from ..losses import apd_loss_terms, apd_point_loss_terms
from .adapters import AdaptedAPDTerm
from .protocol import HEAD_OUTPUTS, ExpectedFeature
from .terms import resize_to

__all__ = ["APDHead"]

_SCOPES = ("image", "batch")


class APDHead(AdaptedAPDTerm):
    """Owns the student adapter g_s and the teacher adapter g_t and returns the unweighted APD terms.

    - ``loss_apd`` and ``loss_pa`` train the student and g_s (never g_t: the teacher side is detached).
    - ``loss_adapt`` trains only g_t: the teacher feature is detached *before* g_t, and the loss does not
      depend on the student. Step g_t with its own optimiser (``teacher_adapter_parameters()``).
    So one backward of the weighted sum of all terms gives every parameter exactly its gradient.
    """

    loss_keys = ("loss_apd", "loss_pa", "loss_adapt")
    second_optimizer_keys = ("loss_adapt",)
    inputs = frozenset({HEAD_OUTPUTS})

    def __init__(self, *, scope: str = "image", ignore_value: int = 255, **kwargs):
        """
        Args:
            scope: ``"image"`` (one perspective per image) or ``"batch"`` (official code's per-device
                batch perspective); dense :meth:`forward` only — points always use one per image.
            ignore_value: label without a class. Dense targets: 255. Points: any value outside [0, K)
                already has no class, so Detectron2's ``gt_classes`` can be passed unchanged
                (background = K); ``ignore_value`` is one more "no class" id.
            **kwargs: the adapters, K and τ: ``student_channels`` (C_s, channels of the student's
                ``SegHeadOutputs.feature``, or of its ROI vectors with ``adapter="mlp"``),
                ``teacher_channels``, ``num_classes``, ``hidden_dim``, ``embed_dim``, ``tau``, ``adapter``
                (``"conv"`` for :meth:`forward`, ``"mlp"`` for :meth:`forward_points`); see
                :class:`~.adapters.AdaptedAPDTerm`.
        """
        if scope not in _SCOPES:
            raise ValueError(f"scope must be one of {_SCOPES}, got {scope!r}")
        super().__init__(**kwargs)
        self.scope = scope
        self.ignore_value = int(ignore_value)

    def expected_features(self) -> List[ExpectedFeature]:
        return [ExpectedFeature("student", "feature", "student_channels", self.student_channels),
                ExpectedFeature("teacher", "feature", "teacher_channels", self.teacher_channels),
                ExpectedFeature("student", "classes", "num_classes", self.num_classes)]

    def forward(
        self, student: SegHeadOutputs, teacher: SegHeadOutputs, targets: torch.Tensor
    ) -> Dict[str, torch.Tensor]:
        """
        Args:
            student: student head outputs; ``feature`` B×C_s×h×w (post-dropout in training).
            teacher: teacher head outputs; ``feature`` B×C_t×h'×w' (resized to h×w if it differs).
            targets: B×H×W int64, padded with ``ignore_value``.

        Returns:
            {"loss_apd", "loss_pa", "loss_adapt"}: unweighted 0-dim tensors (see ``apd_loss_terms``).
        """
        if self.adapter != "conv":
            raise RuntimeError(
                f"APDHead(adapter={self.adapter!r}) adapts R×C vectors; call forward_points, or build "
                "it with adapter='conv' for dense features"
            )
        s_feat = student.feature
        t_feat = resize_to(teacher.feature.detach(), s_feat.shape[-2:])
        return apd_loss_terms(
            self.student_adapter(s_feat),
            self.teacher_adapter(t_feat),
            targets,
            self.num_classes,
            tau=self.tau,
            scope=self.scope,
            ignore_value=self.ignore_value,
        )

    def forward_points(
        self,
        student_emb: torch.Tensor,
        teacher_emb: torch.Tensor,
        labels: torch.Tensor,
        image_ids: torch.Tensor,
    ) -> Dict[str, torch.Tensor]:
        """APD on points (ROIs of an R-CNN), one perspective per image.

        Args:
            student_emb: R×C_s student vectors (e.g. box-head outputs on the shared sampled boxes).
            teacher_emb: R×C_t teacher vectors on the same boxes, same order; detached here.
            labels: R int64. [0, K) = class; anything else (background id K, ``ignore_value``, -1) is
                "no class": no prototype, no CE, but a KL row.
            image_ids: R int64, index of each point's image in the batch.

        Returns:
            {"loss_apd", "loss_pa", "loss_adapt"} (see ``apd_point_loss_terms``).
        """
        if self.adapter != "mlp":
            raise RuntimeError(
                f"APDHead(adapter={self.adapter!r}) adapts dense maps; build it with adapter='mlp' to "
                "call forward_points"
            )
        return apd_point_loss_terms(
            self.student_adapter(student_emb),
            self.teacher_adapter(teacher_emb.detach()),
            labels,
            image_ids,
            self.num_classes,
            tau=self.tau,
            ignore_value=self.ignore_value,
        )

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, tau={self.tau}, scope={self.scope!r}, "
            f"ignore_value={self.ignore_value}, adapter={self.adapter!r}"
        )
