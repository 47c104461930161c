"""Tensor operations shared by losses, distillation terms and meta-architectures."""
from .resize import bilinear_resize, interpolation_matrix, resize_impl

__all__ = ["bilinear_resize", "interpolation_matrix", "resize_impl"]
