"""Dilated ResNet backbone (PSPNet / DeepLab "-D8" style) for semantic segmentation.

Architecture
------------
``DilatedResNet`` is a ResNet-18/34 (BasicBlock) or -50/101/152 (Bottleneck, expansion 4) whose last
stages trade stride for dilation:

=============  ====================  ==================================
output_stride  layer3 (res4)         layer4 (res5)
=============  ====================  ==================================
8              stride 1, dilation 2  stride 1, dilation 4
16             stride 2 (standard)   stride 1, dilation 2
32             stride 2 (standard)   stride 2 (standard; FPN backbones)
=============  ====================  ==================================

Which 3×3 convolutions of a dilated stage carry the dilation follows the official APD code
(``model/pspnet.py``, docs/METHOD.md §4):

- default (``torchvision_dilation=False``, the PSPNet layout used for Cityscapes / ADE20K): every
  block of the stage uses the stage's dilation. Bottleneck dilates its 3×3 ``conv2``; BasicBlock
  dilates only its ``conv1`` (its ``conv2`` keeps dilation 1).
- ``torchvision_dilation=True`` (the official code's 60-class PASCAL-Context branch): the 3×3 conv
  that originally carried the stride (``conv2`` of a Bottleneck, ``conv1`` of a BasicBlock, first
  block only) keeps the *previous* stage's dilation and every other 3×3 conv of the stage gets the
  stage's dilation. For Bottleneck this is exactly torchvision's ``replace_stride_with_dilation``
  (layer3: 1, 2, 2, ...; layer4: 2, 4, 4). For BasicBlock it also dilates ``conv2`` of every block,
  as the official code does.

Stems
-----
- ``deep_stem=True`` (PSPNet / semseg "resnet*_v2", "deep base"): three 3×3 conv-norm-ReLU
  (in→W stride 2, W→W, W→2W with W = ``stem_width``) then 3×3 max-pool stride 2. layer1 then takes
  2W channels, so layer1's first block always has a ``downsample`` projection (also for R18/34).
- ``deep_stem=False`` (torchvision): 7×7 stride-2 conv in→W, norm, ReLU, 3×3 max-pool stride 2.

Parameter / module names (for checkpoint converters)
----------------------------------------------------
The names are torchvision's, so a torchvision ``resnetX`` state dict (minus ``fc.*``) loads into
``DilatedResNet(depth=X, deep_stem=False, norm="BN")`` with *no* renaming (parameters do not
depend on stride or dilation)::

    conv1, bn1                      stem (7×7) or first conv of the deep stem
    conv2, bn2, conv3, bn3          second and third convs of the deep stem (deep_stem=True only)
    layer{1..4}.{i}.conv{1,2[,3]}   block convs (conv3/bn3: Bottleneck only)
    layer{1..4}.{i}.bn{1,2[,3]}     block norms
    layer{1..4}.{i}.downsample.0    1×1 projection conv; ``downsample.1`` is its norm

This is also the layout of the semseg / official APD ImageNet "deep base" checkpoints
(``initmodel/resnet*_v2.pth``). Official APD *segmentation* checkpoints instead wrap the stem as
``module.layer0.{0,1,3,4,6,7}.*`` (= conv1, bn1, conv2, bn2, conv3, bn3; indices 2, 5, 8, 9 are
ReLU/max-pool) and keep ``module.layer{1..4}.*`` unchanged. Norm layers keep BatchNorm's buffer
names (``running_mean``, ``running_var``, ``num_batches_tracked``; FrozenBN has no
``num_batches_tracked``).

Stages are named ``res2..res5`` in the outputs (Detectron2's convention) = ``layer1..layer4``;
``stem`` (stride 4, after the max-pool) may also be requested.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn
import torch.nn.functional as F

from detectron2.layers import CNNBlockBase, FrozenBatchNorm2d, ShapeSpec, get_norm

from .base import DilatedBackbone, check_backbone_arguments

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "DilatedResNet",
    "dilated_resnet_output_shape",
]

# depth -> (block type, number of blocks per stage)
_DEPTH_SETTINGS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
# output_stride -> (stride, dilation) of layer3 and layer4
_OUTPUT_STRIDE_SETTINGS = {
    8: ((1, 2), (1, 4)),
    16: ((2, 1), (1, 2)),
    32: ((2, 1), (2, 1)),
}
_STAGE_NAMES = ("res2", "res3", "res4", "res5")


def dilated_resnet_output_shape(
    *,
    depth: int,
    output_stride: int = 8,
    deep_stem: bool = True,
    stem_width: int = 64,
    base_channels: int = 64,
    out_features: Sequence[str] = _STAGE_NAMES,
) -> Dict[str, ShapeSpec]:
    """``DilatedResNet(...).output_shape()`` for these arguments, without building the network.

    For configs: a head's ``input_shape`` can follow the backbone node by interpolation
    (``L(dilated_resnet_output_shape)(depth="${...backbone.depth}", ...)``), so a new depth or width
    is one assignment. Stage k (res2..res5) has ``base_channels·2^k`` channels (×4 for Bottleneck).
    """
    if depth not in _DEPTH_SETTINGS:
        raise ValueError(f"DilatedResNet: depth={depth!r} is not one of {sorted(_DEPTH_SETTINGS)}")
    if output_stride not in _OUTPUT_STRIDE_SETTINGS:
        raise ValueError(
            f"DilatedResNet: output_stride={output_stride!r} is not one of {sorted(_OUTPUT_STRIDE_SETTINGS)}"
        )
    expansion = 1 if _DEPTH_SETTINGS[depth][0] == "basic" else 4
    (s3, _), (s4, _) = _OUTPUT_STRIDE_SETTINGS[output_stride]
    strides = (4, 8, 8 * s3, 8 * s3 * s4)
    shapes = {"stem": ShapeSpec(channels=2 * stem_width if deep_stem else stem_width, stride=4)}
    for k, name in enumerate(_STAGE_NAMES):
        shapes[name] = ShapeSpec(channels=base_channels * 2**k * expansion, stride=strides[k])
    unknown = [f for f in out_features if f not in shapes]
    if unknown:
        raise ValueError(f"DilatedResNet: unknown out_features {unknown}; choose from {tuple(shapes)}")
    return {f: shapes[f] for f in out_features}


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    # padding = dilation keeps the spatial size for stride 1 (and floor((n-1)/2)+1 for stride 2)
    return nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size=3,
        stride=stride,
        padding=dilation,
        dilation=dilation,
        bias=False,
    )


def _downsample(in_channels: int, out_channels: int, stride: int, norm) -> Optional[nn.Sequential]:
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
        get_norm(norm, out_channels),
    )


class BasicBlock(CNNBlockBase):
    """ResNet-18/34 block: 3×3 conv (stride, ``dilations[0]``) → 3×3 conv (``dilations[1]``),
    plus the shortcut."""

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        planes: int,
        *,
        stride: int = 1,
        dilations: Tuple[int, int] = (1, 1),
        norm="BN",
    ):
        out_channels = planes * self.expansion
        super().__init__(in_channels, out_channels, stride)
        self.conv1 = _conv3x3(in_channels, planes, stride, dilations[0])
        self.bn1 = get_norm(norm, planes)
        self.conv2 = _conv3x3(planes, planes, 1, dilations[1])
        self.bn2 = get_norm(norm, planes)
        self.downsample = _downsample(in_channels, out_channels, stride, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu_(out + shortcut)


class Bottleneck(CNNBlockBase):
    """ResNet-50+ block: 1×1 → 3×3 (stride, ``dilation``) → 1×1 (×4 channels) + shortcut.

    The stride sits on the 3×3 conv (torchvision's "ResNet v1.5"), as in the official APD code.
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        planes: int,
        *,
        stride: int = 1,
        dilation: int = 1,
        norm="BN",
    ):
        out_channels = planes * self.expansion
        super().__init__(in_channels, out_channels, stride)
        self.conv1 = nn.Conv2d(in_channels, planes, kernel_size=1, bias=False)
        self.bn1 = get_norm(norm, planes)
        self.conv2 = _conv3x3(planes, planes, stride, dilation)
        self.bn2 = get_norm(norm, planes)
        self.conv3 = nn.Conv2d(planes, out_channels, kernel_size=1, bias=False)
        self.bn3 = get_norm(norm, out_channels)
        self.downsample = _downsample(in_channels, out_channels, stride, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.bn1(self.conv1(x)))
        out = F.relu_(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu_(out + shortcut)


class DilatedResNet(DilatedBackbone):
    """Dilated ResNet returning ``{"res2": ..., "res5": ...}`` (layout: see the module docstring).

    Output strides: res2 4, res3 8, res4 8/16/16 and res5 8/16/32 for ``output_stride`` 8/16/32.
    Output channels: ``base_channels/64`` × (64, 128, 256, 512) for R18/34 and
    × (256, 512, 1024, 2048) for R50/101/152.
    Stages after the last requested output are not built (as in Detectron2's ResNet), so a backbone
    asked only for ``res4`` has no ``layer4`` parameters.
    """

    def __init__(
        self,
        *,
        depth: int,
        output_stride: int = 8,
        deep_stem: bool = True,
        stem_width: int = 64,
        base_channels: int = 64,
        norm="BN",
        out_features: Sequence[str] = ("res2", "res3", "res4", "res5"),
        freeze_at: int = 0,
        in_channels: int = 3,
        torchvision_dilation: bool = False,
    ):
        """
        Args:
            depth: 18 or 34 (BasicBlock), 50, 101 or 152 (Bottleneck).
            output_stride: 8, 16 or 32: stride of ``res5`` (see the table in the module docstring).
            deep_stem: three 3×3 convs (PSPNet / APD) instead of torchvision's 7×7 conv.
            stem_width: W: the stem outputs 2W channels with ``deep_stem`` and W without.
            base_channels: width of layer1's 3×3 convs (64 = standard ResNet); stage widths are
                (1, 2, 4, 8) × base_channels (× 4 for Bottleneck). Small values give tiny models.
            norm: any :func:`detectron2.layers.get_norm` name ("BN", "SyncBN", "FrozenBN",
                "GN") or a callable ``channels -> nn.Module``.
            out_features: subset of ("stem", "res2", "res3", "res4", "res5") to return.
            freeze_at: 0 trains everything; 1 freezes the stem; k ≥ 2 also freezes res2..res{k}
                (``requires_grad=False`` and BatchNorm → FrozenBatchNorm2d), as Detectron2's ResNet.
            in_channels: channels of the input image.
            torchvision_dilation: dilation placement of the official 60-class PASCAL-Context models
                (first block of a dilated stage keeps the previous dilation); default is PSPNet's.
        """
        super().__init__()
        if depth not in _DEPTH_SETTINGS:
            raise ValueError(
                f"DilatedResNet: depth={depth!r} is not one of {sorted(_DEPTH_SETTINGS)}"
            )
        out_features = check_backbone_arguments(
            "DilatedResNet", output_stride=output_stride, out_features=out_features,
            known_features=("stem",) + _STAGE_NAMES, freeze_at=freeze_at,
        )

        block_type, num_blocks = _DEPTH_SETTINGS[depth]
        self.depth = depth
        self.output_stride = output_stride
        self.deep_stem = deep_stem
        self.torchvision_dilation = torchvision_dilation
        self._out_features = list(out_features)

        # ---- stem (stride 4) ----
        if deep_stem:
            self.conv1 = _conv3x3(in_channels, stem_width, stride=2)
            self.bn1 = get_norm(norm, stem_width)
            self.conv2 = _conv3x3(stem_width, stem_width)
            self.bn2 = get_norm(norm, stem_width)
            self.conv3 = _conv3x3(stem_width, 2 * stem_width)
            self.bn3 = get_norm(norm, 2 * stem_width)
            channels = 2 * stem_width
        else:
            self.conv1 = nn.Conv2d(
                in_channels, stem_width, kernel_size=7, stride=2, padding=3, bias=False
            )
            self.bn1 = get_norm(norm, stem_width)
            channels = stem_width
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self._stem_names = ["conv1", "bn1"]
        if deep_stem:
            self._stem_names += ["conv2", "bn2", "conv3", "bn3"]

        # ---- stages ----
        (s3, d3), (s4, d4) = _OUTPUT_STRIDE_SETTINGS[output_stride]
        stage_specs = [(1, 1), (2, 1), (s3, d3), (s4, d4)]  # (stride, dilation) of layer1..layer4
        num_stages = max(_STAGE_NAMES.index(f) + 1 if f != "stem" else 0 for f in out_features)
        self.stage_names: List[str] = []
        previous_dilation = 1
        for idx in range(num_stages):
            stride, dilation = stage_specs[idx]
            planes = base_channels * (2**idx)
            blocks = []
            for i in range(num_blocks[idx]):
                block_stride = stride if i == 0 else 1
                if block_type == "basic":
                    blocks.append(
                        BasicBlock(
                            channels,
                            planes,
                            stride=block_stride,
                            dilations=self._basic_dilations(i, dilation, previous_dilation),
                            norm=norm,
                        )
                    )
                else:
                    first_dil = previous_dilation if torchvision_dilation else dilation
                    blocks.append(
                        Bottleneck(
                            channels,
                            planes,
                            stride=block_stride,
                            dilation=first_dil if i == 0 else dilation,
                            norm=norm,
                        )
                    )
                channels = blocks[-1].out_channels
            layer_name = f"layer{idx + 1}"
            self.add_module(layer_name, nn.Sequential(*blocks))
            self.stage_names.append(layer_name)
            previous_dilation = dilation

        shapes = dilated_resnet_output_shape(
            depth=depth, output_stride=output_stride, deep_stem=deep_stem, stem_width=stem_width,
            base_channels=base_channels, out_features=out_features,
        )
        self._out_feature_strides: Dict[str, int] = {f: shapes[f].stride for f in self._out_features}
        self._out_feature_channels: Dict[str, int] = {f: shapes[f].channels for f in self._out_features}

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        self.freeze(freeze_at)

    def _basic_dilations(self, block_index: int, dilation: int, previous_dilation: int):
        """(conv1, conv2) dilations of a BasicBlock, as the official APD code (module doc)."""
        if dilation == 1:
            return (1, 1)
        if not self.torchvision_dilation:
            return (dilation, 1)
        return (previous_dilation if block_index == 0 else dilation, dilation)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Args:
            x: B×C×H×W images.

        Returns:
            dict name -> B×C_name×ceil(H/s)×ceil(W/s) feature (s = the name's stride) for each
            name in ``out_features``.
        """
        self._check_input(x)
        outputs = {}
        x = F.relu_(self.bn1(self.conv1(x)))
        if self.deep_stem:
            x = F.relu_(self.bn2(self.conv2(x)))
            x = F.relu_(self.bn3(self.conv3(x)))
        x = self.maxpool(x)
        if "stem" in self._out_features:
            outputs["stem"] = x
        for layer_name, out_name in zip(self.stage_names, _STAGE_NAMES):
            x = getattr(self, layer_name)(x)
            if out_name in self._out_features:
                outputs[out_name] = x
        return outputs

    def freeze(self, freeze_at: int = 0) -> "DilatedResNet":
        """Freeze the stem (``freeze_at`` ≥ 1) and res2..res{freeze_at} (``freeze_at`` ≥ 2).

        Frozen parameters get ``requires_grad=False`` and their BatchNorm / SyncBatchNorm layers
        become :class:`FrozenBatchNorm2d`. Returns ``self``.
        """
        if freeze_at >= 1:
            for name in self._stem_names:
                module = getattr(self, name)
                for p in module.parameters():
                    p.requires_grad = False
                setattr(self, name, FrozenBatchNorm2d.convert_frozen_batchnorm(module))
        for idx, layer_name in enumerate(self.stage_names, start=2):
            if freeze_at >= idx:
                for block in getattr(self, layer_name).children():
                    block.freeze()
        return self
