"""The recipe's training transforms computed on the crop window only (docs/METHOD.md §4a).

The official order resizes, rotates and blurs the whole scaled image (up to 2× the input: 1024×1366
for a 512×683 ADE20K photo) and keeps a 473×473 crop of it. :class:`RecipeAugmentations` draws the
same transforms in the same order from ``np.random`` (so a seeded stream gives the same scale, angle,
blur, flip and crop offset as the list applied one augmentation at a time), and
:class:`RecipeWindowTransform` then computes only the pixels that the crop keeps:

- image: the region of the scaled image that the rotated window reads is resampled from the input in
  float32 with ``cv2.warpAffine`` (the inverse map of ``cv2.resize(fx=s, fy=s, INTER_LINEAR)``,
  replicated edges as cv2.resize clamps them; equal to ``cv2.resize`` of the whole image on that
  region up to float32 rounding with the OpenCV 5.1 used here, whose warpAffine samples at float
  coordinates; a build that quantises them to 1/32 pixel, as OpenCV's older fixed-point warp does,
  would fail the recipe tests), rotated with the recipe's matrix shifted to the window, blurred with the kernel's margin
  (cv2's reflected border where the window meets the image edge, as on the whole image), rounded to
  uint8 once, flipped and placed into the crop, padded with the pad colour. The result is the
  official float32 recipe rounded once: within 0.5 grey levels of it (plus float32 error), where
  the transforms applied one at a time round after each step (up to 1.2 grey levels);
- label: the window's rows and columns of ``cv2.resize(INTER_NEAREST_EXACT)`` gathered from the input
  (cv2's own source index of each output row and column), then the rotation's nearest warp on the
  window only: equal to the step-by-step result.

Any other list of transforms, or an image that is not uint8 with 1–4 channels, is applied one
transform after the other as Detectron2's :class:`TransformList` does.
"""
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
from fvcore.transforms.transform import (
    CropTransform,
    HFlipTransform,
    NoOpTransform,
    PadTransform,
    Transform,
    TransformList,
)

from detectron2.data import transforms as T

from .common import (
    Box,
    cached_fill,
    gaussian_kernel,
    keep_channel_axis,
    nearest_exact_index,
    read_box,
    shifted_matrix,
)
from .crop import ColorPadTransform, PadToCrop
from .geometry import LinearResizeTransform, RandomRotationWithIgnore, RandomScale, RotationWithPadTransform
from .photometric import GaussianBlurTransform, RandomGaussianBlur

__all__ = ["RecipeAugmentations", "RecipeWindowTransform"]

# Augmentations whose ``get_transform(image)`` reads the image's shape only, so the draws can be made
# before any pixel is computed.
_SHAPE_ONLY = (
    RandomScale, RandomRotationWithIgnore, RandomGaussianBlur, T.RandomFlip, PadToCrop, T.RandomCrop,
)
# Label dtypes that cv2's nearest warp and border copy take (the mapper's labels: uint8 or float32).
_LABEL_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.int16), np.dtype(np.float32))
_SAME_SHAPE = (NoOpTransform, GaussianBlurTransform, HFlipTransform)


def _output_shape(tfm: Transform, shape: Tuple[int, ...]) -> Tuple[int, ...]:
    h, w = shape[:2]
    if type(tfm) in _SAME_SHAPE:  # exact types first: isinstance on these ABC classes is slow
        return shape
    if isinstance(tfm, LinearResizeTransform):
        h, w = tfm.new_h, tfm.new_w
    elif isinstance(tfm, PadTransform):
        h, w = h + tfm.y0 + tfm.y1, w + tfm.x0 + tfm.x1
    elif isinstance(tfm, CropTransform):
        h, w = tfm.h, tfm.w
    elif isinstance(tfm, RotationWithPadTransform):
        h, w = tfm.bound_h, tfm.bound_w
    return (h, w) + tuple(shape[2:])


class _ShapeOnly:
    """What the shape-only augmentations' ``get_transform(image)`` read of the image: its ``shape``."""

    __slots__ = ("shape",)

    def __init__(self, shape: Tuple[int, ...]):
        self.shape = shape


