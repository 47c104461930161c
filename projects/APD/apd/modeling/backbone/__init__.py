"""Segmentation backbones (Detectron2 ``Backbone``s), built through LazyConfig.

There is no yacs (``get_cfg``) builder: every config of this project is a LazyConfig that calls the
classes with keyword arguments, so nothing is registered in ``BACKBONE_REGISTRY``.
"""
from .dilated_resnet import DilatedResNet
from .mobilenet_v2 import DilatedMobileNetV2

__all__ = ["DilatedResNet", "DilatedMobileNetV2"]
