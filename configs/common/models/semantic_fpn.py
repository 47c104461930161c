"""Semantic FPN (Panoptic FPN's semantic branch) on a plain ResNet-50 (output stride 32).

Detectron2's ``FPN`` over ``DilatedResNet(output_stride=32, deep_stem=False)`` (torchvision layout),
p2..p5 fused at stride 4 by :class:`FPNSegHead` (128 channels, GroupNorm). The head reads the FPN
width through ``${....backbone.out_channels}``, so another ResNet only changes
``model.backbone.bottom_up.depth``.
"""
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone import FPN

from apd.modeling.backbone.dilated_resnet import DilatedResNet
from apd.modeling.heads.fpn_head import FPNSegHead
from apd.modeling.meta_arch.segmentor import Segmentor

from ..data.constants import constants as _constants

model = L(Segmentor)(
    backbone=L(FPN)(
        bottom_up=L(DilatedResNet)(
            depth=50,
            output_stride=32,
            deep_stem=False,
            norm="BN",
            out_features=["res2", "res3", "res4", "res5"],
        ),
        in_features=["res2", "res3", "res4", "res5"],
        out_channels=256,
        top_block=None,
    ),
    sem_seg_head=L(FPNSegHead)(
        input_shape={
            "p2": L(ShapeSpec)(channels="${....backbone.out_channels}", stride=4),
            "p3": L(ShapeSpec)(channels="${....backbone.out_channels}", stride=8),
            "p4": L(ShapeSpec)(channels="${....backbone.out_channels}", stride=16),
            "p5": L(ShapeSpec)(channels="${....backbone.out_channels}", stride=32),
        },
        num_classes=_constants.cityscapes_num_classes,  # dataset configs set their own
        conv_dims=128,
        common_stride=4,
        norm="GN",
        ignore_value=_constants["ignore_value"],
        loss_weight=1.0,
    ),
    pixel_mean=_constants["imagenet_rgb256_mean"],
    pixel_std=_constants["imagenet_rgb256_std"],
    input_format="RGB",
    sliding_window=None,
)
