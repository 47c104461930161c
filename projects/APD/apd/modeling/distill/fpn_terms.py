"""Distillation terms on the FPN features of R-CNNs: dense APD (docs/METHOD.md §6b) and feature imitation.

Both read :class:`~.detection_inputs.DetectionOutputs` ``features`` (level → B×C×h×w) of the student and
the teacher and return unweighted ``loss_*`` values averaged over the configured levels (so a weight
does not depend on the number of levels). The teacher's features are detached; a teacher grid that
differs from the student's (other padding) is resized onto it.

Shape letters: B images, C_s / C_t FPN channels, E embedding channels, K foreground classes, h×w grid of
one level, H×W padded input grid.
"""
from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn

from ..losses import apd_loss_terms, feature_mimic_loss
from ..losses.prototypes import downsample_labels, upcast_half
from .adapters import AdaptedAPDTerm, check_channels
from .class_maps import IGNORE_CLASS
from .detection_inputs import DetectionOutputs, DetectionTargets
from .protocol import CLASS_MAPS, FPN_FEATURES, DistillationTerm, ExpectedFeature
from .terms import resize_to

__all__ = ["FPN_LEVELS", "FPNAPDHead", "FPNImitationHead", "masked_feature_mimic_loss"]

# Every level Detectron2's FPN R-CNNs read: the ROI poolers p2–p5, the RPN p2–p6.
FPN_LEVELS = ("p2", "p3", "p4", "p5", "p6")


def _check_levels(levels: Sequence[str]) -> Tuple[str, ...]:
    levels = tuple(str(level) for level in levels)
    if not levels or len(set(levels)) != len(levels):
        raise ValueError(f"levels must be a non-empty list of distinct FPN level names, got {levels}")
    return levels


def _level_features(levels: Sequence[str], student_channels: int, teacher_channels: int) -> List[ExpectedFeature]:
    """Both models' ``levels`` with the configured channels (for :meth:`DistillationTerm.expected_features`)."""
    return [ExpectedFeature(model, level, f"{model}_channels", channels)
            for level in levels
            for model, channels in (("student", student_channels), ("teacher", teacher_channels))]


def _level_pair(student: DetectionOutputs, teacher: DetectionOutputs, level: str):
    s_feat = student.features[level]
    t_feat = resize_to(teacher.features[level].detach(), s_feat.shape[-2:])
    return s_feat, t_feat


class FPNAPDHead(AdaptedAPDTerm):
    """Dense APD on FPN levels with ground-truth class maps (background = class K, padding ignored).

    Per level, the student's and the teacher's features go through one adapter pair shared across
    levels (g_s, g_t: 1×1 conv C→D→E as in segmentation); the class map is nearest-downsampled to the
    level's grid; :func:`apd.modeling.losses.apd_loss_terms` (unchanged; K+1 classes, one perspective per
    image) gives ``loss_apd``, ``loss_pa`` and ``loss_adapt``, each averaged over the levels.
    ``loss_adapt`` reaches only g_t (step it with the adapter optimiser), the others only the student
    and g_s.
    """

    loss_keys = ("loss_apd", "loss_pa", "loss_adapt")
    second_optimizer_keys = ("loss_adapt",)
    inputs = frozenset({FPN_FEATURES, CLASS_MAPS})

    def __init__(
        self,
        *,
        student_channels: int,
        teacher_channels: int,
        num_classes: int,
        hidden_dim: int = 512,
        embed_dim: int = 512,
        tau: float = 10.0,
        levels: Sequence[str] = FPN_LEVELS,
    ):
        """
        Args:
            student_channels: C_s, the student's FPN width (256 in Detectron2's FPN).
            teacher_channels: C_t, the teacher's.
            num_classes: K foreground classes (the perspective has K+1 with the background).
            hidden_dim, embed_dim: D and E of both 1×1-conv adapters (512, as in segmentation).
            tau: similarity scale τ (10).
            levels: FPN levels to distil (default: all five the detector reads).
        """
        super().__init__(student_channels=student_channels, teacher_channels=teacher_channels, num_classes=num_classes,
            hidden_dim=hidden_dim, embed_dim=embed_dim, tau=tau, adapter="conv")
        self.levels = _check_levels(levels)

    def expected_features(self) -> List[ExpectedFeature]:
        return _level_features(self.levels, self.student_channels, self.teacher_channels) + [
            ExpectedFeature("student", "classes", "num_classes", self.num_classes)]

    def forward(
        self, student: DetectionOutputs, teacher: DetectionOutputs, targets: DetectionTargets
    ) -> Dict[str, torch.Tensor]:
        totals: Dict[str, torch.Tensor] = {}
        for level in self.levels:
            s_feat, t_feat = _level_pair(student, teacher, level)
            labels = downsample_labels(targets.class_maps, s_feat.shape[-2:])
            terms = apd_loss_terms(
                self.student_adapter(s_feat),
                self.teacher_adapter(t_feat),
                labels,
                self.num_classes + 1,
                tau=self.tau,
                scope="image",
                ignore_value=IGNORE_CLASS,
            )
            for key, value in terms.items():
                totals[key] = totals[key] + value if key in totals else value
        return {key: value / len(self.levels) for key, value in totals.items()}

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes} (+ background), levels={self.levels}, tau={self.tau}"


