"""Training and test augmentations for semantic segmentation (docs/METHOD.md §4).

The official APD recipe (semseg ``util/transform.py`` usage in ``tool/train.py``) applies, in
order: random scale [0.5, 2.0] → random rotation [−10°, 10°] (p = 0.5, image padded with the
ImageNet mean, labels with 255) → Gaussian blur (p = 0.5, 5×5 kernel) → horizontal flip → pad to
the crop size, centred (mean / 255) → uniform random crop, every resampling with OpenCV as there
(bilinear without antialiasing). :func:`build_train_augmentations` returns that list as Detectron2
:class:`Augmentation` objects; Detectron2's own ``RandomFlip``, ``RandomCrop`` and
``RandomCrop_CategoryAreaConstraint`` are reused where they already do the job. What still differs
from the official code is listed in docs/METHOD.md §4.

Conventions:
- Images are H×W×C arrays (uint8, 0–255, channels in the data mapper's ``image_format``); every
  image pad value is given in that channel order (``IMAGENET_MEAN_RGB`` for the default ``"RGB"``).
- Segmentation maps are H×W integer arrays; geometric transforms use nearest-neighbour
  interpolation on them, so a transform never creates a class id that was not in the input (pads
  use the ignore id).
- Randomness comes from ``np.random``, as in Detectron2, so ``seed_all_rng`` and the data loader's
  worker seeding apply.
"""
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from fvcore.transforms.transform import NoOpTransform, PadTransform, Transform

from detectron2.data import transforms as T
from detectron2.data.transforms import RotationTransform

__all__ = [
    "IMAGENET_MEAN_RGB",
    "IMAGENET_STD_RGB",
    "LinearResizeTransform",
    "RotationWithPadTransform",
    "GaussianBlurTransform",
    "ColorPadTransform",
    "RandomScale",
    "RandomRotationWithIgnore",
    "RandomGaussianBlur",
    "PadToCrop",
    "ResizeLongestEdge",
    "build_train_augmentations",
    "build_test_augmentations",
]

# ImageNet statistics in 0–255, RGB order: (0.485, 0.456, 0.406) × 255 and
# (0.229, 0.224, 0.225) × 255.
IMAGENET_MEAN_RGB: Tuple[float, float, float] = (123.675, 116.28, 103.53)
IMAGENET_STD_RGB: Tuple[float, float, float] = (58.395, 57.12, 57.375)

PadValue = Union[float, Sequence[float]]


def _image_fill(pad_value: PadValue, img: np.ndarray) -> np.ndarray:
    """The pad colour as an array broadcastable to one pixel of ``img``, cast to ``img.dtype``.

    A per-channel colour on a single-channel image becomes its mean (the grey level of that colour
    is not defined without a format; the mean is what a constant image of that colour averages to).
    """
    value = np.asarray(pad_value, dtype=np.float64).reshape(-1)
    channels = img.shape[2] if img.ndim == 3 else 1
    if value.size == 1:
        value = np.repeat(value, channels)
    elif channels == 1:
        value = value.mean(keepdims=True)
    elif value.size != channels:
        raise ValueError(
            f"Pad value {tuple(value.tolist())} has {value.size} channels but the image has "
            f"{channels}."
        )
    if np.issubdtype(img.dtype, np.integer):
        info = np.iinfo(img.dtype)
        value = np.clip(np.rint(value), info.min, info.max)
    return value.astype(img.dtype)


def _keep_channel_axis(out: np.ndarray, img: np.ndarray) -> np.ndarray:
    """cv2 drops a trailing channel axis of size 1; put it back so shapes round-trip."""
    if img.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    return out


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
        if self.scale is None:
            out = cv2.resize(img, (self.new_w, self.new_h), interpolation=interp)
        else:
            out = cv2.resize(img, None, fx=self.scale, fy=self.scale, interpolation=interp)
        if out.shape[:2] != (self.new_h, self.new_w):  # a scale whose rounding cv2 does otherwise
            out = cv2.resize(img, (self.new_w, self.new_h), interpolation=interp)
        return _keep_channel_axis(out, img)

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
        return _keep_channel_axis(out, img)

    def apply_image(self, img: np.ndarray, interp: Optional[int] = None) -> np.ndarray:
        interp = interp if interp is not None else self.interp
        return self._warp(img, interp, _image_fill(self.image_pad, img))

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        fill = np.asarray([self.seg_pad], dtype=np.float64)
        return self._warp(segmentation, cv2.INTER_NEAREST, fill)


class GaussianBlurTransform(Transform):
    """Photometric Gaussian blur (``cv2.GaussianBlur``) of the image; geometry, labels unchanged."""

    def __init__(self, kernel_size: int = 5, sigma: float = 0.0):
        """
        Args:
            kernel_size: odd side of the square kernel.
            sigma: Gaussian std in pixels; 0 lets OpenCV derive it from ``kernel_size``
                (0.3·((k−1)·0.5 − 1) + 0.8 = 1.1 for k = 5).
        """
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                f"GaussianBlurTransform needs an odd positive kernel_size, got {kernel_size}."
            )
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        k = int(self.kernel_size)
        out = cv2.GaussianBlur(img, (k, k), self.sigma)
        return _keep_channel_axis(out, img)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def inverse(self) -> Transform:
        # Like Detectron2's ColorTransform: photometric changes are not undone geometrically.
        return NoOpTransform()