class RecipeAugmentations(T.AugmentationList):
    """An :class:`AugmentationList` of the recipe's training augmentations whose transforms are applied
    in one pass over the crop window (:class:`RecipeWindowTransform`).

    The draws are those of ``AugmentationList(augs)``, in the same order and from the same
    ``np.random`` calls: each augmentation's ``get_transform`` is called on an array of the shape the
    previous transforms produce. When an augmentation needs pixels to draw (e.g. Detectron2's
    ``RandomCrop_CategoryAreaConstraint``) or the input has boxes, the list is applied one
    augmentation at a time, as ``AugmentationList`` does.
    """

    def __init__(self, augs: Sequence[T.Augmentation]):
        """
        Args:
            augs: the augmentations in order, e.g. the list of
                :func:`apd.data.transforms.build_train_augmentations`.
        """
        super().__init__(list(augs))
        # Exact types: a subclass may read pixels in get_transform.
        self.shape_only = all(type(a) in _SHAPE_ONLY for a in self.augs)

    def __call__(self, aug_input) -> TransformList:
        if not self.shape_only or getattr(aug_input, "boxes", None) is not None:
            return super().__call__(aug_input)
        shape = aug_input.image.shape
        tfms: List[Transform] = []
        for aug in self.augs:
            tfm = aug.get_transform(_ShapeOnly(shape))
            tfms.append(tfm)
            shape = _output_shape(tfm, shape)
        fused = RecipeWindowTransform(tfms)
        aug_input.transform(fused)
        return fused


class _Plan:
    """Where the crop comes from: sizes, the window in the rotated scaled image, its place in the crop."""

    def __init__(self, tfms: Sequence[Transform]):
        kinds = [
            (LinearResizeTransform, "resize"),
            (RotationWithPadTransform, "rotation"),
            (GaussianBlurTransform, "blur"),
            (HFlipTransform, "flip"),
            (ColorPadTransform, "pad"),
            (CropTransform, "crop"),
        ]
        steps = [t for t in tfms if type(t) is not NoOpTransform]
        for kind, name in kinds:
            setattr(self, name, steps.pop(0) if steps and type(steps[0]) is kind else None)
        if steps or self.crop is None:
            raise ValueError("not the recipe's order")
        if self.rotation is not None and self.rotation.interp != cv2.INTER_LINEAR:
            raise ValueError("the window path resamples images bilinearly only")
        resize, rotation = self.resize, self.rotation
        self.in_hw = (resize.h, resize.w) if resize is not None else None
        if resize is not None and rotation is not None and (resize.new_h, resize.new_w) != (rotation.h, rotation.w):
            raise ValueError("rotation drawn for another size")

    def window(self, hw: Tuple[int, int]) -> Tuple[Box, Tuple[int, int]]:
        """The crop's pixels that come from the image: their box in the (rotated) scaled image and
        the crop position of the box's top-left pixel. ``hw``: the scaled image's size."""
        h, w = hw
        top = left = 0
        if self.pad is not None:
            top, left = self.pad.y0, self.pad.x0
        crop = self.crop
        y0, x0 = crop.y0 - top, crop.x0 - left
        r0, r1 = max(0, y0), min(h, y0 + crop.h)
        c0, c1 = max(0, x0), min(w, x0 + crop.w)
        place = (r0 - y0, c0 - x0)
        if self.flip is not None:
            c0, c1 = w - c1, w - c0
        return (r0, r1, c0, c1), place


