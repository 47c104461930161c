"""Dilated MobileNetV2 backbone (the official APD PSPNet-MobileNetV2 student's trunk).

Architecture
------------
MobileNetV2 (Sandler et al. 2018) without its final 1×1 conv to 1280 channels and without the
classifier: a 3×3 stride-2 conv-norm-ReLU6 stem and 17 inverted-residual blocks. Once the
running stride reaches ``output_stride``, later stride-2 blocks use stride 1 and multiply the
dilation of the following depthwise convs by 2 instead. The outputs are named after Detectron2's
ResNet stages:

======  ===================  =============  ==========================================
name    blocks (features.N)  channels (×1)  stride (output_stride 32 / 16 / 8)
======  ===================  =============  ==========================================
res2    1..3                 24             4 / 4 / 4
res3    4..6                 32             8 / 8 / 8
res4    7..13                96             16 / 16 / 8   (64-ch blocks 7..10 + 96-ch 11..13)
res5    14..17               320            32 / 16 / 8   (160-ch blocks 14..16 + 320-ch 17)
======  ===================  =============  ==========================================

With ``output_stride=8`` the per-group dilations are (1, 1, 1, 2, 2, 4, 4) for the seven
(t, c, n, s) groups, as the official code (mmseg ``MobileNetV2(strides=(1, 2, 2, 1, 1, 1, 1),
dilations=(1, 1, 1, 2, 2, 4, 4))``). That code gives the dilation only to the **first** block of
each group (the others keep dilation 1); ``dilate_first_block_only=False`` dilates every block of
the group instead. Channels scale with ``width_mult``, rounded to multiples of 8 (torchvision's
rule).

Parameter / module names (for checkpoint converters)
----------------------------------------------------
Torchvision's ``mobilenet_v2().features[:18]`` layout, so its state dict minus ``features.18.*`` and
``classifier.*`` loads without renaming::

    features.0.{0,1}                       stem conv, norm
    features.N.conv.{0.0,0.1,1,2}          t=1 block (N=1): depthwise conv, norm, project conv, norm
    features.N.conv.{0.0,0.1,1.0,1.1,2,3}  t=6 blocks: expand conv, norm, depthwise conv, norm,
                                           project conv, norm

The official APD student loads mmcls weights named ``conv1.{conv,bn}`` and
``layer{g}.{i}.conv.{j}.{conv,bn}`` (g = group 1..7, i = block in group); features.N is the N-th
block counting groups in order (layer1.0 = features.1, layer2.{0,1} = features.{2,3}, ...).
"""
from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn

from detectron2.layers import FrozenBatchNorm2d, ShapeSpec, get_norm

from .base import DilatedBackbone, check_backbone_arguments

__all__ = [
    "InvertedResidual",
    "DilatedMobileNetV2",
    "dilated_mobilenet_v2_output_shape",
]

# (expand ratio t, output channels c, number of blocks n, stride s) of the seven block groups
_INVERTED_RESIDUAL_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
# last features.N index of each output stage
_STAGE_ENDS = {"res2": 3, "res3": 6, "res4": 13, "res5": 17}


def _group_plan(output_stride: int, width_mult: float) -> List[Tuple[int, int, int, int, int, int]]:
    """Per block group: (expand ratio, output channels, blocks, stride, dilation, running stride
    after the group). Past ``output_stride`` a group keeps stride 1 and multiplies the dilation."""
    plan = []
    current_stride, dilation = 2, 1  # after the stride-2 stem
    for t, c, n, s in _INVERTED_RESIDUAL_SETTINGS:
        if current_stride * s > output_stride:
            group_stride, dilation = 1, dilation * s
        else:
            group_stride, current_stride = s, current_stride * s
        plan.append((t, _make_divisible(c * width_mult), n, group_stride, dilation, current_stride))
    return plan


