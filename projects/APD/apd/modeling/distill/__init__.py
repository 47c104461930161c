"""Distillation terms: the protocol every term follows (:mod:`.protocol`) and every term of this package,
segmentation (APD, KD, CWD, DIST, SKD, IFVD, FitNet, PKD), FPN (dense APD, imitation, PKD) and ROI (APD,
logit KD)."""
from . import protocol, terms
from .adapters import ConvAdapter, MLPAdapter
from .apd_head import APDHead
from .fpn_terms import FPNAPDHead, FPNImitationHead
from .pkd_terms import FPNPKDHead, PKDHead  # noqa: F401  (registers PKD: its two terms and their loss)
from .protocol import (
    CLASS_MAPS,
    FPN_FEATURES,
    HEAD_OUTPUTS,
    INPUTS,
    ROIS,
    DistillationTerm,
    ExpectedFeature,
    FeatureShape,
    FeatureShapes,
    TermCompatibilityError,
    check_expected_features,
    check_term_declaration,
)
from .roi_terms import ROIAPDHead, ROILogitKDHead
from .terms import ALIGN_CORNERS, CWDHead, DISTHead, FitNetHead, IFVDHead, LogitKDHead, SKDHead, resize_to

# The protocol, the adapters, every term, the resize rule.
__all__ = [
    *protocol.__all__,
    "ConvAdapter",
    "MLPAdapter",
    "APDHead",
    "FPNAPDHead",
    "FPNImitationHead",
    "PKDHead",
    "FPNPKDHead",
    "ROIAPDHead",
    "ROILogitKDHead",
    *[n for n in terms.__all__ if n != "DistillationTerm"],
]
