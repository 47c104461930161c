"""Tests of the PKD loss (Cao et al., NeurIPS 2022): MSE of channel-standardised maps = 1 − Pearson ρ."""
import math

import pytest
import torch

from apd.modeling.losses.pkd import pkd_loss, standardize_channels


def _maps(seed, shape=(2, 3, 4, 5)):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_hand_value_of_a_two_channel_example():
    # One image, 2 channels, 1×4 positions.
    # Channel 0: student (1, 2, 3, 4), teacher (1, 2, 4, 3). Centred: (−1.5, −.5, .5, 1.5) and
    #   (−1.5, −.5, 1.5, .5); both have variance 5/4. Dot = 2.25 + .25 + .75 + .75 = 4 → ρ = 4 / 5 = 0.8.
    # Channel 1: student (0, 0, 0, 1), teacher (1, 1, 1, 0): the teacher is −1·student + 1 → ρ = −1.
    # Loss (image scope) = mean over channels of 1 − ρ = (0.2 + 2) / 2 = 1.1.
    s = torch.tensor([[[[1.0, 2, 3, 4]], [[0, 0, 0, 1]]]], dtype=torch.float64)
    t = torch.tensor([[[[1.0, 2, 4, 3]], [[1, 1, 1, 0]]]], dtype=torch.float64)
    torch.testing.assert_close(pkd_loss(s, t).item(), 1.1, atol=1e-5, rtol=0)
    # Standardised channel 0 of the student: (−1.5, −.5, .5, 1.5) / √(5/4).
    expected = torch.tensor([-1.5, -0.5, 0.5, 1.5], dtype=torch.float64) / math.sqrt(1.25)
    torch.testing.assert_close(standardize_channels(s)[0, 0, 0], expected, atol=1e-6, rtol=0)


def test_equals_one_minus_pearson_per_image_and_channel():
    s, t = _maps(0), _maps(1)
    rho = torch.stack([
        torch.corrcoef(torch.stack([s[b, c].flatten(), t[b, c].flatten()]))[0, 1]
        for b in range(2) for c in range(3)
    ])
    # Exact with a negligible eps; the default eps (1e-6 on variances of about 1) moves it by about 1e-6.
    torch.testing.assert_close(pkd_loss(s, t, eps=1e-12), (1 - rho).mean(), atol=1e-9, rtol=0)
    torch.testing.assert_close(pkd_loss(s, t), (1 - rho).mean(), atol=1e-5, rtol=0)


def test_zero_on_identical_maps_and_maximal_on_negated_ones():
    s = _maps(2)
    assert pkd_loss(s, s.clone()).item() == pytest.approx(0.0, abs=1e-12)
    assert pkd_loss(-s, s).item() == pytest.approx(2.0, abs=1e-5)  # ρ = −1 everywhere


@pytest.mark.parametrize("scope", ["image", "batch"])
def test_invariant_to_a_per_channel_affine_transform_of_the_student(scope):
    s, t = _maps(3), _maps(4)
    base = pkd_loss(s, t, scope=scope)
    scale = torch.tensor([0.3, 2.0, 7.0], dtype=torch.float64).view(1, 3, 1, 1)
    shift = torch.tensor([-5.0, 0.5, 40.0], dtype=torch.float64).view(1, 3, 1, 1)
    torch.testing.assert_close(pkd_loss(scale * s + shift, t, scope=scope), base, atol=1e-5, rtol=0)
    torch.testing.assert_close(pkd_loss(s, scale * t + shift, scope=scope), base, atol=1e-5, rtol=0)
    # A negative scale flips every ρ: mean(1 + ρ) = 2 − base.
    torch.testing.assert_close(pkd_loss(-s, t, scope=scope), 2 - base, atol=1e-5, rtol=0)


def test_image_scope_is_invariant_to_a_per_image_affine_transform_and_batch_scope_is_not():
    # Image scope: each image has its own statistics, so another scale/offset per image changes nothing.
    s, t = _maps(5), _maps(6)
    scale = torch.tensor([0.5, 4.0], dtype=torch.float64).view(2, 1, 1, 1)
    shift = torch.tensor([3.0, -2.0], dtype=torch.float64).view(2, 1, 1, 1)
    torch.testing.assert_close(pkd_loss(scale * s + shift, t), pkd_loss(s, t), atol=1e-5, rtol=0)
    assert abs(pkd_loss(scale * s + shift, t, scope="batch").item() - pkd_loss(s, t, scope="batch").item()) > 0.05


