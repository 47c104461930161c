"""Distillation terms on the R-CNN box branch, read on the student's sampled proposals (docs/METHOD.md §6).

Both models pool the *same* boxes (the student's sampled proposals), so ROI r of the student and ROI r of
the teacher correspond, as pixels do in segmentation. The terms read
:class:`~.detection_inputs.DetectionOutputs` ``roi_features`` / ``roi_scores`` and the ROIs'
``gt_classes`` (background = K) from :class:`~.detection_inputs.DetectionTargets`.

- :class:`ROIAPDHead`: APD with ROIs as points (one perspective per image), the ablation of the dense
  FPN variant → ``loss_roi_apd``, ``loss_roi_pa``, ``loss_roi_adapt``.
- :class:`ROILogitKDHead`: logit KD on the (K+1)-way box scores → ``loss_kd``.

Shape letters: R sampled ROIs over the batch, C_s / C_t box-head widths, K foreground classes.
"""
from typing import Dict, List

import torch

from ..losses import apd_point_loss_terms, logit_kd_loss
from .adapters import AdaptedAPDTerm
from .detection_inputs import DetectionOutputs, DetectionTargets
from .protocol import ROIS, DistillationTerm, ExpectedFeature

__all__ = ["ROIAPDHead", "ROILogitKDHead"]

_NO_CLASS = -1


class ROIAPDHead(AdaptedAPDTerm):
    """ROI-level APD: MLP adapters g_s, g_t on the box-head vectors, APD terms per image
    (:func:`apd.modeling.losses.apd_point_loss_terms`). Background ROIs have no prototype but stay rows
    of the KL, unless ``include_background_proto`` gives them class K. ``loss_roi_adapt`` trains only
    g_t (adapter optimiser)."""

    loss_keys = ("loss_roi_apd", "loss_roi_pa", "loss_roi_adapt")
    second_optimizer_keys = ("loss_roi_adapt",)
    inputs = frozenset({ROIS})

    def __init__(
        self,
        *,
        student_channels: int,
        teacher_channels: int,
        num_classes: int,
        hidden_dim: int = 512,
        embed_dim: int = 512,
        tau: float = 10.0,
        include_background_proto: bool = False,
    ):
        """
        Args:
            student_channels: C_s, the student's box-head output width (1024 in Detectron2's FC head).
            teacher_channels: C_t, the teacher's.
            num_classes: K foreground classes.
            hidden_dim, embed_dim: D and E of both MLP adapters.
            tau: similarity scale τ (10).
            include_background_proto: background ROIs form class K of the perspective.
        """
        super().__init__(student_channels=student_channels, teacher_channels=teacher_channels, num_classes=num_classes,
            hidden_dim=hidden_dim, embed_dim=embed_dim, tau=tau, adapter="mlp")
        self.include_background_proto = bool(include_background_proto)

    def expected_features(self) -> List[ExpectedFeature]:
        return [ExpectedFeature("student", "roi_features", "student_channels", self.student_channels),
                ExpectedFeature("teacher", "roi_features", "teacher_channels", self.teacher_channels),
                ExpectedFeature("student", "classes", "num_classes", self.num_classes)]

    def forward(
        self, student: DetectionOutputs, teacher: DetectionOutputs, targets: DetectionTargets
    ) -> Dict[str, torch.Tensor]:
        labels = targets.roi_labels
        num_classes = self.num_classes
        if self.include_background_proto:
            num_classes += 1
        else:
            labels = labels.masked_fill(labels == self.num_classes, _NO_CLASS)
        terms = apd_point_loss_terms(
            self.student_adapter(student.roi_features),
            self.teacher_adapter(teacher.roi_features.detach()),
            labels,
            targets.roi_image_ids,
            num_classes,
            tau=self.tau,
            ignore_value=_NO_CLASS,
        )
        return {"loss_roi_apd": terms["loss_apd"], "loss_roi_pa": terms["loss_pa"], "loss_roi_adapt": terms["loss_adapt"]}

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, tau={self.tau}, include_background_proto={self.include_background_proto}"


class ROILogitKDHead(DistillationTerm):
    """Logit KD on the box classifier's (K+1)-way scores of the shared ROIs → ``loss_kd``: per ROI
    KL(teacher‖student) at temperature T (× T²), element mean (÷ (K+1)) as in segmentation."""

    loss_keys = ("loss_kd",)
    inputs = frozenset({ROIS})

    def __init__(self, *, temperature: float = 1.0):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def expected_features(self) -> List[ExpectedFeature]:
        return [ExpectedFeature(model, "roi_scores") for model in ("student", "teacher")]

    def forward(
        self, student: DetectionOutputs, teacher: DetectionOutputs, targets: DetectionTargets
    ) -> Dict[str, torch.Tensor]:
        scores = student.roi_scores
        if scores.shape[0] == 0:
            return {"loss_kd": scores.sum() * 0.0}  # no ROI: a zero that still backpropagates
        if teacher.roi_scores.shape != scores.shape:
            raise ValueError(
                f"ROI logit KD needs the same classes in teacher and student: scores "
                f"{tuple(teacher.roi_scores.shape)} vs {tuple(scores.shape)}"
            )
        loss = logit_kd_loss(
            scores[:, :, None, None], teacher.roi_scores.detach()[:, :, None, None], temperature=self.temperature
        )
        return {"loss_kd": loss}

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
