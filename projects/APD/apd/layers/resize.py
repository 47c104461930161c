"""Bilinear resize whose backward is two matrix products instead of a scatter.

``F.interpolate(x, size, mode="bilinear")`` is separable: every output row mixes two input rows and every
output column two input columns, with the same weights for every channel. With the two 1-D interpolation
matrices A_h (H×h) and A_w (W×w), ``out = A_h @ x @ A_wᵀ`` and its gradient is
``grad_x = A_hᵀ @ grad_out @ A_w``. PyTorch's own backward of the bilinear upsampling scatters every
output gradient into four input cells, with atomic adds on CUDA; at the full crop (B×K×713×713 from
90×90) it was the largest kernel of the KD term and of ``loss_adapt`` (docs/BENCHMARKS.md, "Cost on a
GPU"). The matrix form does 45× more multiply-adds than the scatter (dense 90-column rows, two of them
non-zero) but as GEMMs; that wins on a GPU and loses on a CPU, where PyTorch's backward is a plain loop.

:func:`bilinear_resize` therefore always computes the forward with ``F.interpolate`` (bit for bit the same
output) and chooses the backward with ``impl``:

* ``"matmul"``: ``A_hᵀ @ grad @ A_w`` (fp32 matrix products; half-precision gradients are computed in fp32);
* ``"interpolate"``: PyTorch's ``upsample_bilinear2d_backward``;
* ``"auto"`` (default): ``"matmul"`` on CUDA, ``"interpolate"`` elsewhere.

The matrix form needs fp32 matrix products at full precision: when ``torch.get_float32_matmul_precision()``
is not ``"highest"`` (TF32 allowed) the backward falls back to PyTorch's. The default can be changed for a
process or a block with :func:`resize_impl` (the cost benchmark compares both in one process).

The weights follow PyTorch's rules for ``mode="bilinear"`` with an explicit ``size`` (no antialias),
up- and down-sampling alike:

* ``align_corners=True``: source coordinate ``s = d · (in − 1) / (out − 1)`` (0 when out = 1);
* ``align_corners=False``: ``s = max((d + 0.5) · in / out − 0.5, 0)``;

then ``i0 = ⌊s⌋``, ``i1 = min(i0 + 1, in − 1)``, weights ``1 − (s − i0)`` and ``s − i0``. They are
PyTorch's own weights bit for bit (float32 coordinates rounded as its kernels round them), so the two
backwards differ only by the order of the additions (~1e-7 relative in fp32; ``tests/layers/test_resize.py``).
"""
import contextlib
import functools
from typing import Iterator, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

__all__ = [
    "IMPLS",
    "bilinear_resize",
    "bilinear_resize_backward",
    "interpolation_matrix",
    "resize_impl",
    "resolve_impl",
]

IMPLS = ("auto", "matmul", "interpolate")
_default = {"impl": "auto"}


@contextlib.contextmanager
def _restore(previous: str) -> Iterator[None]:
    try:
        yield
    finally:
        _default["impl"] = previous


def _check_impl(impl: str) -> str:
    if impl not in IMPLS:
        raise ValueError(f"resize implementation must be one of {IMPLS}, got {impl!r}")
    return impl


def resize_impl(impl: Optional[str] = None):
    """Set the process-wide default backward of :func:`bilinear_resize` ("auto" | "matmul" | "interpolate").

    ``resize_impl("interpolate")`` switches for good; ``with resize_impl("interpolate"): ...`` switches
    for the block and restores the previous one. ``resize_impl()`` returns the current name.
    """
    if impl is None:
        return _default["impl"]
    previous = _default["impl"]
    _default["impl"] = _check_impl(impl)
    return _restore(previous)


def resolve_impl(impl: Optional[str], device: torch.device) -> str:
    """The backward that runs for ``impl`` (None: the default) on ``device``: "matmul" or "interpolate"."""
    impl = _check_impl(impl or _default["impl"])
    if impl == "auto":
        impl = "matmul" if device.type == "cuda" else "interpolate"
    if impl == "matmul" and torch.get_float32_matmul_precision() != "highest":
        impl = "interpolate"  # TF32 products would change the gradient by ~1e-3
    return impl


