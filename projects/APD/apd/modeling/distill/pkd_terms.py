"""PKD terms (Cao et al., NeurIPS 2022; loss: :func:`apd.modeling.losses.pkd.pkd_loss`): feature imitation
with the Pearson correlation, for segmentation (the classifier feature) and for R-CNNs (every FPN level).

The paper and mmrazor's configs distil FPN levels of equal width (256 channels), with no adapter. When the
student's width differs from the teacher's, a 1×1 conv without bias maps the student's channels to the
teacher's (trained with the student), as the project's other feature terms do (FitNet, FPN imitation);
a bias would be a per-channel shift, which the standardisation removes. With equal widths there is no
adapter and the term has no parameters. The teacher's maps are detached and brought onto the student's
grid with the one resize rule (:func:`~.terms.resize_to`).

Shape letters: B images, C_s / C_t student / teacher channels, h×w grid.
"""
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from ..losses.pkd import PKD_SCOPES, pkd_loss
from .adapters import check_channels
from .fpn_terms import FPN_LEVELS, _check_levels, _level_features, _level_pair
from .protocol import FPN_FEATURES, HEAD_OUTPUTS, DistillationTerm, ExpectedFeature
from .terms import resize_to

__all__ = ["PKDHead", "FPNPKDHead"]


def _channel_adapter(student_channels: int, teacher_channels: int) -> Optional[nn.Conv2d]:
    check_channels(student_channels=student_channels, teacher_channels=teacher_channels)
    if int(student_channels) == int(teacher_channels):
        return None
    return nn.Conv2d(int(student_channels), int(teacher_channels), kernel_size=1, bias=False)


def _check_scope(scope: str) -> str:
    if scope not in PKD_SCOPES:
        raise ValueError(f"scope must be one of {PKD_SCOPES}, got {scope!r}")
    return scope


class _PKDBase(DistillationTerm):
    """Channel adapter (when the widths differ) and the loss on one pair of maps."""

    loss_keys = ("loss_pkd",)

    def __init__(self, student_channels: int, teacher_channels: int, scope: str):
        super().__init__()
        self.adapter = _channel_adapter(student_channels, teacher_channels)
        self.student_channels, self.teacher_channels = int(student_channels), int(teacher_channels)
        self.scope = _check_scope(scope)

    def pair_loss(self, s_feat: torch.Tensor, t_feat: torch.Tensor) -> torch.Tensor:
        """``pkd_loss`` of B×C_s×h×w ``s_feat`` (through the adapter) and B×C_t×h×w ``t_feat`` (detached)."""
        if self.adapter is not None:
            s_feat = self.adapter(s_feat)
        return pkd_loss(s_feat, t_feat, scope=self.scope)

    def extra_repr(self) -> str:
        return f"student_channels={self.student_channels}, teacher_channels={self.teacher_channels}, scope={self.scope!r}"


class PKDHead(_PKDBase):
    """PKD on the segmentation classifier feature (``SegHeadOutputs.feature``) → ``loss_pkd``.

    The student's feature is taken after the head's Dropout2d in training (as SKD, IFVD and FitNet read
    it); the standardisation undoes the dropout's 1/(1 − p) rescaling of the kept channels.
    """

    inputs = frozenset({HEAD_OUTPUTS})

    def __init__(self, *, student_channels: int, teacher_channels: int, scope: str = "image"):
        """
        Args:
            student_channels: C_s of the student's ``SegHeadOutputs.feature`` (``sem_seg_head.channels``).
            teacher_channels: C_t of the teacher's. Different widths get a 1×1 adapter (module docstring).
            scope: statistics of the standardisation, ``"image"`` or ``"batch"`` (mmrazor's);
                see :func:`apd.modeling.losses.pkd.pkd_loss`.
        """
        super().__init__(student_channels, teacher_channels, scope)

    def expected_features(self) -> List[ExpectedFeature]:
        return [ExpectedFeature("student", "feature", "student_channels", self.student_channels),
                ExpectedFeature("teacher", "feature", "teacher_channels", self.teacher_channels)]

    def forward(self, student, teacher, targets) -> Dict[str, torch.Tensor]:
        t_feat = resize_to(teacher.feature.detach(), student.feature.shape[-2:])
        return {"loss_pkd": self.pair_loss(student.feature, t_feat)}


class FPNPKDHead(_PKDBase):
    """PKD on the FPN levels of an R-CNN → ``loss_pkd`` (the mean over the levels, so a weight does not
    depend on how many levels are distilled; mmrazor sums per-level losses, each with its own weight).

    One adapter is shared by all levels (FPN levels have one width). Reads only the FPN features: no class
    maps, no ROIs.
    """

    inputs = frozenset({FPN_FEATURES})

    def __init__(
        self,
        *,
        student_channels: int,
        teacher_channels: int,
        levels: Sequence[str] = FPN_LEVELS,
        scope: str = "image",
    ):
        """
        Args:
            student_channels: C_s, the student's FPN width (``backbone.out_channels``).
            teacher_channels: C_t, the teacher's. Different widths get a 1×1 adapter (module docstring).
            levels: FPN levels to distil (default: all five Detectron2's R-CNNs read; mmrazor's Faster
                R-CNN config distils the first four, p2–p5).
            scope: ``"image"`` or ``"batch"``; see :func:`apd.modeling.losses.pkd.pkd_loss`.
        """
        super().__init__(student_channels, teacher_channels, scope)
        self.levels = _check_levels(levels)

    def expected_features(self) -> List[ExpectedFeature]:
        return _level_features(self.levels, self.student_channels, self.teacher_channels)

    def forward(self, student, teacher, targets) -> Dict[str, torch.Tensor]:
        total = None
        for level in self.levels:
            s_feat, t_feat = _level_pair(student, teacher, level)
            loss = self.pair_loss(s_feat, t_feat)
            total = loss if total is None else total + loss
        return {"loss_pkd": total / len(self.levels)}

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, levels={self.levels}"
