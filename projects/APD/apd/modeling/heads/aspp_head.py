"""DeepLabV3 head: atrous spatial pyramid pooling on the last feature, 3×3 bottleneck, classifier.

Matches the APD repo's ``model/deeplabv3.py`` (mmseg-style ``ASPPHead``): five parallel branches,
each → ``aspp_channels`` (512) with norm + ReLU — image pooling (global average pool → 1×1 conv,
upsampled back), a 1×1 conv, and three 3×3 atrous convs — concatenated in that order, then a 3×3
bottleneck conv → ``channels`` (512) → norm → ReLU → Dropout2d(0.1) = ``SegHeadOutputs.feature``,
then a 1×1 classifier. There is no 1×1 projection after the concatenation (torchvision's and
Detectron2's ``ASPP`` have one), so Detectron2's ``ASPP`` layer is not reused. Layers use PyTorch's
default initialisation, as the repo does.

``project_channels`` (off by default) adds that projection for checkpoints converted from CIRKD's
``models/deeplabv3.py``: concatenation → 1×1 conv → ``project_channels`` → norm → ReLU →
Dropout(``project_dropout``) → the 3×3 bottleneck, which then reads ``project_channels``. The
concatenation order stays pool-first; the converter reorders CIRKD's projection weight to match.
"""
from typing import Callable, Dict, Optional, Sequence, Union

import torch
from torch import nn
from torch.nn import functional as F

from detectron2.layers import ShapeSpec

from .base import ContextClassifierHead
from .blocks import conv_norm_relu

__all__ = ["ASPPHead", "AtrousSpatialPyramidPooling", "DEFAULT_ASPP_DILATIONS"]

# Atrous rates of the three 3×3 branches per output stride (DeepLabV3 paper; the APD repo: OS 8).
DEFAULT_ASPP_DILATIONS = {8: (12, 24, 36), 16: (6, 12, 18)}


class AtrousSpatialPyramidPooling(nn.Module):
    """``cat([up(pool branch), 1×1 branch, 3×3 branch(d) for d in dilations])``.

    Output channels: ``out_channels = (len(dilations) + 2) · channels``.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        channels: int,
        dilations: Sequence[int],
        norm: Union[str, Callable],
        align_corners: bool,
    ):
        super().__init__()
        self.align_corners = align_corners
        self.image_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), conv_norm_relu(in_channels, channels, 1, norm)
        )
        self.branches = nn.ModuleList(
            [conv_norm_relu(in_channels, channels, 1, norm)]
            + [conv_norm_relu(in_channels, channels, 3, norm, dilation=int(d)) for d in dilations]
        )
        self.out_channels = (len(dilations) + 2) * channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.interpolate(
            self.image_pool(x), size=x.shape[-2:], mode="bilinear", align_corners=self.align_corners
        )
        return torch.cat([pooled] + [branch(x) for branch in self.branches], dim=1)


class ASPPHead(ContextClassifierHead):
    """DeepLabV3 head with an optional FCN auxiliary classifier (see ARCHITECTURE.md,
    "Segmentation heads"). Named ``ASPPHead`` so as not to be confused with
    ``detectron2.projects.deeplab``'s ``DeepLabV3Head``.

    Attributes: ``num_classes``, ``ignore_value``, ``common_stride`` (stride of ``in_feature``),
    ``feature_channels`` (= ``channels``), ``loss_weight``, ``aux_weight``, ``align_corners``.
    """

    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        num_classes: int,
        in_feature: str = "res5",
        dilations: Optional[Sequence[int]] = None,
        aspp_channels: int = 512,
        channels: int = 512,
        dropout: float = 0.1,
        norm: Union[str, Callable] = "BN",
        ignore_value: int = 255,
        loss_weight: float = 1.0,
        align_corners: bool = False,
        aux_in_feature: Optional[str] = None,
        aux_channels: int = 256,
        aux_weight: float = 0.4,
        project_channels: Optional[int] = None,
        project_dropout: float = 0.5,
    ):
        """
        Args:
            input_shape: backbone output shapes, with ``in_feature`` (and ``aux_in_feature``).
            num_classes: K.
            in_feature: feature the ASPP reads ("res5").
            dilations: atrous rates of the 3×3 branches; None picks them from the stride of
                ``in_feature``: (12, 24, 36) at 8, (6, 12, 18) at 16.
            aspp_channels: output channels of each of the five branches (512 in the APD repo).
            channels: output channels of the bottleneck = channels of ``SegHeadOutputs.feature``.
            dropout: Dropout2d probability after the bottleneck (and in the aux head).
            norm: normalisation of every conv but the classifiers ("BN"; "SyncBN" for multi-GPU).
            ignore_value: label value ignored by the losses.
            loss_weight: weight of ``loss_sem_seg``.
            align_corners: ``align_corners`` of every bilinear resize in the head and its losses.
            aux_in_feature: feature of the auxiliary classifier ("res4"), or None for no aux head.
            aux_channels: width of the auxiliary classifier's 3×3 conv.
            aux_weight: weight of ``loss_aux``.
            project_channels: None (the APD repo: the bottleneck reads the concatenation), or the
                width of a 1×1 projection after the concatenation (CIRKD: 512), module ``project``.
            project_dropout: probability of the element-wise ``nn.Dropout`` after the projection
                (CIRKD: 0.5); unused without ``project_channels``.
        """
        super().__init__()
        shape = self._setup(input_shape, locals())  # the ContextClassifierHead.SHARED_ARGS

        if dilations is None:
            if self.common_stride not in DEFAULT_ASPP_DILATIONS:
                raise ValueError(
                    f"ASPPHead: no default dilations for stride {self.common_stride} of "
                    f"'{in_feature}' (known: {sorted(DEFAULT_ASPP_DILATIONS)}); pass dilations="
                )
            dilations = DEFAULT_ASPP_DILATIONS[self.common_stride]
        self.dilations = tuple(int(d) for d in dilations)
        self.aspp = AtrousSpatialPyramidPooling(
            in_channels=int(shape.channels),
            channels=aspp_channels,
            dilations=self.dilations,
            norm=norm,
            align_corners=align_corners,
        )
        self.project_channels = None if project_channels is None else int(project_channels)
        self.project = None
        bottleneck_in = self.aspp.out_channels
        if self.project_channels is not None:
            self.project = nn.Sequential(
                conv_norm_relu(self.aspp.out_channels, self.project_channels, 1, norm),
                nn.Dropout(project_dropout),
            )
            bottleneck_in = self.project_channels
        self.bottleneck = nn.Sequential(
            conv_norm_relu(bottleneck_in, channels, 3, norm), nn.Dropout2d(dropout)
        )

    def context(self, x: torch.Tensor) -> torch.Tensor:
        x = self.aspp(x)
        if self.project is not None:
            x = self.project(x)
        return self.bottleneck(x)
