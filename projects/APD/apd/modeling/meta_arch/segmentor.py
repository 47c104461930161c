"""Segmentor: Detectron2's ``SemanticSegmentor`` + input format and sliding-window/flip inference.

Training is Detectron2's: normalise, pad images with ``backbone.size_divisibility`` and labels with
the head's ``ignore_value``, return the head's weighted loss dict. Inference returns
``[{"sem_seg": K×height×width}]`` per image through ``sem_seg_postprocess``, either from one pass
over the whole (padded) image — class logits — or, with ``sliding_window``, from averaged crops —
class *probabilities* (softmax averaged over crops and flips, as the APD repo's ``tool/test.py``);
both suit argmax-based mIoU. Stable API: ``forward``, ``preprocess_image``,
``preprocess_sem_seg``, ``predict_logits``, ``postprocess``, ``backbone``, ``sem_seg_head``, ``input_format``.
"""
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from detectron2.modeling import META_ARCH_REGISTRY, Backbone, SemanticSegmentor
from detectron2.modeling.postprocessing import sem_seg_postprocess
from detectron2.structures import ImageList

from apd.inference.sliding_window import check_sliding_window, sliding_window_inference

from ..heads.base import upsample_logits
from ..heads.outputs import SegHeadOutputs

__all__ = ["Segmentor"]

_INPUT_FORMATS = ("RGB", "BGR")


@META_ARCH_REGISTRY.register()
class Segmentor(SemanticSegmentor):
    """Semantic segmentation meta-architecture for heads with the APD contract (``layers()`` →
    :class:`SegHeadOutputs`); see ARCHITECTURE.md, "Segmentor"."""

    def __init__(
        self,
        *,
        backbone: Backbone,
        sem_seg_head: nn.Module,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        input_format: str = "RGB",
        sliding_window: Optional[Mapping[str, Any]] = None,
    ):
        """
        Args:
            backbone: a Detectron2 backbone.
            sem_seg_head: a head with ``layers()`` → :class:`SegHeadOutputs`, ``losses()``,
                ``ignore_value``, ``num_classes``, ``align_corners`` (our PSP/ASPP/FPN heads).
            pixel_mean, pixel_std: per-channel statistics in ``input_format`` order (0-255 scale).
            input_format: channel order of ``batched_inputs[i]["image"]``, "RGB" or "BGR". The model
                does not reorder channels; the dataset mapper produces this order and a distiller
                reads it to feed a teacher with a different format.
            sliding_window: None for whole-image inference, or ``dict(crop_size=(h, w),
                stride=(h, w) or None for ceil(2/3 · crop), flip=bool)``.
        """
        super().__init__(
            backbone=backbone, sem_seg_head=sem_seg_head, pixel_mean=pixel_mean, pixel_std=pixel_std
        )
        if input_format not in _INPUT_FORMATS:
            raise ValueError(
                f"Segmentor: input_format must be one of {_INPUT_FORMATS}, got {input_format!r}"
            )
        if len(pixel_mean) != 3 or len(pixel_std) != 3:
            raise ValueError(
                "Segmentor: pixel_mean/pixel_std need 3 values, "
                f"got {list(pixel_mean)}/{list(pixel_std)}"
            )
        self.input_format = input_format
        self.sliding_window = check_sliding_window(sliding_window)

    def preprocess_image(self, batched_inputs: List[Dict[str, Any]]) -> ImageList:
        """Detectron2's pre-processing (inline in ``SemanticSegmentor.forward``): each image normalised
        ``(x − mean) / std`` on the model's device, then padded into one batch with zeros (the mean) to
        ``backbone.size_divisibility`` / ``padding_constraints``."""
        images = [(x["image"].to(self.device) - self.pixel_mean) / self.pixel_std for x in batched_inputs]
        return ImageList.from_tensors(images, self.backbone.size_divisibility,
                                      padding_constraints=self.backbone.padding_constraints)

    def preprocess_sem_seg(self, batched_inputs: List[Dict[str, Any]]) -> torch.Tensor:
        """B×H×W int64 labels padded like the images, with ``sem_seg_head.ignore_value``."""
        if any("sem_seg" not in x for x in batched_inputs):
            raise ValueError("Segmentor: training needs a 'sem_seg' label in every batched input")
        targets = [x["sem_seg"].to(self.device) for x in batched_inputs]
        return ImageList.from_tensors(
            targets,
            self.backbone.size_divisibility,
            self.sem_seg_head.ignore_value,
            self.backbone.padding_constraints,
        ).tensor

    def forward(self, batched_inputs: List[Dict[str, Any]]):
        """Training: dict of weighted losses (``loss_sem_seg``, ``loss_aux``). Inference:
        ``[{"sem_seg": K×height×width}]`` (logits; averaged probabilities with a sliding window)."""
        images = self.preprocess_image(batched_inputs)
        if self.training:
            features = self.backbone(images.tensor)
            _, losses = self.sem_seg_head(features, self.preprocess_sem_seg(batched_inputs))
            return losses

        if self.sliding_window is None:
            results = self.predict_logits(images.tensor)
        else:
            results = [
                sliding_window_inference(
                    self._window_probabilities,
                    images.tensor[i : i + 1, :, :h, :w],
                    self.sem_seg_head.num_classes,
                    **self.sliding_window,
                )[0]
                for i, (h, w) in enumerate(images.image_sizes)
            ]
        return self.postprocess(results, images.image_sizes, batched_inputs)

    def postprocess(
        self, results: Sequence[torch.Tensor], image_sizes: Sequence[Sequence[int]], batched_inputs: List[Dict[str, Any]]
    ) -> List[Dict[str, torch.Tensor]]:
        """``[{"sem_seg": K×height×width}]``: each K×H×W result cropped to its image size and resized to the
        input's ``height``/``width`` (Detectron2's ``sem_seg_postprocess``)."""
        return [{"sem_seg": sem_seg_postprocess(result, size, x.get("height", size[0]), x.get("width", size[1]))}
                for result, size, x in zip(results, image_sizes, batched_inputs)]

    def predict_logits(self, images: torch.Tensor) -> torch.Tensor:
        """B×3×H×W normalised images → B×K×H×W float32 logits at exactly the input size.

        Pads (zeros) to ``backbone.size_divisibility`` if needed, runs backbone and
        ``sem_seg_head.layers()``, resizes the logits bilinearly (with the head's ``align_corners``)
        to the padded size and crops the padding off. Resizing to the exact input size (instead of
        ``common_stride``× the feature size, as Detectron2 heads do) reproduces the APD repo on its
        8k+1-sized crops with ``align_corners=True``.
        """
        height, width = images.shape[-2:]
        divisibility = self.backbone.size_divisibility
        if divisibility > 1:
            pad_h = math.ceil(height / divisibility) * divisibility - height
            pad_w = math.ceil(width / divisibility) * divisibility - width
            if pad_h or pad_w:  # (F.pad copies even with nothing to pad)
                images = F.pad(images, (0, pad_w, 0, pad_h), value=0.0)
        outputs = self.sem_seg_head.layers(self.backbone(images))
        if not isinstance(outputs, SegHeadOutputs):
            raise TypeError(
                f"Segmentor: {type(self.sem_seg_head).__name__}.layers() must return "
                f"SegHeadOutputs, got {type(outputs).__name__}"
            )
        logits = upsample_logits(
            outputs.logits, images.shape[-2:], getattr(self.sem_seg_head, "align_corners", False)
        )
        return logits[:, :, :height, :width]

    def _window_probabilities(self, windows: torch.Tensor) -> torch.Tensor:
        return F.softmax(self.predict_logits(windows), dim=1)
