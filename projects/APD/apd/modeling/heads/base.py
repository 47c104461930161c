"""What every APD segmentation head shares: the loss/upsampling helpers and the head contract.

``SegHeadMixin`` gives a head ``losses()`` and Detectron2's ``forward()`` from its ``layers()``;
``ContextClassifierHead`` adds the PSPNet/DeepLabV3 shape: a context module on one feature, a 1×1
classifier and an optional FCN auxiliary classifier (see docs/ARCHITECTURE.md, "Segmentation heads").

Shape letters: B images, C channels, K classes, h×w feature grid, H×W label/input grid.
"""
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

import torch
from torch import nn
from torch.nn import functional as F

from detectron2.layers import ShapeSpec

from .aux_head import FCNAuxHead
from .outputs import SegHeadOutputs

__all__ = [
    "SegHeadMixin",
    "ContextClassifierHead",
    "feature_shape",
    "upsample_logits",
    "inference_size",
    "masked_cross_entropy",
    "segmentation_losses",
]


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


class SegHeadMixin:
    """``losses()`` and Detectron2's ``forward()`` for a head that implements ``layers()``.

    Needs the attributes ``ignore_value``, ``align_corners``, ``loss_weight``, ``common_stride`` and
    (with an aux head) ``aux_weight``.
    """

    def losses(self, outputs: SegHeadOutputs, targets: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``loss_sem_seg`` (and ``loss_aux``), weighted; see :func:`segmentation_losses`."""
        return segmentation_losses(
            outputs,
            targets,
            ignore_value=self.ignore_value,
            align_corners=self.align_corners,
            loss_weight=self.loss_weight,
            aux_weight=getattr(self, "aux_weight", 0.0),
        )

    def forward(self, features: Dict[str, torch.Tensor], targets: Optional[torch.Tensor] = None):
        """Detectron2's contract: training → ``(None, losses)``; inference →
        ``(B×K×H×W logits, {})``, upsampled to the input grid the features cover
        (:func:`inference_size`)."""
        outputs = self.layers(features)
        if self.training:
            return None, self.losses(outputs, targets)
        size = inference_size(outputs.logits.shape[-2:], self.common_stride, self.align_corners)
        return upsample_logits(outputs.logits, size, self.align_corners), {}


class ContextClassifierHead(SegHeadMixin, nn.Module):
    """A context module on ``in_feature`` → ``feature`` → 1×1 classifier, plus an optional FCN aux head.

    Subclasses take the arguments named in ``SHARED_ARGS`` (plus their own) as keyword-only
    constructor arguments, pass them on with ``self._setup(input_shape, locals())``, then build their
    context module(s) and implement :meth:`context`.
    """

    # Constructor arguments every context head takes and :meth:`_setup` consumes.
    SHARED_ARGS = ("num_classes", "in_feature", "channels", "dropout", "norm", "ignore_value", "loss_weight",
                   "align_corners", "aux_in_feature", "aux_channels", "aux_weight")

    def _setup(self, input_shape: Dict[str, ShapeSpec], arguments: Mapping[str, Any]) -> ShapeSpec:
        """Set the contract attributes, build the classifier and the aux head from the ``SHARED_ARGS``
        entries of ``arguments`` (the subclass constructor's ``locals()``); return the shape of
        ``in_feature``."""
        return self._setup_shared(input_shape, **{k: arguments[k] for k in self.SHARED_ARGS})

    def _setup_shared(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        num_classes: int,
        in_feature: str,
        channels: int,
        dropout: float,
        norm: Union[str, Callable],
        ignore_value: int,
        loss_weight: float,
        align_corners: bool,
        aux_in_feature: Optional[str],
        aux_channels: int,
        aux_weight: float,
    ) -> ShapeSpec:
        owner = type(self).__name__
        shape = feature_shape(input_shape, in_feature, owner)
        self.in_feature = in_feature
        self.num_classes = num_classes
        self.ignore_value = ignore_value
        self.common_stride = int(shape.stride)
        self.feature_channels = channels
        self.loss_weight = loss_weight
        self.align_corners = align_corners
        self.classifier = nn.Conv2d(channels, num_classes, kernel_size=1)
        self.aux_in_feature = aux_in_feature
        self.aux_weight = aux_weight
        self.aux_head = None
        if aux_in_feature is not None:
            aux_shape = feature_shape(input_shape, aux_in_feature, owner)
            self.aux_head = FCNAuxHead(
                in_channels=int(aux_shape.channels),
                num_classes=num_classes,
                channels=aux_channels,
                dropout=dropout,
                norm=norm,
            )
        return shape

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """B×C_in×h×w → the classifier's input feature B×channels×h×w."""
        raise NotImplementedError

    def layers(self, features: Dict[str, torch.Tensor]) -> SegHeadOutputs:
        """Feature (B×channels×h×w, post-dropout in training), logits (B×K×h×w) and, in training
        with an aux head, aux logits on ``aux_in_feature`` (None in eval: nobody reads them)."""
        feature = self.context(features[self.in_feature])
        aux_logits = None
        if self.aux_head is not None and self.training:
            aux_logits = self.aux_head(features[self.aux_in_feature])
        return SegHeadOutputs(feature=feature, logits=self.classifier(feature), aux_logits=aux_logits)
