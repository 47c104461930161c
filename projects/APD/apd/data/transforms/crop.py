"""Padding to the crop size (centred, as the official ``Crop``) with a per-channel image colour
(docs/METHOD.md §4a). The random crop itself is Detectron2's ``RandomCrop``."""
from typing import Sequence

import cv2
import numpy as np
from fvcore.transforms.transform import NoOpTransform, PadTransform, Transform

from detectron2.data import transforms as T

from .common import IMAGENET_MEAN_RGB, PadValue, image_fill, keep_channel_axis

__all__ = ["ColorPadTransform", "PadToCrop"]


class ColorPadTransform(PadTransform):
    """:class:`PadTransform` whose image fill may be a per-channel colour (fvcore's: a scalar)."""

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        fill = image_fill(self.pad_value, img)
        if img.ndim == 3 and 1 <= img.shape[2] <= 4:  # cv2's border copy: ~4× numpy's fill + copy
            out = cv2.copyMakeBorder(
                img, self.y0, self.y1, self.x0, self.x1, cv2.BORDER_CONSTANT,
                value=tuple(float(v) for v in fill.reshape(-1)),
            )
            return keep_channel_axis(out, img)
        h, w = img.shape[:2]
        out_shape = (self.y0 + h + self.y1, self.x0 + w + self.x1) + img.shape[2:]
        out = np.empty(out_shape, dtype=img.dtype)
        out[...] = fill
        out[self.y0 : self.y0 + h, self.x0 : self.x0 + w] = img
        return out


class PadToCrop(T.Augmentation):
    """Pad so that the image is at least ``crop_size`` (h, w); a no-op when it already is.

    With ``center=True`` (the default) the pads are split between both sides as the official
    ``Crop`` does (top/left get ``⌊pad/2⌋``) and as the test-time padding does; ``center=False``
    pads the bottom/right (Detectron2's convention, e.g. ``FixedSizeCrop``). A random crop of
    ``crop_size`` afterwards never fails.
    """

    def __init__(
        self,
        crop_size: Sequence[int],
        image_pad: PadValue = IMAGENET_MEAN_RGB,
        seg_pad: int = 255,
        center: bool = True,
    ):
        super().__init__()
        if len(crop_size) != 2 or min(crop_size) < 1:
            raise ValueError(
                f"PadToCrop needs crop_size=(h, w) with positive ints, got {crop_size}."
            )
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        pad_h = max(int(self.crop_size[0]) - h, 0)
        pad_w = max(int(self.crop_size[1]) - w, 0)
        if pad_h == 0 and pad_w == 0:
            return NoOpTransform()
        top, left = (pad_h // 2, pad_w // 2) if self.center else (0, 0)
        return ColorPadTransform(
            left, top, pad_w - left, pad_h - top, w, h, self.image_pad, self.seg_pad
        )
