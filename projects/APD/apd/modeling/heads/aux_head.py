"""Auxiliary FCN classifier: the deep-supervision branch of PSPNet on ``res4`` (docs/METHOD.md §4).

Its loss is computed with the main loss by :func:`apd.modeling.heads.base.segmentation_losses`.
"""
from typing import Callable, Union

import torch
from torch import nn

from .blocks import conv_norm_relu

__all__ = ["FCNAuxHead"]


class FCNAuxHead(nn.Module):
    """Auxiliary classifier: 3×3 conv (in→channels) → norm → ReLU → Dropout2d → 1×1 conv (→K).

    Not a registered head: :class:`PSPHead` and :class:`ASPPHead` own one given ``aux_in_feature``.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        channels: int = 256,
        dropout: float = 0.1,
        norm: Union[str, Callable] = "BN",
    ):
        """
        Args:
            in_channels: input channels (``res4``: 1024 for ResNet-50/101, 256 for ResNet-18).
            num_classes: K.
            channels: width of the 3×3 conv (256 in the APD repo).
            dropout: Dropout2d probability before the classifier.
            norm: normalisation for the 3×3 conv, see :func:`detectron2.layers.get_norm`.
        """
        super().__init__()
        self.conv = conv_norm_relu(in_channels, channels, 3, norm)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B×C×h×w → B×K×h×w logits."""
        return self.classifier(self.dropout(self.conv(x)))
