"""Distillation terms (modules with adapters) that turn student/teacher head outputs into loss terms."""
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

__all__ = [
    "ConvAdapter",
    "MLPAdapter",
    "APDHead",
    "DistillationTerm",
    "LogitKDHead",
    "CWDHead",
    "DISTHead",
    "SKDHead",
    "IFVDHead",
    "FitNetHead",
    "ALIGN_CORNERS",
    "resize_to",
]
