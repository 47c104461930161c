"""Geometric transforms of the recipe: the cv2 bilinear resize (random scale, test-time longer side) and the
rotation about the image centre with explicit pads (docs/METHOD.md §4a).

Images are H×W×C arrays (uint8, 0–255); segmentation maps H×W integer arrays, resampled with
nearest-neighbour interpolation so no new class id appears (pads use the ignore id). Randomness comes
from ``np.random``, as in Detectron2.
"""
from typing import Optional, Sequence

import cv2
import numpy as np
from fvcore.transforms.transform import NoOpTransform, Transform

from detectron2.data import transforms as T
from detectron2.data.transforms import RotationTransform

from .common import IMAGENET_MEAN_RGB, PadValue, image_fill, keep_channel_axis

__all__ = [
    "LinearResizeTransform",
    "RotationWithPadTransform",
    "RandomScale",
    "RandomRotationWithIgnore",
    "ResizeLongestEdge",
]


class LinearResizeTransform(Transform):
    """Resize with OpenCV as the official code does: ``cv2.INTER_LINEAR`` for the image (no
    antialiasing when shrinking), nearest for the segmentation, aligned with the image.

    With ``scale`` the output is ``cv2.resize(img, None, fx=scale, fy=scale)`` (the official
    ``RandScale``: size ``round(h·s) × round(w·s)``, source coordinates ``(x + 0.5)/s − 0.5``);
    without it, ``cv2.resize(img, (new_w, new_h))`` (the official test-time resize). Labels use
    ``cv2.INTER_NEAREST_EXACT``, which picks the source pixel whose centre is nearest to the output
    pixel's centre under the same mapping (Pillow's nearest does the same), so label and image stay
    aligned; the official code's ``cv2.INTER_NEAREST`` picks ``floor(x/s)``, up to half a source pixel
    off the image (docs/METHOD.md §4).
    """

    def __init__(self, h: int, w: int, new_h: int, new_w: int, scale: Optional[float] = None):
        """
        Args:
            h, w: input size; new_h, new_w: output size (with ``scale``: round(h·scale), round(w·scale)).
            scale: the factor passed to cv2 as fx = fy, or None to resize to (new_h, new_w).
        """
        super().__init__()
        self._set_attributes(locals())

    @classmethod
    def by_factor(cls, h: int, w: int, scale: float) -> "LinearResizeTransform":
        """The transform of ``cv2.resize(img, None, fx=scale, fy=scale)`` (cv2 rounds half to even)."""
        return cls(h, w, max(1, int(np.rint(h * scale))), max(1, int(np.rint(w * scale))), float(scale))

    def _resize(self, img: np.ndarray, interp: int) -> np.ndarray:
        if img.shape[:2] != (self.h, self.w):
            raise ValueError(
                f"LinearResizeTransform built for {(self.h, self.w)} got an array of shape {img.shape}."
            )
        if self.resizes_by_factor:
            out = cv2.resize(img, None, fx=self.scale, fy=self.scale, interpolation=interp)
        else:
            out = cv2.resize(img, (self.new_w, self.new_h), interpolation=interp)
        return keep_channel_axis(out, img)

    @property
    def resizes_by_factor(self) -> bool:
        """Whether the resize is ``cv2.resize(fx=scale, fy=scale)``: a scale is given and the size cv2
        derives from it (``round(h·scale)``, half to even) is the drawn one (not, e.g., 0 for a 1-pixel
        side at scale 0.5). cv2 then samples source pixel (x + 0.5)/scale − 0.5; otherwise it resizes to
        (new_h, new_w), sampling (x + 0.5)·h/new_h − 0.5."""
        if self.scale is None:
            return False
        # Python's round() rounds half to even, as cv2's saturate_cast and np.rint do.
        return (round(self.h * self.scale), round(self.w * self.scale)) == (self.new_h, self.new_w)

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return self._resize(img, cv2.INTER_LINEAR)

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self._resize(segmentation, cv2.INTER_NEAREST_EXACT)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords = np.asarray(coords, dtype=np.float64).copy()
        coords[:, 0] *= self.new_w / self.w if self.scale is None else self.scale
        coords[:, 1] *= self.new_h / self.h if self.scale is None else self.scale
        return coords

    def inverse(self) -> Transform:
        return LinearResizeTransform(self.new_h, self.new_w, self.h, self.w)


