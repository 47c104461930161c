"""What the augmentation modules share: the ImageNet statistics, the pad-value type and two array helpers."""
from typing import Sequence, Tuple, Union

import numpy as np

__all__ = ["IMAGENET_MEAN_RGB", "IMAGENET_STD_RGB", "PadValue"]

# ImageNet statistics in 0–255, RGB order: (0.485, 0.456, 0.406) × 255 and
# (0.229, 0.224, 0.225) × 255.
IMAGENET_MEAN_RGB: Tuple[float, float, float] = (123.675, 116.28, 103.53)
IMAGENET_STD_RGB: Tuple[float, float, float] = (58.395, 57.12, 57.375)

PadValue = Union[float, Sequence[float]]


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