class ColorPadTransform(PadTransform):
    """:class:`PadTransform` whose image fill may be a per-channel colour (fvcore's: a scalar)."""

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        fill = _image_fill(self.pad_value, img)
        if img.ndim == 3 and 1 <= img.shape[2] <= 4:  # cv2's border copy: ~4× numpy's fill + copy
            out = cv2.copyMakeBorder(
                img, self.y0, self.y1, self.x0, self.x1, cv2.BORDER_CONSTANT,
                value=tuple(float(v) for v in fill.reshape(-1)),
            )
            return _keep_channel_axis(out, img)
        h, w = img.shape[:2]
        out_shape = (self.y0 + h + self.y1, self.x0 + w + self.x1) + img.shape[2:]
        out = np.empty(out_shape, dtype=img.dtype)
        out[...] = fill
        out[self.y0 : self.y0 + h, self.x0 : self.x0 + w] = img
        return out


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


class RandomGaussianBlur(T.Augmentation):
    """With probability ``prob``, blur the image with a ``kernel_size``² Gaussian (labels kept)."""

    def __init__(self, prob: float = 0.5, kernel_size: int = 5, sigma: float = 0.0):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                f"RandomGaussianBlur needs an odd positive kernel_size, got {kernel_size}."
            )
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> Transform:
        if self._rand_range() < self.prob:
            return GaussianBlurTransform(self.kernel_size, self.sigma)
        return NoOpTransform()


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


def build_train_augmentations(
    crop_size: Sequence[int],
    scale: Optional[Sequence[float]] = (0.5, 2.0),
    rotate: Optional[Sequence[float]] = (-10.0, 10.0),
    blur_prob: float = 0.5,
    flip: bool = True,
    pad_value: PadValue = IMAGENET_MEAN_RGB,
    ignore_value: int = 255,
    cat_max_area: float = 1.0,
    *,
    rotate_prob: float = 0.5,
    blur_kernel_size: int = 5,
    pad_center: bool = True,
) -> List[T.Augmentation]:
    """The APD training augmentations, in the official order: scale, rotate, blur, flip, pad, crop.

    Args:
        crop_size: (h, w) of the training crop: (713, 713) for Cityscapes, (473, 473) otherwise.
        scale: (min, max) random scale factor; None disables scaling.
        rotate: (min, max) rotation in degrees; None disables rotation.
        blur_prob: probability of the Gaussian blur; 0 disables it.
        flip: add a horizontal flip with probability 0.5.
        pad_value: image pad colour in the mapper's image format order (ImageNet mean, RGB, 0–255).
        ignore_value: label id for padded pixels; also ignored by the crop's area constraint.
        cat_max_area: < 1 uses Detectron2's ``RandomCrop_CategoryAreaConstraint`` (retry up to 10
            windows until no single class covers more than this fraction, as d2's DeepLab
            configs with 0.75); 1.0 is the plain uniform crop of the APD recipe.
        rotate_prob: probability of rotating (APD/semseg default 0.5).
        blur_kernel_size: Gaussian kernel side (APD/semseg ``RandomGaussianBlur(radius=5)``).
        pad_center: split the crop padding between both sides, top/left ⌊pad/2⌋ (the official
            ``Crop``); False pads bottom/right.

    Returns:
        A list of Detectron2 augmentations for :class:`apd.data.dataset_mapper.SemSegDatasetMapper`.
    """
    crop_size = tuple(int(v) for v in crop_size)
    # Plain floats: a config's ListConfig would go through omegaconf's attribute lookups on every pad.
    pad_value = float(pad_value) if np.isscalar(pad_value) else tuple(float(v) for v in pad_value)
    augs: List[T.Augmentation] = []
    if scale is not None:
        augs.append(RandomScale(float(scale[0]), float(scale[1])))
    if rotate is not None:
        augs.append(
            RandomRotationWithIgnore(
                angle=tuple(float(a) for a in rotate),
                image_pad=pad_value,
                seg_pad=ignore_value,
                prob=rotate_prob,
            )
        )
    if blur_prob > 0:
        augs.append(RandomGaussianBlur(prob=blur_prob, kernel_size=blur_kernel_size))
    if flip:
        augs.append(T.RandomFlip(prob=0.5, horizontal=True, vertical=False))
    augs.append(PadToCrop(crop_size, image_pad=pad_value, seg_pad=ignore_value, center=pad_center))
    if cat_max_area < 1.0:
        augs.append(
            T.RandomCrop_CategoryAreaConstraint(
                "absolute",
                crop_size,
                single_category_max_area=cat_max_area,
                ignored_category=ignore_value,
            )
        )
    else:
        augs.append(T.RandomCrop("absolute", crop_size))
    return augs


def build_test_augmentations(base_size: Optional[int] = None) -> List[T.Augmentation]:
    """Test-time augmentations: none, or a resize of the longer side to ``base_size``."""
    return [] if base_size is None else [ResizeLongestEdge(int(base_size))]
