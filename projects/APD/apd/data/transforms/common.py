"""What the augmentation modules share: the ImageNet statistics, the pad-value type, array helpers, and the
geometry helpers of the crop-window path (``window.py``)."""
import functools
import math
from typing import Sequence, Tuple, Union

import cv2
import numpy as np

__all__ = ["IMAGENET_MEAN_RGB", "IMAGENET_STD_RGB", "PadValue"]

# ImageNet statistics in 0–255, RGB order: (0.485, 0.456, 0.406) × 255 and
# (0.229, 0.224, 0.225) × 255.
IMAGENET_MEAN_RGB: Tuple[float, float, float] = (123.675, 116.28, 103.53)
IMAGENET_STD_RGB: Tuple[float, float, float] = (58.395, 57.12, 57.375)

PadValue = Union[float, Sequence[float]]
Box = Tuple[int, int, int, int]  # y0, y1, x0, x1 (ends exclusive)


def image_fill(pad_value: PadValue, img: np.ndarray) -> np.ndarray:
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


def keep_channel_axis(out: np.ndarray, img: np.ndarray) -> np.ndarray:
    """cv2 drops a trailing channel axis of size 1; put it back so shapes round-trip."""
    if img.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    return out


@functools.lru_cache(maxsize=16)
def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """The 1-D kernel cv2.GaussianBlur uses on a float32 image (``getGaussianKernel``, CV_32F)."""
    return cv2.getGaussianKernel(size, sigma, cv2.CV_32F)


def cached_fill(pad_value, dtype, channels: int) -> np.ndarray:
    """:func:`image_fill` for a ``channels``-channel image of ``dtype``, computed once per pad value."""
    try:
        return _cached_fill(pad_value, np.dtype(dtype), channels)
    except TypeError:  # an unhashable pad value (a list)
        return image_fill(pad_value, np.empty((1, 1, channels), dtype))


@functools.lru_cache(maxsize=64)
def _cached_fill(pad_value, dtype: np.dtype, channels: int) -> np.ndarray:
    out = image_fill(pad_value, np.empty((1, 1, channels), dtype))
    out.flags.writeable = False
    return out


def nearest_exact_index(size: int, new_size: int) -> np.ndarray:
    """The source index of each of ``new_size`` outputs in cv2's ``INTER_NEAREST_EXACT`` resize."""
    index = np.arange(size, dtype=np.float32)[None]  # exact below 2**24
    return cv2.resize(index, (new_size, 1), interpolation=cv2.INTER_NEAREST_EXACT).reshape(-1).astype(np.intp)


def read_box(matrix: np.ndarray, box: Box, hw: Tuple[int, int]) -> Box:
    """The box of the (unrotated) image that ``cv2.warpAffine(·, matrix)`` reads for the output pixels
    ``box``, two pixels more on each side (bilinear taps), clipped to the image of size ``hw``."""
    y0, y1, x0, x1 = box
    h, w = hw
    (a, b, c), (d, e, f) = cv2.invertAffineTransform(matrix).tolist()  # plain floats: 8 values, no numpy
    corners = ((x0, y0), (x1 - 1, y0), (x0, y1 - 1), (x1 - 1, y1 - 1))
    xs = [a * x + b * y + c for x, y in corners]
    ys = [d * x + e * y + f for x, y in corners]
    return (
        max(0, math.floor(min(ys)) - 2),
        min(h, math.floor(max(ys)) + 4),
        max(0, math.floor(min(xs)) - 2),
        min(w, math.floor(max(xs)) + 4),
    )


def shifted_matrix(matrix: np.ndarray, source_origin: Tuple[int, int], output_origin: Tuple[int, int]) -> np.ndarray:
    """``matrix`` (forward, output = matrix · source) for a source cut at ``source_origin`` (x, y) and an
    output cut at ``output_origin``."""
    out = matrix.copy()
    out[:, 2] += matrix[:, :2] @ np.asarray(source_origin, np.float64) - np.asarray(output_origin, np.float64)
    return out

