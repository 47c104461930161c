"""PSPNet head: pyramid pooling on the deepest feature, a 3×3 "merge" conv, a 1×1 classifier.

Matches the APD repo's ``model/pspnet.py`` (docs/METHOD.md §1, §4): bins (1, 2, 3, 6), each pooled
branch reduces to in/len(bins) channels; merge = 3×3 conv → norm → ReLU → Dropout2d(0.1) to 512
channels; that merged tensor is ``SegHeadOutputs.feature`` (the F_s/F_t that APD distils).
Layers use PyTorch's default initialisation, as the repo does.
"""
from typing import Callable, Dict, Optional, Sequence, Union

import torch
from torch import nn
from torch.nn import functional as F

from detectron2.layers import ShapeSpec

from .base import ContextClassifierHead
from .blocks import conv_norm_relu

__all__ = ["PSPHead", "PyramidPooling"]


class PyramidPooling(nn.Module):
    """Pyramid pooling module: ``cat([x] + [up(ReLU(norm(conv1x1(avgpool_b(x))))) for b in bins])``.

    Output channels: ``out_channels = in_channels + len(bins) · (in_channels // len(bins))``.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        bins: Sequence[int],
        norm: Union[str, Callable],
        align_corners: bool,
    ):
        super().__init__()
        if len(bins) == 0:
            raise ValueError("PyramidPooling: bins must not be empty")
        reduction = in_channels // len(bins)
        if reduction == 0:
            raise ValueError(
                f"PyramidPooling: in_channels={in_channels} is smaller than len(bins)={len(bins)}"
            )
        self.bins = tuple(int(b) for b in bins)
        self.align_corners = align_corners
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), conv_norm_relu(in_channels, reduction, 1, norm))
            for b in self.bins
        )
        self.out_channels = in_channels + len(self.bins) * reduction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [
            F.interpolate(stage(x), size=size, mode="bilinear", align_corners=self.align_corners)
            for stage in self.stages
        ]
        return torch.cat([x] + pooled, dim=1)


class PSPHead(ContextClassifierHead):
    """PSPNet head with an optional FCN auxiliary classifier (ARCHITECTURE.md, "Segmentation
    heads").

    Attributes: ``num_classes``, ``ignore_value``, ``common_stride`` (stride of ``in_feature``),
    ``feature_channels`` (= ``channels``), ``loss_weight``, ``aux_weight``, ``align_corners``.
    """

    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        num_classes: int,
        in_feature: str = "res5",
        bins: Sequence[int] = (1, 2, 3, 6),
        channels: int = 512,
        dropout: float = 0.1,
        norm: Union[str, Callable] = "BN",
        ignore_value: int = 255,
        loss_weight: float = 1.0,
        align_corners: bool = False,
        aux_in_feature: Optional[str] = None,
        aux_channels: int = 256,
        aux_weight: float = 0.4,
    ):
        """
        Args:
            input_shape: backbone output shapes, with ``in_feature`` (and ``aux_in_feature``).
            num_classes: K.
            in_feature: feature the pyramid pooling reads ("res5").
            bins: output sizes of the adaptive average pools.
            channels: output channels of the merge conv = channels of ``SegHeadOutputs.feature``.
            dropout: Dropout2d probability after the merge conv.
            norm: normalisation of every conv but the classifiers ("BN"; "SyncBN" for multi-GPU).
            ignore_value: label value ignored by the losses.
            loss_weight: weight of ``loss_sem_seg``.
            align_corners: ``align_corners`` of every bilinear resize in the head and its losses
                (True in the APD repo, whose crops are sized 8k+1).
            aux_in_feature: feature of the auxiliary classifier ("res4"), or None for no aux head.
            aux_channels: width of the auxiliary classifier's 3×3 conv.
            aux_weight: weight of ``loss_aux``.
        """
        super().__init__()
        shape = self._setup(input_shape, locals())  # the ContextClassifierHead.SHARED_ARGS

        self.ppm = PyramidPooling(
            in_channels=int(shape.channels), bins=bins, norm=norm, align_corners=align_corners
        )
        self.merge = nn.Sequential(
            conv_norm_relu(self.ppm.out_channels, channels, 3, norm), nn.Dropout2d(dropout)
        )

    def context(self, x: torch.Tensor) -> torch.Tensor:
        return self.merge(self.ppm(x))
