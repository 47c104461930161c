"""What :class:`~apd.modeling.meta_arch.rcnn_distiller.RCNNDistiller` hands to its distillation terms.

The detection counterpart of :class:`~apd.modeling.heads.outputs.SegHeadOutputs`: a term's
``forward(student, teacher, targets)`` gets two :class:`DetectionOutputs` and one
:class:`DetectionTargets`. Fields no term asks for are None (a term asks for ROI outputs / class maps by
naming :data:`~.protocol.ROIS` / :data:`~.protocol.CLASS_MAPS` in its ``inputs``).

Shape letters: B images, C channels, h×w grid of an FPN level, H×W padded input grid, R sampled ROIs
over the batch, K foreground classes (background = K).
"""
from dataclasses import dataclass
from typing import Dict, Optional

import torch

__all__ = ["DetectionOutputs", "DetectionTargets"]


@dataclass
class DetectionOutputs:
    """One detector's outputs on a training batch.

    Attributes:
        features: FPN level name ("p2", ...) → B×C×h×w. The teacher's are computed under no_grad on the
            same images (its own normalisation); the student's carry gradient.
        roi_features: R×C box-head outputs on the *student's* sampled proposals (both models pool the
            same boxes), or None.
        roi_scores: R×(K+1) box-classifier scores on those proposals, or None.
    """

    features: Dict[str, torch.Tensor]
    roi_features: Optional[torch.Tensor] = None
    roi_scores: Optional[torch.Tensor] = None


@dataclass
class DetectionTargets:
    """Ground truth of a training batch, in the forms the terms read.

    Attributes:
        num_classes: K.
        class_maps: B×H×W int64 at the student's padded input grid: [0, K) object class, K background,
            -1 padding (:func:`apd.modeling.distill.class_maps.batch_class_maps`), or None.
        roi_labels: R int64 ``gt_classes`` of the sampled ROIs (K = background), or None.
        roi_image_ids: R int64 image index of each ROI, or None.
    """

    num_classes: int
    class_maps: Optional[torch.Tensor] = None
    roi_labels: Optional[torch.Tensor] = None
    roi_image_ids: Optional[torch.Tensor] = None
