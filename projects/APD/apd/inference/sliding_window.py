"""Sliding-window (+ horizontal flip) inference as in the APD repo's ``tool/test.py``.

The image is padded (centred, with 0 = the pixel mean after normalisation) to at least the crop
size; crops of ``crop_size`` are taken every ``stride`` pixels (the last one flush with the far
border); the predictions of all crops covering a pixel are averaged (with the prediction of the
flipped crop, flipped back, when ``flip=True``); the padding is cut off. What is averaged is
whatever ``predict_fn`` returns: the Segmentor passes softmax probabilities, as the APD repo does.
"""
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch.nn import functional as F

__all__ = [
    "sliding_window_inference",
    "sliding_window_starts",
    "default_stride",
    "check_sliding_window",
]

IntPair = Union[int, Sequence[int]]


def _pair(value: IntPair, name: str) -> Tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) <= 0:
        raise ValueError(
            f"sliding window: {name} must be a positive int or (h, w) pair, got {value!r}"
        )
    return pair


def default_stride(crop_size: IntPair) -> Tuple[int, int]:
    """``ceil(2/3 · crop)`` per side, the APD test script's stride (476 for 713, 316 for 473)."""
    return tuple(-(-2 * c // 3) for c in _pair(crop_size, "crop_size"))


def check_sliding_window(spec: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    """Validate a sliding-window spec ``{crop_size, stride=None, flip=False}`` (dict or DictConfig).

    Returns None for None, else ``{"crop_size": (h, w), "stride": (h, w), "flip": bool}`` with the
    default stride filled in, ready for ``sliding_window_inference(..., **spec)``.
    """
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise TypeError(f"sliding_window must be a dict with crop_size/stride/flip, got {spec!r}")
    unknown = sorted(set(spec) - {"crop_size", "stride", "flip"})
    if unknown:
        raise ValueError(
            f"sliding_window: unknown keys {unknown} (allowed: crop_size, stride, flip)"
        )
    if spec.get("crop_size") is None:
        raise ValueError(f"sliding_window: crop_size is required, got {dict(spec)!r}")
    crop_size = _pair(spec["crop_size"], "crop_size")
    stride = spec.get("stride")
    stride = default_stride(crop_size) if stride is None else _pair(stride, "stride")
    return {"crop_size": crop_size, "stride": stride, "flip": bool(spec.get("flip", False))}


def sliding_window_starts(size: int, crop: int, stride: int) -> List[int]:
    """Start offsets of the crops along one side of length ``size`` ≥ ``crop``.

    ``ceil((size − crop) / stride) + 1`` crops at ``i · stride``, the last one moved back to end at
    ``size``. E.g. size 10, crop 4, stride 3 → [0, 3, 6]; size 11 → [0, 3, 6, 7].
    """
    if size < crop:
        raise ValueError(f"sliding window: side {size} is smaller than the crop {crop}; pad first")
    num = -(-(size - crop) // stride) + 1
    return [min(i * stride, size - crop) for i in range(num)]


def _predict_window(predict_fn, window: torch.Tensor, num_classes: int, flip: bool) -> torch.Tensor:
    n, _, h, w = window.shape
    batch = torch.cat([window, window.flip(-1)]) if flip else window
    out = predict_fn(batch)
    expected = (batch.shape[0], num_classes, h, w)
    if tuple(out.shape) != expected:
        raise ValueError(
            f"sliding window: predict_fn must map {tuple(batch.shape)} to {expected}, "
            f"got {tuple(out.shape)}"
        )
    out = out.float()
    if flip:
        out = (out[:n] + out[n:].flip(-1)) / 2
    return out


def sliding_window_inference(
    predict_fn: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    num_classes: int,
    crop_size: IntPair,
    stride: Optional[IntPair] = None,
    flip: bool = False,
) -> torch.Tensor:
    """Average ``predict_fn`` over sliding crops (and their horizontal flips) of ``image``.

    Args:
        predict_fn: maps an M×C×crop_h×crop_w batch to M×K×crop_h×crop_w scores (logits or
            probabilities, already at crop resolution); called once per crop, with M = 2·N when
            flipping.
        image: N×C×H×W normalised image(s) (N = 1 in the Segmentor).
        num_classes: K.
        crop_size: crop (h, w) or one int.
        stride: step (h, w) or one int; None → :func:`default_stride` (ceil(2/3 · crop)).
        flip: also predict on each horizontally flipped crop and average the two.
    Returns:
        N×K×H×W float32 averaged scores.
    """
    crop_h, crop_w = _pair(crop_size, "crop_size")
    stride_h, stride_w = default_stride(crop_size) if stride is None else _pair(stride, "stride")
    n, _, height, width = image.shape
    pad_h, pad_w = max(crop_h - height, 0), max(crop_w - width, 0)
    top, left = pad_h // 2, pad_w // 2
    padded = F.pad(image, (left, pad_w - left, top, pad_h - top), value=0.0)
    padded_h, padded_w = padded.shape[-2:]

    scores = image.new_zeros((n, num_classes, padded_h, padded_w), dtype=torch.float32)
    counts = image.new_zeros((1, 1, padded_h, padded_w), dtype=torch.float32)
    for y0 in sliding_window_starts(padded_h, crop_h, stride_h):
        for x0 in sliding_window_starts(padded_w, crop_w, stride_w):
            window = padded[:, :, y0 : y0 + crop_h, x0 : x0 + crop_w]
            scores[:, :, y0 : y0 + crop_h, x0 : x0 + crop_w] += _predict_window(
                predict_fn, window, num_classes, flip
            )
            counts[:, :, y0 : y0 + crop_h, x0 : x0 + crop_w] += 1
    scores /= counts
    return scores[:, :, top : top + height, left : left + width]
