"""Tests of the DIST loss (Huang et al., NeurIPS 2022): Pearson relations of softened class probabilities."""
import math

import numpy as np
import pytest
import torch

from apd.modeling.losses import dist_loss, pearson_correlation


def _logits(seed, shape=(2, 5, 3, 4)):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_hand_value_two_classes():
    # Logits = log of the probabilities, so softmax gives them back exactly. 3 pixels, K = 2.
    # Teacher rows (¾,¼), (¼,¾), (¾,¼); student rows (¾,¼), (¾,¼), (¼,¾).
    # Inter: with K = 2 a centred row is (d, −d), so ρ = sign(d_s·d_t): +1, −1, −1 → L_inter = 1 + ⅓ = 4/3.
    # Intra, class 0: teacher (¾,¼,¾) − 7/12 = (⅙,−⅓,⅙); student (¾,¾,¼) − 7/12 = (⅙,⅙,−⅓);
    #   dot = 1/36 − 2/36 − 2/36 = −1/12, norms √(1/6) each → ρ = −½; class 1 is 1 − class 0 → ρ = −½.
    #   L_intra = 3/2. Total (β = γ = 1) = 4/3 + 3/2 = 17/6; β = 2, γ = ½ → 8/3 + 3/4 = 41/12.
    t = torch.tensor([[0.75, 0.25], [0.25, 0.75], [0.75, 0.25]], dtype=torch.float64).log()
    s = torch.tensor([[0.75, 0.25], [0.75, 0.25], [0.25, 0.75]], dtype=torch.float64).log()
    torch.testing.assert_close(dist_loss(s, t).item(), 17 / 6, atol=1e-6, rtol=0)
    torch.testing.assert_close(dist_loss(s, t, beta=2.0, gamma=0.5).item(), 41 / 12, atol=1e-6, rtol=0)
    # The same pixels as a 1×2×1×3 map give the same value (pixels are the samples).
    s4, t4 = s.t().reshape(1, 2, 1, 3), t.t().reshape(1, 2, 1, 3)
    torch.testing.assert_close(dist_loss(s4, t4).item(), 17 / 6, atol=1e-6, rtol=0)


def _reference_numpy(s, t, beta, gamma, tau):
    # Independent transcription of the authors' segmentation loss: rows = pixels in their
    # transpose(1, 3) order (b, w, h), np.corrcoef for ρ (no eps), τ² as in their classification code.
    k = s.shape[1]
    ys, yt = [], []
    for x, out in ((s, ys), (t, yt)):
        rows = np.transpose(x.numpy(), (0, 3, 2, 1)).reshape(-1, k) / tau
        e = np.exp(rows - rows.max(axis=1, keepdims=True))
        out.append(e / e.sum(axis=1, keepdims=True))
    ys, yt = ys[0], yt[0]
    inter = 1 - np.mean([np.corrcoef(ys[i], yt[i])[0, 1] for i in range(ys.shape[0])])
    intra = 1 - np.mean([np.corrcoef(ys[:, j], yt[:, j])[0, 1] for j in range(k)])
    return tau**2 * (beta * inter + gamma * intra)


@pytest.mark.parametrize("beta,gamma,tau", [(1.0, 1.0, 1.0), (2.0, 0.5, 4.0)])
def test_matches_transcription_of_authors_code(beta, gamma, tau):
    s, t = _logits(0), _logits(1)
    expected = _reference_numpy(s, t, beta, gamma, tau)
    torch.testing.assert_close(dist_loss(s, t, beta, gamma, tau).item(), expected, atol=1e-6, rtol=1e-6)


