"""Segmentation heads with the ``layers()``/``losses()`` contract (docs/ARCHITECTURE.md).

They are built through LazyConfig with keyword arguments; there is no yacs (``get_cfg``) path, so
nothing is registered in ``SEM_SEG_HEADS_REGISTRY``.
"""
from .outputs import SegHeadOutputs
from .aux_head import FCNAuxHead
from .psp_head import PSPHead
from .aspp_head import ASPPHead
from .fpn_head import FPNSegHead

__all__ = ["SegHeadOutputs", "FCNAuxHead", "PSPHead", "ASPPHead", "FPNSegHead"]
