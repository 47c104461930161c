"""PSPNet head: pyramid pooling on the deepest feature, a 3×3 "merge" conv, a 1×1 classifier.

Matches the APD repo's ``model/pspnet.py`` (APD_SPEC §1, §4): bins (1, 2, 3, 6), each pooled
branch reduces to in/len(bins) channels; merge = 3×3 conv → norm → ReLU → Dropout2d(0.1) to 512
channels; that merged tensor is ``SegHeadOutputs.feature`` (the F_s/F_t that APD distils).
Layers use PyTorch's default initialisation, as the repo does.
"""
from typing import Callable, Dict, Optional, Sequence, Union

import torch
from torch import nn
from torch.nn import functional as F

from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY

from .aux_head import (
    FCNAuxHead,
    conv_norm_relu,
    feature_shape,
    inference_size,
    segmentation_losses,
    upsample_logits,
)
from .outputs import SegHeadOutputs

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


@SEM_SEG_HEADS_REGISTRY.register()
class PSPHead(nn.Module):
    """PSPNet head with an optional FCN auxiliary classifier (ARCHITECTURE.md, "Segmentation
    heads").

    Attributes: ``num_classes``, ``ignore_value``, ``common_stride`` (stride of ``in_feature``),
    ``feature_channels`` (= ``channels``), ``loss_weight``, ``aux_weight``, ``align_corners``.
    """

    @configurable
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
        shape = feature_shape(input_shape, in_feature, "PSPHead")
        self.in_feature = in_feature
        self.num_classes = num_classes
        self.ignore_value = ignore_value
        self.common_stride = int(shape.stride)
        self.feature_channels = channels
        self.loss_weight = loss_weight
        self.align_corners = align_corners

        self.ppm = PyramidPooling(
            in_channels=int(shape.channels), bins=bins, norm=norm, align_corners=align_corners
        )
        self.merge = nn.Sequential(
            conv_norm_relu(self.ppm.out_channels, channels, 3, norm), nn.Dropout2d(dropout)
        )
        self.classifier = nn.Conv2d(channels, num_classes, kernel_size=1)

        self.aux_in_feature = aux_in_feature
        self.aux_weight = aux_weight
        self.aux_head = None
        if aux_in_feature is not None:
            aux_shape = feature_shape(input_shape, aux_in_feature, "PSPHead")
            self.aux_head = FCNAuxHead(
                in_channels=int(aux_shape.channels),
                num_classes=num_classes,
                channels=aux_channels,
                dropout=dropout,
                norm=norm,
            )

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        head = cfg.MODEL.SEM_SEG_HEAD
        if len(head.IN_FEATURES) != 1:
            raise ValueError(
                "PSPHead reads one feature; "
                f"MODEL.SEM_SEG_HEAD.IN_FEATURES={list(head.IN_FEATURES)}"
            )
        return {
            "input_shape": input_shape,
            "num_classes": head.NUM_CLASSES,
            "in_feature": head.IN_FEATURES[0],
            "bins": tuple(head.get("BINS", (1, 2, 3, 6))),
            "channels": head.CONVS_DIM,
            "dropout": head.get("DROPOUT", 0.1),
            "norm": head.NORM,
            "ignore_value": head.IGNORE_VALUE,
            "loss_weight": head.LOSS_WEIGHT,
            "align_corners": head.get("ALIGN_CORNERS", False),
            "aux_in_feature": head.get("AUX_IN_FEATURE", None),
            "aux_channels": head.get("AUX_CHANNELS", 256),
            "aux_weight": head.get("AUX_WEIGHT", 0.4),
        }

    def layers(self, features: Dict[str, torch.Tensor]) -> SegHeadOutputs:
        """Feature (B×channels×h×w, post-dropout in training), logits (B×K×h×w) and, in training
        with an aux head, aux logits on ``aux_in_feature`` (None in eval: nobody reads them)."""
        feature = self.merge(self.ppm(features[self.in_feature]))
        aux_logits = None
        if self.aux_head is not None and self.training:
            aux_logits = self.aux_head(features[self.aux_in_feature])
        logits = self.classifier(feature)
        return SegHeadOutputs(feature=feature, logits=logits, aux_logits=aux_logits)

    def losses(self, outputs: SegHeadOutputs, targets: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``loss_sem_seg`` (and ``loss_aux``), weighted; see :func:`segmentation_losses`."""
        return segmentation_losses(
            outputs,
            targets,
            ignore_value=self.ignore_value,
            align_corners=self.align_corners,
            loss_weight=self.loss_weight,
            aux_weight=self.aux_weight,
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
