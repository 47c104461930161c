"""PSPNet-ResNet-101 (dilated, output stride 8, deep stem, aux head on res4): the APD teacher.

The model of the APD repo's ``model/pspnet.py`` (docs/METHOD.md §4); 19 classes (Cityscapes) by default.
The head's input shapes follow the backbone node (``dilated_resnet_output_shape`` of its depth, widths,
stride and features, by interpolation), so another ResNet is one assignment: ``model.backbone.depth = 18``
(BasicBlock: res4/res5 with 256/512 channels instead of 1024/2048). Another backbone family replaces
``model.sem_seg_head.input_shape`` too (see ``configs/cityscapes/pspnet_mbv2.py``).

Norm: the head follows ``model.backbone.norm``: "SyncBN", as the recipe (8 images on 4 GPUs; plain BN in one
process). On CPU with several processes use "naiveSyncBN" (Detectron2's NaiveSyncBatchNorm, gloo).
Inference is whole-image; recipes enable the APD test protocol with e.g.
``model.sliding_window = dict(crop_size=(713, 713), flip=True)`` (stride: ceil(2/3·crop)).
"""
from detectron2.config import LazyCall as L

from apd.modeling.backbone.dilated_resnet import DilatedResNet, dilated_resnet_output_shape
from apd.modeling.heads.psp_head import PSPHead
from apd.modeling.meta_arch.segmentor import Segmentor

from ..data.constants import constants as _constants

model = L(Segmentor)(
    backbone=L(DilatedResNet)(
        depth=101,
        output_stride=8,
        deep_stem=True,
        stem_width=64,
        base_channels=64,
        norm="SyncBN",
        out_features=["res4", "res5"],
    ),
    sem_seg_head=L(PSPHead)(
        # ResNet-50/101 at output stride 8: res4 = layer3 (1024 ch), res5 = layer4 (2048 ch).
        input_shape=L(dilated_resnet_output_shape)(
            depth="${...backbone.depth}",
            output_stride="${...backbone.output_stride}",
            deep_stem="${...backbone.deep_stem}",
            stem_width="${...backbone.stem_width}",
            base_channels="${...backbone.base_channels}",
            out_features="${...backbone.out_features}",
        ),
        num_classes=_constants.cityscapes_num_classes,  # dataset configs set their own
        in_feature="res5",
        bins=(1, 2, 3, 6),
        channels=512,
        dropout=0.1,
        norm="${..backbone.norm}",
        ignore_value=_constants["ignore_value"],
        loss_weight=1.0,
        # The repo resizes with align_corners=True; its crops (713, 473) are 8k+1 so that the
        # stride-8 grid lands on the corner pixels.
        align_corners=True,
        aux_in_feature="res4",
        aux_channels=256,
        aux_weight=0.4,
    ),
    pixel_mean=_constants["imagenet_rgb256_mean"],
    pixel_std=_constants["imagenet_rgb256_std"],
    input_format="RGB",
    sliding_window=None,
)
