"""APDHead: the adapters of Adaptive Perspective Distillation and its three loss terms (docs/METHOD.md §2-§3).

Shape letters: B images, C_s / C_t student / teacher channels, E embedding channels, K classes,
h×w feature grid, H×W target grid.
"""
from typing import Dict, List

import torch

from ..heads.outputs import SegHeadOutputs
from ..losses import apd_loss_terms
from .adapters import AdaptedAPDTerm
from .protocol import HEAD_OUTPUTS, ExpectedFeature
from .terms import resize_to

__all__ = ["APDHead"]

_SCOPES = ("image", "batch")


class APDHead(AdaptedAPDTerm):
    """Owns the student adapter g_s and the teacher adapter g_t and returns the unweighted APD terms.

    - ``loss_apd`` and ``loss_pa`` train the student and g_s (never g_t: the teacher side is detached).
    - ``loss_adapt`` trains only g_t: the teacher feature is detached *before* g_t, and the loss does not
      depend on the student. Step g_t with its own optimiser (``second_optimizer_parameters()``).
    So one backward of the weighted sum of all terms gives every parameter exactly its gradient.
    """

    loss_keys = ("loss_apd", "loss_pa", "loss_adapt")
    second_optimizer_keys = ("loss_adapt",)
    inputs = frozenset({HEAD_OUTPUTS})

    def __init__(
        self,
        *,
        student_channels: int,
        teacher_channels: int,
        num_classes: int,
        hidden_dim: int = 512,
        embed_dim: int = 512,
        tau: float = 10.0,
        scope: str = "image",
        ignore_value: int = 255,
    ):
        """
        Args:
            student_channels: C_s, channels of the student's ``SegHeadOutputs.feature``.
            teacher_channels: C_t, the same for the teacher.
            num_classes: K.
            hidden_dim, embed_dim: D and E of both 1×1-conv adapters (512 in the paper's code).
            tau: similarity scale τ (10).
            scope: ``"image"`` (one perspective per image) or ``"batch"`` (official code's per-device
                batch perspective).
            ignore_value: label without a class (255).

        Raises:
            ValueError: an unknown ``scope``, or what :class:`~.adapters.AdaptedAPDTerm` refuses.
        """
        if scope not in _SCOPES:
            raise ValueError(f"scope must be one of {_SCOPES}, got {scope!r}")
        super().__init__(student_channels=student_channels, teacher_channels=teacher_channels, num_classes=num_classes,
            hidden_dim=hidden_dim, embed_dim=embed_dim, tau=tau, adapter="conv")
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

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, tau={self.tau}, scope={self.scope!r}, "
            f"ignore_value={self.ignore_value}"
        )