def test_pearson_invariant_to_positive_affine_per_row_and_flips_sign_for_negative():
    a, b = _logits(2, (4, 6)), _logits(3, (4, 6))
    base = pearson_correlation(a, b)
    alpha = torch.rand(4, 1, dtype=torch.float64) + 0.5
    shift = torch.randn(4, 1, dtype=torch.float64) * 5
    torch.testing.assert_close(pearson_correlation(alpha * a + shift, b), base)
    torch.testing.assert_close(pearson_correlation(a, alpha * b + shift), base)
    torch.testing.assert_close(pearson_correlation(-a, b), -base)
    torch.testing.assert_close(pearson_correlation(a, a), torch.ones(4, dtype=torch.float64))
    # A constant row scores 0 (the eps in the denominator), as in the authors' code.
    assert pearson_correlation(torch.ones(1, 6, dtype=torch.float64), b[:1]).item() == 0.0


def test_zero_for_equal_and_invariant_to_per_pixel_shift_and_pixel_order():
    s, t = _logits(4), _logits(5)
    # 0 up to the eps of ρ's denominator (1e-8 against squared norms of order 1e-2 here).
    assert dist_loss(s, s.clone()).item() == pytest.approx(0.0, abs=1e-5)
    base = dist_loss(s, t)
    shift = torch.randn(2, 1, 3, 4, dtype=torch.float64) * 10  # softmax over classes ignores it
    torch.testing.assert_close(dist_loss(s + shift, t - shift), base)
    # The same permutation of pixels on both sides (across images too) changes nothing.
    perm = torch.randperm(24, generator=torch.Generator().manual_seed(0))
    flat = lambda x: x.permute(0, 2, 3, 1).reshape(-1, 5)  # noqa: E731
    torch.testing.assert_close(dist_loss(flat(s)[perm], flat(t)[perm]), base)
    # A consistent relabelling of the classes changes nothing either.
    cls = torch.tensor([3, 0, 4, 1, 2])
    torch.testing.assert_close(dist_loss(s[:, cls], t[:, cls]), base)


def test_temperature_scales_by_tau_squared_after_softening():
    s, t = _logits(6), _logits(7)
    torch.testing.assert_close(dist_loss(s, t, tau=3.0), 9.0 * dist_loss(s / 3.0, t / 3.0, tau=1.0))


def test_terms_are_separable_and_bounded():
    s, t = _logits(8), _logits(9)
    inter = dist_loss(s, t, beta=1.0, gamma=0.0)
    intra = dist_loss(s, t, beta=0.0, gamma=1.0)
    torch.testing.assert_close(dist_loss(s, t, beta=2.0, gamma=3.0), 2 * inter + 3 * intra)
    assert 0 < inter.item() < 2 and 0 < intra.item() < 2
    # Opposite student: ρ = −1 on every row when K = 2 → L_inter = 2.
    s2 = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    assert dist_loss(-s2, s2, beta=1.0, gamma=0.0).item() == pytest.approx(2.0, abs=1e-6)


def test_gradient_reaches_only_the_student():
    s = _logits(10).requires_grad_(True)
    t = _logits(11).requires_grad_(True)
    dist_loss(s, t).backward()
    assert t.grad is None
    assert s.grad.abs().sum() > 0 and torch.isfinite(s.grad).all()


def test_empty_batch_gives_zero_that_backpropagates():
    s = torch.zeros(0, 5, 3, 4, requires_grad=True)
    loss = dist_loss(s, torch.zeros(0, 5, 3, 4))
    assert loss.item() == 0.0
    loss.backward()
    assert s.grad.shape == s.shape


def test_half_precision_is_computed_in_float32():
    s, t = _logits(12).float(), _logits(13).float()
    loss = dist_loss(s.half(), t.half())
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, dist_loss(s.half().float(), t.half().float()))


def test_errors_name_the_bad_input():
    with pytest.raises(ValueError, match="tau"):
        dist_loss(_logits(0), _logits(1), tau=0.0)
    with pytest.raises(ValueError, match=r"\(2, 5, 3, 4\).*\(2, 5, 3, 3\)"):
        dist_loss(_logits(0), _logits(1, (2, 5, 3, 3)))
    assert math.isfinite(dist_loss(_logits(0, (1, 2)), _logits(1, (1, 2))).item())