def test_batch_scope_standardizes_each_channel_over_the_batch_as_mmrazor():
    # mmrazor's statistics: every channel over N·h·w values; biased variance here (F.batch_norm's).
    s, t = _maps(7), _maps(8)
    expected_s = torch.nn.functional.batch_norm(s, None, None, training=True, eps=1e-6)
    torch.testing.assert_close(standardize_channels(s, "batch"), expected_s)
    flat = lambda x: x.transpose(0, 1).reshape(3, -1)  # noqa: E731  (C × N·h·w)
    rho = torch.stack([torch.corrcoef(torch.stack([flat(s)[c], flat(t)[c]]))[0, 1] for c in range(3)])
    torch.testing.assert_close(pkd_loss(s, t, scope="batch", eps=1e-12), (1 - rho).mean(), atol=1e-9, rtol=0)


def _mmrazor_convention(s, t):
    # Independent transcription of what mmrazor's PKDLoss computes for equal grids: each channel over the
    # whole batch (C × N·h·w), divided by the unbiased std + 1e-6, then the element MSE halved.
    def norm(x):
        flat = x.transpose(0, 1).reshape(x.shape[1], -1)
        return (flat - flat.mean(dim=1, keepdim=True)) / (flat.std(dim=1, keepdim=True) + 1e-6)

    return ((norm(s) - norm(t)) ** 2).mean() / 2


def test_batch_scope_is_mmrazors_loss_up_to_its_unbiased_std():
    # mmrazor's standardised values are √((n − 1)/n) of these (n = N·h·w values per channel), so its loss
    # is (n − 1)/n of this one: n = 2·4·5 = 40 here (its 1e-6 on the std moves it by about 2e-6).
    s, t = _maps(16), _maps(17)
    n = 2 * 4 * 5
    torch.testing.assert_close(_mmrazor_convention(s, t), pkd_loss(s, t, scope="batch", eps=1e-12) * (n - 1) / n,
                               atol=1e-5, rtol=0)
    assert abs(_mmrazor_convention(s, t).item() - pkd_loss(s, t, scope="batch").item()) > 0.01  # without the factor


def test_constant_channel_counts_half_and_has_a_finite_gradient():
    # Student channel constant: standardised to 0, so mean((0 − t̂)²)/2 = var(t̂)/2 = ½; gradient finite.
    t = _maps(9, (1, 1, 3, 3))
    s = torch.full((1, 1, 3, 3), 2.5, dtype=torch.float64, requires_grad=True)
    loss = pkd_loss(s, t)
    assert loss.item() == pytest.approx(0.5, abs=1e-5)
    loss.backward()
    assert torch.isfinite(s.grad).all()
    # A 1×1 map (p6 of a small image) is constant on both sides: 0, no error.
    assert pkd_loss(torch.ones(2, 4, 1, 1), torch.zeros(2, 4, 1, 1)).item() == 0.0


def test_gradient_reaches_the_student_and_never_the_teacher():
    s = _maps(10).requires_grad_(True)
    t = _maps(11).requires_grad_(True)
    pkd_loss(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_gradient_matches_finite_differences():
    s = _maps(12, (1, 2, 2, 3)).requires_grad_(True)
    t = _maps(13, (1, 2, 2, 3))
    assert torch.autograd.gradcheck(lambda x: pkd_loss(x, t), (s,))


def test_half_precision_is_computed_in_float32():
    s, t = _maps(14).float(), _maps(15).float()
    out = pkd_loss(s.half(), t.half())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, pkd_loss(s, t), atol=2e-3, rtol=0)


def test_bad_inputs_are_errors_naming_the_problem():
    with pytest.raises(ValueError, match=r"equal shape, got student \(1, 2, 3, 3\) and teacher \(1, 4, 3, 3\)"):
        pkd_loss(torch.zeros(1, 2, 3, 3), torch.zeros(1, 4, 3, 3))
    with pytest.raises(ValueError, match="B×C×h×w"):
        pkd_loss(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="scope must be one of"):
        pkd_loss(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 3), scope="pixel")
    with pytest.raises(ValueError, match="eps must be > 0"):
        standardize_channels(torch.zeros(1, 2, 3, 3), eps=0.0)