def dilated_mobilenet_v2_output_shape(
    *, output_stride: int = 8, width_mult: float = 1.0, out_features: Sequence[str] = ("res2", "res3", "res4", "res5")
) -> Dict[str, ShapeSpec]:
    """``DilatedMobileNetV2(...).output_shape()`` for these arguments, without building the network.

    For configs: a head's ``input_shape`` can follow the backbone node by interpolation, e.g.
    ``L(dilated_mobilenet_v2_output_shape)(width_mult="${...backbone.width_mult}", ...)``.
    """
    shapes, index = {}, 0
    for _, channels, n, _, _, stride in _group_plan(output_stride, width_mult):
        index += n
        for name, end in _STAGE_ENDS.items():
            if end == index:
                shapes[name] = ShapeSpec(channels=channels, stride=stride)
    return {f: shapes[f] for f in out_features}


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (≥ divisor), losing at most 10%."""
    new_value = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def _conv_norm_relu6(
    in_channels: int,
    out_channels: int,
    *,
    kernel_size: int,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
    norm="BN",
) -> nn.Sequential:
    padding = (kernel_size - 1) // 2 * dilation
    return nn.Sequential(
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=False,
        ),
        get_norm(norm, out_channels),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """[1×1 expand] → 3×3 depthwise (stride, dilation) → 1×1 linear projection; residual when the
    stride is 1 and the channels match."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int,
        expand_ratio: int,
        dilation: int = 1,
        norm="BN",
    ):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual: stride={stride!r} must be 1 or 2")
        self.stride = stride
        self.use_residual = stride == 1 and in_channels == out_channels
        hidden = int(round(in_channels * expand_ratio))
        layers: List[nn.Module] = []
        if expand_ratio != 1:
            layers.append(_conv_norm_relu6(in_channels, hidden, kernel_size=1, norm=norm))
        layers += [
            _conv_norm_relu6(
                hidden,
                hidden,
                kernel_size=3,
                stride=stride,
                dilation=dilation,
                groups=hidden,
                norm=norm,
            ),
            nn.Conv2d(hidden, out_channels, kernel_size=1, bias=False),
            get_norm(norm, out_channels),
        ]
        self.conv = nn.Sequential(*layers)

    @property
    def depthwise(self) -> nn.Conv2d:
        """The 3×3 depthwise conv (carries the stride and dilation)."""
        return self.conv[-3][0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


class DilatedMobileNetV2(DilatedBackbone):
    """MobileNetV2 trunk with dilation, returning ``res2..res5`` (see the module docstring).

    Output channels for ``width_mult=1``: res2 24, res3 32, res4 96, res5 320. Blocks after the last
    requested output are not built.
    """

    def __init__(
        self,
        *,
        output_stride: int = 8,
        width_mult: float = 1.0,
        norm="BN",
        out_features: Sequence[str] = ("res2", "res3", "res4", "res5"),
        freeze_at: int = 0,
        in_channels: int = 3,
        dilate_first_block_only: bool = True,
    ):
        """
        Args:
            output_stride: 8, 16 or 32: stride of ``res5``.
            width_mult: channel multiplier (0.5 and 1.0 are the official students).
            norm: :func:`detectron2.layers.get_norm` name ("BN", "SyncBN", "FrozenBN", "GN")
                or a callable ``channels -> nn.Module``.
            out_features: subset of ("res2", "res3", "res4", "res5").
            freeze_at: 0 trains everything; 1 freezes the stem (features.0); k ≥ 2 also freezes
                res2..res{k} (``requires_grad=False``, BatchNorm → FrozenBatchNorm2d).
            in_channels: channels of the input image.
            dilate_first_block_only: official APD/mmseg placement (only the first block of a dilated
                group is dilated); False dilates every block of the group.
        """
        super().__init__()
        out_features = check_backbone_arguments(
            "DilatedMobileNetV2", output_stride=output_stride, out_features=out_features,
            known_features=tuple(_STAGE_ENDS), freeze_at=freeze_at,
        )
        if width_mult <= 0:
            raise ValueError(f"DilatedMobileNetV2: width_mult={width_mult!r} must be positive")
        self.output_stride = output_stride
        self._out_features = list(out_features)
        last_index = max(_STAGE_ENDS[f] for f in out_features)

        channels = _make_divisible(32 * width_mult)
        features: List[nn.Module] = [
            _conv_norm_relu6(in_channels, channels, kernel_size=3, stride=2, norm=norm)
        ]
        for t, group_channels, n, group_stride, dilation, _ in _group_plan(output_stride, width_mult):
            for i in range(n):
                if len(features) > last_index:
                    break
                block_dilation = dilation if (i == 0 or not dilate_first_block_only) else 1
                features.append(
                    InvertedResidual(
                        channels,
                        group_channels,
                        stride=group_stride if i == 0 else 1,
                        expand_ratio=t,
                        dilation=block_dilation,
                        norm=norm,
                    )
                )
                channels = group_channels
        self.features = nn.Sequential(*features)

        shapes = dilated_mobilenet_v2_output_shape(
            output_stride=output_stride, width_mult=width_mult, out_features=out_features)
        self._out_feature_strides: Dict[str, int] = {f: shapes[f].stride for f in self._out_features}
        self._out_feature_channels: Dict[str, int] = {f: shapes[f].channels for f in self._out_features}
        self._index_to_name = {_STAGE_ENDS[f]: f for f in self._out_features}

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
        self.freeze(freeze_at)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Args:
            x: B×C×H×W images.

        Returns:
            dict name -> B×C_name×ceil(H/s)×ceil(W/s) (s = the name's stride) for ``out_features``.
        """
        self._check_input(x)
        outputs = {}
        for index, module in enumerate(self.features):
            x = module(x)
            if index in self._index_to_name:
                outputs[self._index_to_name[index]] = x
        return outputs

    def freeze(self, freeze_at: int = 0) -> "DilatedMobileNetV2":
        """Freeze features.0 (``freeze_at`` ≥ 1) and the blocks of res2..res{freeze_at}.

        Frozen parameters get ``requires_grad=False`` and their BatchNorm / SyncBatchNorm layers
        become :class:`FrozenBatchNorm2d`. Returns ``self``.
        """
        if freeze_at <= 0:
            return self
        last = 0 if freeze_at == 1 else _STAGE_ENDS[f"res{freeze_at}"]
        for index, module in enumerate(self.features):
            if index > last:
                break
            for p in module.parameters():
                p.requires_grad = False
            FrozenBatchNorm2d.convert_frozen_batchnorm(module)
        return self
