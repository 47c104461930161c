"""Auxiliary FCN classifier, and the loss and upsampling helpers every APD segmentation head shares.

The auxiliary classifier is the deep-supervision branch of PSPNet: a small FCN on ``res4``
(PSPNet's ``aux`` module, APD_SPEC §4). Its loss is computed with the main loss in
:func:`segmentation_losses`, which is why the shared helpers live here.

Shape letters: B images, C channels, K classes, h×w feature grid, H×W label/input grid.
"""
from typing import Callable, Dict, Optional, Tuple, Union

import torch
from torch import nn
from torch.nn import functional as F

from detectron2.layers import Conv2d, ShapeSpec, get_norm

from .outputs import SegHeadOutputs

__all__ = [
    "FCNAuxHead",
    "conv_norm_relu",
    "feature_shape",
    "upsample_logits",
    "inference_size",
    "masked_cross_entropy",
    "segmentation_losses",
]


def conv_norm_relu(in_channels: int, out_channels: int, kernel_size: int, norm, dilation: int = 1):
    """A d2 ``Conv2d`` with "same" padding, ``get_norm(norm)`` and ReLU; no bias when normalised."""
    norm_layer = get_norm(norm, out_channels)
    return Conv2d(
        in_channels,
        out_channels,
        kernel_size=kernel_size,
        padding=dilation * (kernel_size - 1) // 2,
        dilation=dilation,
        bias=norm_layer is None,
        norm=norm_layer,
        activation=F.relu,
    )


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


def feature_shape(input_shape: Dict[str, ShapeSpec], name: str, owner: str) -> ShapeSpec:
    """``input_shape[name]``; the error names the head, the feature and the available keys."""
    if name not in input_shape:
        raise KeyError(
            f"{owner}: feature '{name}' is not in input_shape (available: {sorted(input_shape)})"
        )
    shape = input_shape[name]
    if shape.channels is None or shape.stride is None:
        raise ValueError(f"{owner}: input_shape['{name}'] needs channels and stride, got {shape}")
    return shape


def inference_size(
    feature_size: Tuple[int, int], stride: int, align_corners: bool
) -> Tuple[int, int]:
    """Size of the input grid that a h×w feature grid of stride ``stride`` covers.

    With ``align_corners=True`` feature pixel i sits on input pixel ``stride·i`` (stride-2 3×3 convs
    with padding 1 keep corners aligned), so the grid ends at ``(h−1)·stride + 1`` (713 for h = 90;
    the official crops are sized 8k+1 for this reason). With ``align_corners=False`` it is
    ``h·stride``, as in Detectron2's heads.
    """
    if align_corners:
        return tuple((s - 1) * stride + 1 for s in feature_size)
    return tuple(s * stride for s in feature_size)


def upsample_logits(
    logits: torch.Tensor, size: Tuple[int, int], align_corners: bool
) -> torch.Tensor:
    """Bilinear resize B×K×h×w → B×K×size (float32, so fp16 logits don't overflow the softmax)."""
    logits = logits.float()
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=align_corners)


def masked_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, ignore_value: int
) -> torch.Tensor:
    """Pixel-mean cross-entropy over non-ignored pixels.

    Args:
        logits: B×K×H×W.
        targets: B×H×W int64, values in {0..K−1} ∪ {ignore_value}.
    Returns:
        scalar; equals ``F.cross_entropy(..., ignore_index=ignore_value)`` when at least one pixel
        is valid, and 0 (still attached to the graph) instead of NaN when every pixel is ignored.
    """
    loss_sum = F.cross_entropy(logits, targets, ignore_index=ignore_value, reduction="sum")
    num_valid = (targets != ignore_value).sum().clamp(min=1)
    return loss_sum / num_valid


def segmentation_losses(
    outputs: SegHeadOutputs,
    targets: Optional[torch.Tensor],
    *,
    ignore_value: int,
    align_corners: bool,
    loss_weight: float,
    aux_weight: float = 0.0,
) -> Dict[str, torch.Tensor]:
    """Task losses of a segmentation head, already weighted.

    Args:
        outputs: the head's ``layers()`` output; logits (and aux logits) are upsampled bilinearly
            to the targets' H×W.
        targets: B×H×W int64 labels.
    Returns:
        ``{"loss_sem_seg": loss_weight · CE(up(logits), targets)}``, plus
        ``"loss_aux": aux_weight · CE(up(aux_logits), targets)`` when ``outputs.aux_logits`` is
        not None.
    """
    if targets is None:
        raise ValueError("Segmentation head: training needs targets (B×H×W labels), got None")
    size = targets.shape[-2:]
    logits = upsample_logits(outputs.logits, size, align_corners)
    losses = {"loss_sem_seg": masked_cross_entropy(logits, targets, ignore_value) * loss_weight}
    if outputs.aux_logits is not None:
        aux = upsample_logits(outputs.aux_logits, size, align_corners)
        losses["loss_aux"] = masked_cross_entropy(aux, targets, ignore_value) * aux_weight
    return losses
