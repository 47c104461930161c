"""Adaptive Perspective Distillation (APD) on Detectron2.

Importing ``apd`` registers everything the configs use: backbones and heads in Detectron2's
registries, the meta-architectures, and the datasets that Detectron2 does not ship.
"""
from . import data  # noqa: F401  (registers datasets)
from . import modeling  # noqa: F401  (registers backbones, heads, meta-architectures)

__version__ = "0.1.0"