@functools.lru_cache(maxsize=64)
def _matrix(out_size: int, in_size: int, align_corners: bool, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # Coordinates in float32 for float32 and half matrices (as PyTorch's kernels compute them for those
    # inputs), in float64 for float64.
    f = torch.float64 if dtype == torch.float64 else torch.float32
    dst = torch.arange(out_size, dtype=f)
    if align_corners:
        if out_size > 1:
            src = dst * (torch.tensor(in_size - 1, dtype=f) / (out_size - 1))
        else:
            src = torch.zeros(out_size, dtype=f)
    else:
        scale = torch.tensor(in_size, dtype=f) / out_size
        # One rounding of scale·(d + ½) − ½ (the fused multiply-add of PyTorch's compiled kernels):
        # computed in float64 and rounded once, it reproduces their float32 coordinates bit for bit.
        src = ((dst.double() + 0.5) * scale.double() - 0.5).to(f).clamp(min=0.0)
    i0 = src.floor().long().clamp(max=in_size - 1)
    i1 = (i0 + 1).clamp(max=in_size - 1)
    w1 = src - i0.to(f)
    rows = torch.arange(out_size)
    a = torch.zeros(out_size, in_size, dtype=f)
    a.index_put_((rows, i0), 1.0 - w1, accumulate=True)
    a.index_put_((rows, i1), w1, accumulate=True)
    return a.to(device=device, dtype=dtype)


def interpolation_matrix(
    out_size: int, in_size: int, align_corners: bool, device=None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The out×in matrix A of 1-D linear interpolation (``y = A @ x``) that PyTorch's bilinear resize
    applies along one axis, for inputs of ``dtype``. Cached per (sizes, mode, device, dtype)."""
    if out_size < 1 or in_size < 1:
        raise ValueError(f"sizes must be >= 1, got out={out_size}, in={in_size}")
    return _matrix(int(out_size), int(in_size), bool(align_corners), torch.device(device or "cpu"), dtype)


def bilinear_resize_backward(
    grad: torch.Tensor, in_size: Tuple[int, int], align_corners: bool, impl: Optional[str] = None
) -> torch.Tensor:
    """Gradient w.r.t. the B×C×h×w input of a bilinear resize to ``grad``'s B×C×H×W size.

    ``impl`` as in :func:`bilinear_resize`; the result has ``grad``'s dtype.
    """
    in_h, in_w = int(in_size[0]), int(in_size[1])
    out_h, out_w = grad.shape[-2:]
    if resolve_impl(impl, grad.device) == "interpolate":
        return torch.ops.aten.upsample_bilinear2d_backward(
            grad, [out_h, out_w], [grad.shape[0], grad.shape[1], in_h, in_w], align_corners
        )
    dtype = torch.float64 if grad.dtype == torch.float64 else torch.float32
    with torch.autocast(grad.device.type, enabled=False):
        g = grad.to(dtype)
        a_h = interpolation_matrix(out_h, in_h, align_corners, g.device, dtype)  # H×h
        a_w = interpolation_matrix(out_w, in_w, align_corners, g.device, dtype)  # W×w
        b, c = g.shape[:2]
        # Contract the larger axis first: the second product then runs on the smaller intermediate.
        if out_w * in_h <= out_h * in_w:
            y = torch.matmul(g.reshape(b * c * out_h, out_w), a_w).reshape(b, c, out_h, in_w)  # B×C×H×w
            out = torch.matmul(a_h.t(), y)  # B×C×h×w
        else:
            y = torch.matmul(a_h.t(), g)  # B×C×h×W
            out = torch.matmul(y, a_w)  # B×C×h×w
    return out.to(grad.dtype)


class _BilinearResize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, size, align_corners, impl):
        ctx.in_size = tuple(x.shape[-2:])
        ctx.align_corners = align_corners
        ctx.impl = impl
        return F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        return bilinear_resize_backward(grad.contiguous(), ctx.in_size, ctx.align_corners, ctx.impl), None, None, None


def bilinear_resize(
    x: torch.Tensor, size: Sequence[int], align_corners: bool, impl: Optional[str] = None
) -> torch.Tensor:
    """``F.interpolate(x, size, mode="bilinear", align_corners=align_corners)`` for B×C×h×w ``x``.

    Args:
        x: B×C×h×w float tensor.
        size: (H, W) output size.
        align_corners: PyTorch's flag (see the module docstring for the sampling rule of each).
        impl: backward: "matmul", "interpolate" or "auto" (see the module docstring); None: the
            default set with :func:`resize_impl`.

    Returns:
        B×C×H×W tensor, bit for bit ``F.interpolate``'s; ``x`` itself when the size already matches.
        Its gradient is once-differentiable (no double backward).
    """
    if x.dim() != 4:
        raise ValueError(f"bilinear_resize expects a B×C×h×w tensor, got shape {tuple(x.shape)}")
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    _check_impl(impl or _default["impl"])
    if not (x.requires_grad and torch.is_grad_enabled()) or torch.compiler.is_compiling():
        # No backward to choose (or torch.compile, which traces and differentiates F.interpolate itself).
        return F.interpolate(x, size=size, mode="bilinear", align_corners=bool(align_corners))
    return _BilinearResize.apply(x, size, bool(align_corners), impl)