class RecipeWindowTransform(TransformList):
    """The transforms ``[resize, rotation, blur, flip, pad, crop]`` of the recipe (each but the crop
    optional, no-ops allowed anywhere), applied on the crop window only (module docstring).

    ``transforms`` holds the individual transforms (Detectron2 flattens this list into the list an
    ``AugmentationList`` returns), and every method other than ``apply_image`` and
    ``apply_segmentation`` (coordinates, boxes, polygons, ``inverse``) is theirs, in order.
    ``apply_image`` takes H×W×C uint8 images (C in 1..4) or H×W uint8 and returns the crop,
    uint8, C channels kept; ``apply_segmentation`` takes an H×W map of any dtype cv2 resamples
    (uint8, int16, uint16, float32) and returns the crop, the label pads filled with the pad
    transform's ``seg_pad_value`` and the rotation's ``seg_pad``. Other inputs go through the
    transforms one at a time.

    Raises:
        ValueError: an input whose size is not the one the transforms were drawn for.
    """

    def __init__(self, transforms: Sequence[Transform]):
        super().__init__(list(transforms))
        try:
            self.plan: Optional[_Plan] = _Plan(self.transforms)
        except ValueError:
            self.plan = None

    def __getattribute__(self, name: str):
        # TransformList answers every ``apply_*`` with its loop over the transforms; these two are ours.
        # Other names skip TransformList's hook (a Python frame on every attribute of the hot path).
        if name.startswith("apply_"):
            if name in ("apply_image", "apply_segmentation"):
                return object.__getattribute__(self, "_window_" + name)
            return TransformList.__getattribute__(self, name)
        return object.__getattribute__(self, name)

    # ------------------------------------------------------------------------------------- helpers
    def _sizes(self, arr: np.ndarray) -> Tuple[int, int]:
        """The scaled image's size for an input ``arr``, checking the input size."""
        plan = self.plan
        h, w = arr.shape[:2]
        if plan.resize is not None:
            if (h, w) != plan.in_hw:
                raise ValueError(
                    f"RecipeWindowTransform built for {plan.in_hw} got an array of shape {arr.shape}."
                )
            h, w = plan.resize.new_h, plan.resize.new_w
        elif plan.rotation is not None and (h, w) != (plan.rotation.h, plan.rotation.w):
            raise ValueError(
                f"RecipeWindowTransform built for {(plan.rotation.h, plan.rotation.w)} got an array of "
                f"shape {arr.shape}."
            )
        if plan.flip is not None and plan.flip.width != w:
            raise ValueError(f"RecipeWindowTransform: a flip drawn for width {plan.flip.width} on width {w}.")
        return h, w

    def _scaled_region(self, img: np.ndarray, box: Box) -> np.ndarray:
        """float32 pixels ``box`` of ``cv2.resize(float32(img), fx=s, fy=s, INTER_LINEAR)``, computed from
        the input pixels that they read only."""
        y0, y1, x0, x1 = box
        resize = self.plan.resize
        if resize is None or (resize.new_h, resize.new_w) == (resize.h, resize.w):
            # cv2.resize to the same size copies the image (no resampling at (x + 0.5)/s − 0.5)
            return img[y0:y1, x0:x1].astype(np.float32)
        h, w = resize.h, resize.w
        if resize.resizes_by_factor:  # cv2.resize's source step: 1/fx, or source / destination size
            step_y = step_x = 1.0 / resize.scale
        else:
            step_y, step_x = h / resize.new_h, w / resize.new_w
        # Source rows / columns that bilinear sampling at (i + 0.5)·step − 0.5 reads, one more each side.
        sy0 = max(0, int(np.floor((y0 + 0.5) * step_y - 0.5)) - 1)
        sy1 = min(h, int(np.floor((y1 - 0.5) * step_y - 0.5)) + 3)
        sx0 = max(0, int(np.floor((x0 + 0.5) * step_x - 0.5)) - 1)
        sx1 = min(w, int(np.floor((x1 - 0.5) * step_x - 0.5)) + 3)
        src = img[sy0:sy1, sx0:sx1].astype(np.float32)
        inverse = np.array(
            [
                [step_x, 0.0, step_x * (x0 + 0.5) - 0.5 - sx0],
                [0.0, step_y, step_y * (y0 + 0.5) - 0.5 - sy0],
            ]
        )
        out = cv2.warpAffine(
            src, inverse, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        return keep_channel_axis(out, img)

    def _rotated_region(self, img: np.ndarray, box: Box, hw: Tuple[int, int]) -> np.ndarray:
        """float32 pixels ``box`` of the scaled image rotated by the recipe's matrix (mean border)."""
        rotation = self.plan.rotation
        if rotation is None:
            return self._scaled_region(img, box)
        y0, y1, x0, x1 = box
        matrix = rotation.rm_image
        ry0, ry1, rx0, rx1 = read_box(matrix, box, hw)
        channels = img.shape[2] if img.ndim == 3 else 1
        fill = cached_fill(rotation.image_pad, np.float32, channels)
        if ry0 >= ry1 or rx0 >= rx1:  # the window sees none of the image
            out = np.empty((y1 - y0, x1 - x0, channels), np.float32)
            out[...] = fill
            return out if img.ndim == 3 else out[:, :, 0]
        scaled = self._scaled_region(img, (ry0, ry1, rx0, rx1))
        out = cv2.warpAffine(
            scaled, shifted_matrix(matrix, (rx0, ry0), (x0, y0)), (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(float(v) for v in fill.reshape(-1)),
        )
        return keep_channel_axis(out, img)

    def _scaled_label_region(self, segmentation: np.ndarray, box: Box) -> np.ndarray:
        """Pixels ``box`` of the resize's ``cv2.resize(INTER_NEAREST_EXACT)``, gathered from the input:
        cv2's nearest source row and column of each output row and column are its resize of the
        index vectors ``0..h−1`` and ``0..w−1`` (that resize is separable)."""
        y0, y1, x0, x1 = box
        resize = self.plan.resize
        if resize is None:
            return segmentation[y0:y1, x0:x1]
        rows = nearest_exact_index(resize.h, resize.new_h)[y0:y1]
        cols = nearest_exact_index(resize.w, resize.new_w)[x0:x1]
        return np.take(segmentation[rows], cols, axis=1)

    def _place(self, window: np.ndarray, place: Tuple[int, int], fill: np.ndarray) -> np.ndarray:
        """The crop: ``window`` flipped when the recipe flips, at ``place``, the rest ``fill``."""
        plan = self.plan
        crop_h, crop_w = plan.crop.h, plan.crop.w
        if window.size == 0:
            out = np.empty((crop_h, crop_w) + window.shape[2:], dtype=window.dtype)
            out[...] = fill
            return out
        if plan.flip is not None:
            window = keep_channel_axis(cv2.flip(window, 1), window)  # numpy's [:, ::-1] copy: ~50× slower
        py, px = place
        wh, ww = window.shape[:2]
        if (wh, ww) == (crop_h, crop_w):
            return np.ascontiguousarray(window)
        border = (py, crop_h - py - wh, px, crop_w - px - ww)
        if window.ndim == 2 or window.shape[2] <= 4:
            value = tuple(float(v) for v in np.asarray(fill).reshape(-1))
            out = cv2.copyMakeBorder(np.ascontiguousarray(window), *border, cv2.BORDER_CONSTANT, value=value)
            return keep_channel_axis(out, window)
        out = np.empty((crop_h, crop_w) + window.shape[2:], dtype=window.dtype)
        out[...] = fill
        out[py : py + wh, px : px + ww] = window
        return out

    # ------------------------------------------------------------------------------------ applying
    def _window_apply_image(self, img: np.ndarray) -> np.ndarray:
        if (
            self.plan is None
            or img.dtype != np.uint8
            or not (img.ndim == 2 or (img.ndim == 3 and 1 <= img.shape[2] <= 4))
        ):
            return self._apply(img, "apply_image")
        plan = self.plan
        hw = self._sizes(img)
        (r0, r1, c0, c1), place = plan.window(hw)
        channels = img.shape[2] if img.ndim == 3 else 1
        fill = cached_fill(plan.pad.pad_value if plan.pad is not None else 0, np.uint8, channels)
        if r0 >= r1 or c0 >= c1:
            return self._place(np.empty((0, 0) + img.shape[2:], np.uint8), place, fill)
        margin = int(plan.blur.kernel_size) // 2 if plan.blur is not None else 0
        h, w = hw
        box = (max(0, r0 - margin), min(h, r1 + margin), max(0, c0 - margin), min(w, c1 + margin))
        values = self._rotated_region(img, box, hw)
        inner = (slice(r0 - box[0], r1 - box[0]), slice(c0 - box[2], c1 - box[2]))
        if plan.blur is not None:
            # cv2.GaussianBlur's separable float32 kernel with the rounding to uint8 in the same pass:
            # the same bytes as convertScaleAbs(GaussianBlur(values)), ~15% faster.
            kernel = gaussian_kernel(int(plan.blur.kernel_size), float(plan.blur.sigma))
            window = keep_channel_axis(cv2.sepFilter2D(values, cv2.CV_8U, kernel, kernel), values)[inner]
        else:
            window = keep_channel_axis(cv2.convertScaleAbs(values[inner]), values)  # rounds to nearest, saturates
        return self._place(window, place, fill)

    def _window_apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        if self.plan is None or segmentation.ndim != 2 or segmentation.dtype not in _LABEL_DTYPES:
            return self._apply(segmentation, "apply_segmentation")
        plan = self.plan
        hw = self._sizes(segmentation)
        (r0, r1, c0, c1), place = plan.window(hw)
        pad_id = plan.pad.seg_pad_value if plan.pad is not None else 0
        fill = np.asarray(pad_id, dtype=segmentation.dtype)
        if r0 >= r1 or c0 >= c1:
            return self._place(np.empty((0, 0), segmentation.dtype), place, fill)
        if plan.rotation is None:
            window = self._scaled_label_region(segmentation, (r0, r1, c0, c1))
        else:
            matrix = plan.rotation.rm_image
            ry0, ry1, rx0, rx1 = read_box(matrix, (r0, r1, c0, c1), hw)
            if ry0 >= ry1 or rx0 >= rx1:
                window = np.full((r1 - r0, c1 - c0), plan.rotation.seg_pad, dtype=segmentation.dtype)
            else:
                scaled = self._scaled_label_region(segmentation, (ry0, ry1, rx0, rx1))
                window = cv2.warpAffine(
                    scaled, shifted_matrix(matrix, (rx0, ry0), (c0, r0)), (c1 - c0, r1 - r0),
                    flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=float(plan.rotation.seg_pad),
                )
        return self._place(window, place, fill)