class RotationWithPadTransform(RotationTransform):
    """Rotation that keeps the image size (no expansion), with explicit pads, as the official
    ``RandRotate``: ``cv2.warpAffine`` with ``cv2.getRotationMatrix2D((w/2, h/2), angle, 1)``, bilinear
    for the image, nearest for the segmentation.

    Detectron2's :class:`RotationTransform` fills the uncovered corners with 0 in both the image and
    the segmentation; here the image gets ``image_pad`` (e.g. the mean colour, which is 0 after
    normalisation) and the segmentation gets ``seg_pad`` (the ignore id), as the APD recipe does. The
    pixel ``(w/2, h/2)`` the official code turns about is half a pixel from the geometric centre that
    Detectron2 uses; ``apply_coords`` turns about the same point (``(w/2 + 0.5, h/2 + 0.5)`` in
    Detectron2's continuous coordinates).
    """

    def __init__(
        self,
        h: int,
        w: int,
        angle: float,
        *,
        image_pad: PadValue = IMAGENET_MEAN_RGB,
        seg_pad: int = 255,
        interp: Optional[int] = None,
    ):
        """
        Args:
            h, w: input (and output) size.
            angle: degrees, counter-clockwise.
            image_pad: scalar or per-channel fill for the image (channel order of the image).
            seg_pad: fill for the segmentation map (the ignore id).
            interp: cv2 interpolation for the image; default bilinear. Segmentation is always
                nearest.
        """
        # Detectron2 turns images about ``center - 0.5``: this centre gives the official (w/2, h/2).
        center = (w / 2 + 0.5, h / 2 + 0.5)
        super().__init__(h, w, angle, expand=False, center=center, interp=interp)
        self.image_pad = image_pad
        self.seg_pad = seg_pad

    def _warp(self, img: np.ndarray, interp: int, fill: np.ndarray) -> np.ndarray:
        if img.size == 0 or self.angle % 360 == 0:
            return img
        if img.shape[:2] != (self.h, self.w):
            raise ValueError(
                f"RotationWithPadTransform built for {(self.h, self.w)} got an array of shape "
                f"{img.shape}."
            )
        border = tuple(float(v) for v in np.asarray(fill).reshape(-1))
        out = cv2.warpAffine(
            img,
            self.rm_image,
            (self.bound_w, self.bound_h),
            flags=interp,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=border,
        )
        return keep_channel_axis(out, img)

    def apply_image(self, img: np.ndarray, interp: Optional[int] = None) -> np.ndarray:
        interp = interp if interp is not None else self.interp
        return self._warp(img, interp, image_fill(self.image_pad, img))

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        fill = np.asarray([self.seg_pad], dtype=np.float64)
        return self._warp(segmentation, cv2.INTER_NEAREST, fill)


class RandomScale(T.Augmentation):
    """Resize by a factor drawn uniformly from ``[min_scale, max_scale]`` (same factor for h and w).

    Detectron2's ``ResizeScale`` scales a fixed *target* box and ``RandomResize`` picks from a list
    of shapes; neither scales the input image itself, hence this class. The output size is
    ``round(h·s) × round(w·s)`` (at least 1). Uses :class:`LinearResizeTransform`: cv2 bilinear
    without antialiasing for the image (the official ``RandScale``), aligned nearest for the
    segmentation.
    """

    def __init__(self, min_scale: float = 0.5, max_scale: float = 2.0):
        super().__init__()
        if not 0 < min_scale <= max_scale:
            raise ValueError(
                f"RandomScale needs 0 < min_scale <= max_scale, got ({min_scale}, {max_scale})."
            )
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        scale = np.random.uniform(self.min_scale, self.max_scale)
        return LinearResizeTransform.by_factor(h, w, scale)


class RandomRotationWithIgnore(T.Augmentation):
    """With probability ``prob``, rotate by an angle drawn uniformly from ``angle`` (degrees) around
    the image centre, keeping the size; uncovered pixels get ``image_pad`` / ``seg_pad``.
    """

    def __init__(
        self,
        angle: Sequence[float] = (-10.0, 10.0),
        image_pad: PadValue = IMAGENET_MEAN_RGB,
        seg_pad: int = 255,
        prob: float = 0.5,
    ):
        """
        Args:
            angle: (min, max) in degrees.
            image_pad: image fill, in the image's channel order (ImageNet mean RGB by default).
            seg_pad: segmentation fill, the ignore id.
            prob: probability of rotating at all (APD/semseg ``RandRotate`` default 0.5).
        """
        super().__init__()
        if len(angle) != 2 or angle[0] > angle[1]:
            raise ValueError(f"RandomRotationWithIgnore needs angle=(min, max), got {angle}.")
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> Transform:
        angle = np.random.uniform(self.angle[0], self.angle[1])
        if self._rand_range() >= self.prob:
            return NoOpTransform()
        h, w = image.shape[:2]
        return RotationWithPadTransform(h, w, angle, image_pad=self.image_pad, seg_pad=self.seg_pad)


class ResizeLongestEdge(T.Augmentation):
    """Resize so that the longer side equals ``long_edge_length`` (aspect ratio kept).

    This is the test-time ``base_size`` of the APD/semseg evaluation (docs/METHOD.md §4: 512 for ADE20K
    and PASCAL-Context, 2048 for Cityscapes). The model's prediction is resized back to the original
    height/width by Detectron2's ``sem_seg_postprocess``, as the official ``test.py`` does. The image
    is resized with ``cv2.INTER_LINEAR`` as there (:class:`LinearResizeTransform`).
    """

    def __init__(self, long_edge_length: int):
        super().__init__()
        if long_edge_length < 1:
            raise ValueError(
                f"ResizeLongestEdge needs a positive long_edge_length, got {long_edge_length}."
            )
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        scale = self.long_edge_length / max(h, w)
        new_h = max(1, int(round(h * scale)))
        new_w = max(1, int(round(w * scale)))
        if (new_h, new_w) == (h, w):
            return NoOpTransform()
        return LinearResizeTransform(h, w, new_h, new_w)