def masked_feature_mimic_loss(
    student_feat_adapted: torch.Tensor, teacher_feat: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Squared error averaged over the channels and the ``mask`` positions: Σ_m mean_c (a − t)² / |m|.

    Args:
        student_feat_adapted: B×C×h×w, the student feature after its adapter.
        teacher_feat: B×C×h×w, detached inside.
        mask: B×h×w bool, the positions that count.

    Returns:
        0-dim tensor; 0 (still in the graph) when the mask is empty.
    """
    if student_feat_adapted.shape != teacher_feat.shape or mask.shape != (
        student_feat_adapted.shape[0],
        *student_feat_adapted.shape[2:],
    ):
        raise ValueError(
            f"masked_feature_mimic_loss: student {tuple(student_feat_adapted.shape)}, teacher "
            f"{tuple(teacher_feat.shape)} and mask {tuple(mask.shape)} do not match (B×C×h×w, B×h×w)"
        )
    diff = (upcast_half(student_feat_adapted) - upcast_half(teacher_feat.detach())).pow(2).mean(dim=1)
    weights = mask.to(diff.dtype)
    return (diff * weights).sum() / weights.sum().clamp(min=1.0)


class FPNImitationHead(DistillationTerm):
    """FPN feature imitation (the detection baseline): per level, a 1×1 conv adapter maps the student's
    feature to the teacher's channels (one adapter shared across levels, trained with the student), then
    the MSE to the teacher's feature → ``loss_fpn_mimic`` (mean over levels).

    With ``gt_only`` the error counts only on pixels of ground-truth objects (class map in [0, K)),
    as fine-grained / region-restricted imitation methods do.
    """

    loss_keys = ("loss_fpn_mimic",)

    def __init__(
        self,
        *,
        student_channels: int,
        teacher_channels: int,
        levels: Sequence[str] = FPN_LEVELS,
        gt_only: bool = False,
    ):
        """
        Args:
            student_channels: C_s, the student's FPN width.
            teacher_channels: C_t, the teacher's FPN width.
            levels: FPN levels to imitate (default: all five).
            gt_only: restrict the error to ground-truth object pixels.
        """
        super().__init__()
        check_channels(student_channels=student_channels, teacher_channels=teacher_channels)
        self.student_channels, self.teacher_channels = int(student_channels), int(teacher_channels)
        self.levels = _check_levels(levels)
        self.gt_only = bool(gt_only)
        self.adapter = nn.Conv2d(self.student_channels, self.teacher_channels, kernel_size=1, bias=True)

    @property
    def inputs(self):
        return frozenset({FPN_FEATURES, CLASS_MAPS} if self.gt_only else {FPN_FEATURES})

    def expected_features(self) -> List[ExpectedFeature]:
        return _level_features(self.levels, self.student_channels, self.teacher_channels)

    def forward(
        self, student: DetectionOutputs, teacher: DetectionOutputs, targets: DetectionTargets
    ) -> Dict[str, torch.Tensor]:
        total = None
        for level in self.levels:
            s_feat, t_feat = _level_pair(student, teacher, level)
            adapted = self.adapter(s_feat)
            if self.gt_only:
                labels = downsample_labels(targets.class_maps, s_feat.shape[-2:])
                objects = (labels >= 0) & (labels < targets.num_classes)
                loss = masked_feature_mimic_loss(adapted, t_feat, objects)
            else:
                loss = feature_mimic_loss(adapted, t_feat)
            total = loss if total is None else total + loss
        return {"loss_fpn_mimic": total / len(self.levels)}

    def extra_repr(self) -> str:
        return f"levels={self.levels}, gt_only={self.gt_only}"
