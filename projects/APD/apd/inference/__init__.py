"""Inference-time helpers (sliding-window and flip averaging)."""
from .sliding_window import (
    check_sliding_window,
    default_stride,
    sliding_window_inference,
    sliding_window_starts,
)

__all__ = [
    "sliding_window_inference",
    "sliding_window_starts",
    "default_stride",
    "check_sliding_window",
]
