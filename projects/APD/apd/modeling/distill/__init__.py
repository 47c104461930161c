"""Distillation terms (modules with adapters) that turn student/teacher head outputs into loss terms."""
from . import terms
from .adapters import ConvAdapter, MLPAdapter
from .apd_head import APDHead
from .terms import (
    ALIGN_CORNERS,
    CWDHead,
    DISTHead,
    DistillationTerm,
    FitNetHead,
    IFVDHead,
    LogitKDHead,
    SKDHead,
    resize_to,
)

# The adapters, APD, then every name of ``terms`` (the protocol, the baselines and the resize rule).
__all__ = ["ConvAdapter", "MLPAdapter", "APDHead", *terms.__all__]
