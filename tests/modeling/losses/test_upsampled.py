"""Tests of apd.modeling.losses.upsampled: the fused full-resolution terms equal the separate ops."""
import pytest
import torch
import torch.nn.functional as F

from apd.modeling.losses.upsampled import upsampled_cross_entropy, upsampled_kl_div


def _reference_kl(s, t, size, align_corners, temperature):
    s_up = F.interpolate(s, size=size, mode="bilinear", align_corners=align_corners)
    t_up = F.interpolate(t.detach(), size=size, mode="bilinear", align_corners=align_corners)
    log_p_s = F.log_softmax(s_up / temperature, dim=1)
    log_p_t = F.log_softmax(t_up / temperature, dim=1)
    return F.kl_div(log_p_s, log_p_t, reduction="sum", log_target=True) / log_p_s.numel() * temperature**2


def _reference_ce(u, labels, valid, align_corners):
    u_up = F.interpolate(u, size=labels.shape[-2:], mode="bilinear", align_corners=align_corners)
    target = torch.where(valid, labels, torch.full_like(labels, -100))
    return F.cross_entropy(u_up, target, ignore_index=-100, reduction="none").sum() / valid.sum().clamp(min=1)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("sizes", [((6, 7), (41, 25)), ((9, 9), (9, 9)), ((12, 10), (5, 7))], ids=str)
def test_kl_value_and_gradient_match_separate_ops(temperature, align_corners, sizes):
    (h, w), size = sizes
    g = torch.Generator().manual_seed(0)
    s = (3 * torch.randn(2, 5, h, w, generator=g)).requires_grad_()
    t = 3 * torch.randn(2, 5, h + 1, w, generator=g)
    ref = _reference_kl(s, t, size, align_corners, temperature)
    got = upsampled_kl_div(s, t, size, align_corners, temperature)
    assert torch.equal(got, ref)
    (g_ref,) = torch.autograd.grad(3.0 * ref, s)
    (g_got,) = torch.autograd.grad(3.0 * got, s)
    torch.testing.assert_close(g_got, g_ref, atol=1e-6 * float(g_ref.abs().max()), rtol=1e-5)


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("sizes", [((6, 7), (41, 25)), ((8, 8), (8, 8)), ((12, 10), (5, 7))], ids=str)
def test_ce_value_and_gradient_match_separate_ops(align_corners, sizes):
    (h, w), size = sizes
    g = torch.Generator().manual_seed(1)
    # Channels-last input, as apd_loss_terms builds U (a permuted view).
    u = (3 * torch.randn(2, h, w, 4, generator=g)).requires_grad_()
    labels = torch.randint(0, 4, (2,) + size, generator=g)
    labels[torch.rand(labels.shape, generator=g) < 0.3] = 255
    valid = labels < 4
    ref = _reference_ce(u.permute(0, 3, 1, 2), labels, valid, align_corners)
    got = upsampled_cross_entropy(u.permute(0, 3, 1, 2), labels, valid, align_corners)
    torch.testing.assert_close(got, ref, atol=0, rtol=1e-6)
    (g_ref,) = torch.autograd.grad(ref, u)
    (g_got,) = torch.autograd.grad(got, u)
    torch.testing.assert_close(g_got, g_ref, atol=1e-6 * float(g_ref.abs().max()), rtol=1e-5)


def test_no_valid_pixel_gives_zero_in_the_graph_and_half_inputs_run_in_fp32():
    u = torch.randn(1, 3, 4, 4, requires_grad=True)
    labels = torch.full((1, 9, 9), 255)
    loss = upsampled_cross_entropy(u, labels, labels < 3)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(u.grad, torch.zeros_like(u))
    s = torch.randn(1, 3, 4, 4, dtype=torch.bfloat16, requires_grad=True)
    kl = upsampled_kl_div(s, torch.randn(1, 3, 4, 4, dtype=torch.bfloat16), (9, 9))
    assert kl.dtype == torch.float32
    kl.backward()
    assert s.grad.dtype == torch.bfloat16


def test_fused_argument_runs_the_separate_ops_when_false():
    s = torch.randn(1, 3, 4, 4, requires_grad=True)
    t = torch.randn(1, 3, 4, 4)
    loss = upsampled_kl_div(s, t, (9, 9), fused=False)
    assert "Backward" in type(loss.grad_fn).__name__ and "Upsampled" not in type(loss.grad_fn).__name__
    assert "Upsampled" in type(upsampled_kl_div(s, t, (9, 9)).grad_fn).__name__
    u = torch.randn(1, 3, 4, 4, requires_grad=True)
    labels = torch.randint(0, 3, (1, 9, 9))
    ce = upsampled_cross_entropy(u, labels, labels < 3, fused=False)
    assert "Upsampled" not in type(ce.grad_fn).__name__
    assert "Upsampled" in type(upsampled_cross_entropy(u, labels, labels < 3).grad_fn).__name__
