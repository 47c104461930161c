"""Pure loss functions (no modules, no weights, no loss weights) for APD and the baselines."""
from .apd import apd_loss_terms, apd_point_loss_terms
from .cwd import channel_wise_divergence_loss
from .dist import dist_loss, pearson_correlation
from .fitnet import feature_mimic_loss
from .ifvd import ifvd_loss
from .kd import logit_kd_loss
from .prototypes import (
    class_means,
    class_prototypes,
    downsample_labels,
    l2_normalize,
    perspective_logits,
    upcast_half,
    valid_label_mask,
)
from .resize import ALIGN_CORNERS, resize_to
from .skd import pairwise_affinity_loss

__all__ = [
    "apd_loss_terms",
    "apd_point_loss_terms",
    "logit_kd_loss",
    "channel_wise_divergence_loss",
    "dist_loss",
    "pearson_correlation",
    "pairwise_affinity_loss",
    "ifvd_loss",
    "feature_mimic_loss",
    "class_means",
    "class_prototypes",
    "downsample_labels",
    "l2_normalize",
    "perspective_logits",
    "upcast_half",
    "valid_label_mask",
    "ALIGN_CORNERS",
    "resize_to",
]
