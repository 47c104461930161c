"""Semantic FPN head (Panoptic FPN's semantic branch) that also exposes its classifier feature.

Reuses Detectron2's :class:`SemSegFPNHead` (scale heads, predictor, weights) and only changes what
leaves the head: ``layers()`` returns :class:`SegHeadOutputs` instead of bare logits, so distillation can read the summed stride-``common_stride`` feature that enters the 1×1
predictor.
The scale heads upsample with ``align_corners=False`` (Detectron2's choice), so the head does too.
"""
from typing import Callable, Dict, Optional, Union

import torch

from detectron2.layers import ShapeSpec
from detectron2.modeling.meta_arch.semantic_seg import SemSegFPNHead

from .base import SegHeadMixin
from .outputs import SegHeadOutputs

__all__ = ["FPNSegHead"]


class FPNSegHead(SegHeadMixin, SemSegFPNHead):
    """:class:`SemSegFPNHead` with the APD head contract (ARCHITECTURE.md, "Segmentation heads").

    Attributes: ``num_classes``, ``ignore_value``, ``common_stride``, ``feature_channels``
    (= ``conv_dims``), ``loss_weight``, ``align_corners`` (always False), ``in_features``.
    """

    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        num_classes: int,
        conv_dims: int = 128,
        common_stride: int = 4,
        loss_weight: float = 1.0,
        norm: Optional[Union[str, Callable]] = "GN",
        ignore_value: int = 255,
    ):
        """
        Args:
            input_shape: shapes of the FPN levels to fuse (e.g. p2..p5).
            num_classes: K.
            conv_dims: channels of the scale-head convs = channels of ``SegHeadOutputs.feature``.
            common_stride: stride every level is brought to before summation (4).
            loss_weight: weight of ``loss_sem_seg``.
            norm: normalisation of the scale-head convs ("GN" as in Panoptic FPN).
            ignore_value: label value ignored by the loss.
        """
        # Keyword call: a LazyConfig-built input_shape is a DictConfig, which the parent's
        # @configurable would take for a cfg if passed positionally.
        super().__init__(
            input_shape=input_shape,
            num_classes=num_classes,
            conv_dims=conv_dims,
            common_stride=common_stride,
            loss_weight=loss_weight,
            norm=norm,
            ignore_value=ignore_value,
        )
        self.num_classes = num_classes
        self.feature_channels = conv_dims
        self.align_corners = False

    def layers(self, features: Dict[str, torch.Tensor]) -> SegHeadOutputs:
        """Sum of the scale heads' outputs (B×conv_dims×h×w at ``common_stride``) and the
        predictor's B×K×h×w logits; no aux head."""
        feature = None
        for name, scale_head in zip(self.in_features, self.scale_heads):
            y = scale_head(features[name])
            feature = y if feature is None else feature + y
        return SegHeadOutputs(feature=feature, logits=self.predictor(feature))
