"""Tests of apd.layers.resize: the forward is F.interpolate's bit for bit, both backwards agree with it."""
import pytest
import torch
import torch.nn.functional as F

from apd.layers.resize import (
    bilinear_resize,
    bilinear_resize_backward,
    interpolation_matrix,
    resize_impl,
    resolve_impl,
)

# (h, w) → (H, W): up-sampling by the crop rule 8k+1, odd sizes, down-sampling, mixed, 1-pixel edges.
SIZES = [((12, 12), (89, 89)), ((7, 5), (33, 17)), ((33, 17), (7, 5)), ((5, 9), (4, 20)), ((1, 1), (4, 3)),
         ((4, 3), (1, 1)), ((64, 7), (20, 31))]


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("sizes", SIZES, ids=str)
def test_matrices_are_pytorchs_weights_bit_for_bit(align_corners, sizes):
    (h, _), (out_h, _) = sizes
    # Interpolating the identity along one axis reads PyTorch's weight matrix off its output.
    eye = torch.eye(h).reshape(h, 1, h, 1)
    expected = F.interpolate(eye, size=(out_h, 1), mode="bilinear", align_corners=align_corners)[:, 0, :, 0].t()
    assert torch.equal(interpolation_matrix(out_h, h, align_corners), expected)


@pytest.mark.parametrize("impl", ["matmul", "interpolate"])
@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("sizes", SIZES, ids=str)
def test_forward_identical_and_gradient_matches_interpolate(impl, align_corners, sizes):
    (h, w), size = sizes
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, h, w, generator=g, requires_grad=True)
    ref = F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)
    out = bilinear_resize(x, size, align_corners, impl=impl)
    assert torch.equal(out, ref)
    grad_out = torch.randn(ref.shape, generator=g)
    (g_ref,) = torch.autograd.grad(ref, x, grad_out)
    (g_out,) = torch.autograd.grad(out, x, grad_out)
    # Only the order of the additions differs: 1e-6 of the gradient's scale in fp32.
    torch.testing.assert_close(g_out, g_ref, atol=1e-6 * float(g_ref.abs().max()), rtol=1e-6)


def test_matmul_backward_in_float64_is_exact_and_keeps_dtype():
    x = torch.randn(1, 2, 6, 7, dtype=torch.float64)
    grad = torch.randn(1, 2, 25, 13, dtype=torch.float64)
    ref = torch.ops.aten.upsample_bilinear2d_backward(grad, [25, 13], [1, 2, 6, 7], True)
    got = bilinear_resize_backward(grad, x.shape[-2:], True, impl="matmul")
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, ref, atol=1e-13, rtol=1e-12)
    half = bilinear_resize_backward(grad.to(torch.bfloat16), x.shape[-2:], True, impl="matmul")
    assert half.dtype == torch.bfloat16


def test_same_size_is_identity_and_bad_input_is_an_error():
    x = torch.randn(1, 2, 5, 5)
    assert bilinear_resize(x, (5, 5), True) is x
    with pytest.raises(ValueError, match="B×C×h×w"):
        bilinear_resize(torch.randn(2, 5, 5), (7, 7), True)
    with pytest.raises(ValueError, match="one of"):
        bilinear_resize(x, (7, 7), True, impl="scatter")


def test_default_impl_context_and_auto_rule():
    assert resize_impl() == "auto"
    assert resolve_impl(None, torch.device("cpu")) == "interpolate"
    assert resolve_impl(None, torch.device("cuda")) == "matmul"
    with resize_impl("matmul"):
        assert resolve_impl(None, torch.device("cpu")) == "matmul"
    assert resize_impl() == "auto"
    previous = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")  # TF32 allowed: the matmul backward is not used
        assert resolve_impl("matmul", torch.device("cuda")) == "interpolate"
    finally:
        torch.set_float32_matmul_precision(previous)
