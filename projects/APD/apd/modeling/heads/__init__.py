"""Segmentation heads; importing this package registers them in ``SEM_SEG_HEADS_REGISTRY``."""
from .outputs import SegHeadOutputs
from .aux_head import FCNAuxHead
from .psp_head import PSPHead
from .aspp_head import ASPPHead
from .fpn_head import FPNSegHead

__all__ = ["SegHeadOutputs", "FCNAuxHead", "PSPHead", "ASPPHead", "FPNSegHead"]
