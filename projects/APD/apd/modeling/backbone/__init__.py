"""Segmentation backbones; importing this package registers their builders in BACKBONE_REGISTRY."""
from .dilated_resnet import (
    DilatedResNet,
    add_dilated_resnet_config,
    build_dilated_resnet_backbone,
)
from .mobilenet_v2 import (
    DilatedMobileNetV2,
    add_dilated_mobilenet_v2_config,
    build_dilated_mobilenet_v2_backbone,
)


def add_apd_backbone_config(cfg):
    """Add ``cfg.MODEL.DILATED_RESNET`` and ``cfg.MODEL.DILATED_MOBILENET_V2`` to a yacs config."""
    add_dilated_resnet_config(cfg)
    add_dilated_mobilenet_v2_config(cfg)


__all__ = [
    "DilatedResNet",
    "DilatedMobileNetV2",
    "add_apd_backbone_config",
    "build_dilated_resnet_backbone",
    "build_dilated_mobilenet_v2_backbone",
]
