"""Tests of the baseline distillation losses: CWD, SKD pair-wise, IFVD, FitNet feature mimicking."""
import math

import pytest
import torch

from apd.modeling.losses import (
    channel_wise_divergence_loss,
    feature_mimic_loss,
    ifvd_loss,
    pairwise_affinity_loss,
)
from apd.modeling.losses.skd import node_kernel


def _rotation(c, seed):
    q, _ = torch.linalg.qr(torch.randn(c, c, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return lambda x: torch.einsum("ij,bjhw->bihw", q, x)


# ---------------------------------------------------------------------------------------------- CWD
def test_cwd_hand_value():
    # One channel over 2 positions, T = 1: teacher (0, 0) → (½, ½), student (ln 3, 0) → (¾, ¼);
    # KL = ½ ln(4/3) = 0.143841, summed over space, mean over B·C = 1, × T² = 1.
    s = torch.tensor([math.log(3.0), 0.0]).reshape(1, 1, 1, 2)
    t = torch.zeros(1, 1, 1, 2)
    torch.testing.assert_close(channel_wise_divergence_loss(s, t, temperature=1.0).item(), 0.143841,
                               atol=1e-6, rtol=0)


def test_cwd_zero_for_equal_and_invariant_to_per_channel_shift():
    s = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    t = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    assert channel_wise_divergence_loss(s, s.clone()).item() == pytest.approx(0, abs=1e-12)
    shift = torch.randn(2, 3, 1, 1, dtype=torch.float64) * 10  # softmax over space ignores it
    torch.testing.assert_close(channel_wise_divergence_loss(s + shift, t), channel_wise_divergence_loss(s, t))


def test_cwd_mean_over_channels_and_teacher_detached():
    s = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    t = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    loss = channel_wise_divergence_loss(s, t, temperature=4.0)
    per_map = [channel_wise_divergence_loss(s[b:b + 1, c:c + 1], t[b:b + 1, c:c + 1], 4.0)
               for b in range(2) for c in range(3)]
    torch.testing.assert_close(loss, torch.stack(per_map).mean())
    loss.backward()
    assert t.grad is None and s.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------- SKD
def test_skd_hand_value_without_pooling():
    # 2 pixels. Student f1 = e1, f2 = e2 → affinity I; teacher f1 = f2 = e1 → all ones.
    # Squared differences [[0, 1], [1, 0]] → mean 0.5.
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).reshape(1, 2, 1, 2)
    t = torch.tensor([[1.0, 1.0], [0.0, 0.0]]).reshape(1, 2, 1, 2)
    torch.testing.assert_close(pairwise_affinity_loss(s, t, pool_scale=None).item(), 0.5)


def test_skd_zero_for_equal_and_invariances():
    s = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    t = torch.randn(2, 7, 6, 6, dtype=torch.float64)  # different channel counts are fine
    assert pairwise_affinity_loss(s, s.clone()).item() == pytest.approx(0, abs=1e-12)
    base = pairwise_affinity_loss(s, t, pool_scale=None)
    scale = torch.rand(2, 1, 6, 6, dtype=torch.float64) + 0.1
    torch.testing.assert_close(pairwise_affinity_loss(s * scale, t, pool_scale=None), base)
    torch.testing.assert_close(pairwise_affinity_loss(_rotation(4, 0)(s), t, pool_scale=None), base)
    # With pooling, a global positive scale commutes with max-pooling and cosine.
    torch.testing.assert_close(pairwise_affinity_loss(s * 3.0, t), pairwise_affinity_loss(s, t))


def test_skd_pools_to_two_by_two_nodes():
    # pool_scale 0.5 on 6×6 → kernel 3 → 2×2 = 4 nodes; equals the unpooled loss of max-pooled inputs.
    s = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    t = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    pool = lambda x: torch.nn.functional.max_pool2d(x, 3)  # noqa: E731
    torch.testing.assert_close(pairwise_affinity_loss(s, t, 0.5), pairwise_affinity_loss(pool(s), pool(t), None))


def test_skd_relative_kernel_gives_three_by_three_nodes_on_odd_sizes():
    # 5×7, scale 0.5 → kernel ⌊2.5⌋×⌊3.5⌋ = 2×3, ceil mode → ⌈5/2⌉×⌈7/3⌉ = 3×3 nodes (65×129 → 3×3 too).
    assert node_kernel((5, 7), 0.5) == (2, 3)
    assert node_kernel((65, 129), 0.5) == (32, 64) and node_kernel((90, 90), 0.5) == (45, 45)
    s = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    t = torch.randn(2, 4, 5, 7, dtype=torch.float64)
    pool = lambda x: torch.nn.functional.max_pool2d(x, (2, 3), ceil_mode=True)  # noqa: E731
    assert pool(s).shape[-2:] == (3, 3)
    torch.testing.assert_close(pairwise_affinity_loss(s, t, 0.5), pairwise_affinity_loss(pool(s), pool(t), None))


def _skd_authors(feat_s, feat_t, scale):
    # Transcription of the SKD authors' pair-wise term: max-pool with kernel (⌊s·h⌋, ⌊s·w⌋), ceil mode;
    # divide by the per-pixel L2 norm + 1e-8 with the norm detached; Gram matrices; the squared
    # differences summed and divided by (n²·B), n = number of nodes.
    h, w = feat_s.shape[-2:]
    kernel = (int(h * scale), int(w * scale))
    grams = []
    for f in (feat_s, feat_t):
        f = torch.nn.functional.max_pool2d(f, kernel, kernel, ceil_mode=True)
        f = f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-8).detach()
        f = f.flatten(2)
        grams.append(f.transpose(1, 2) @ f)
    n = grams[0].shape[-1]
    return ((grams[1] - grams[0]) ** 2).sum() / (n**2) / feat_s.shape[0]


@pytest.mark.parametrize("size", [(6, 8), (5, 7)])
def test_skd_matches_transcription_of_authors_code(size):
    s = torch.randn(2, 3, *size, dtype=torch.float64, requires_grad=True)
    t = torch.randn(2, 4, *size, dtype=torch.float64)
    ours = pairwise_affinity_loss(s, t, pool_scale=0.5)
    theirs = _skd_authors(s, t, 0.5)
    torch.testing.assert_close(ours, theirs, atol=1e-9, rtol=1e-7)
    # Same value, different gradient: the authors stop it through the norms, ours lets it flow.
    (g_ours,) = torch.autograd.grad(ours, s)
    (g_theirs,) = torch.autograd.grad(theirs, s)
    assert not torch.allclose(g_ours, g_theirs)


def _skd_cirkd(feat_s, feat_t):
    # Transcription of CIRKD's CriterionStructuralKD: fixed 2×2 max-pool (ceil mode), channel L2
    # normalisation, Gram matrices over the pooled pixels, element mean of the squared difference.
    grams = []
    for f in (feat_s, feat_t):
        f = torch.nn.functional.max_pool2d(f, 2, 2, ceil_mode=True)
        f = torch.nn.functional.normalize(f, dim=1).flatten(2)
        grams.append(f.transpose(1, 2) @ f)
    return ((grams[0] - grams[1]) ** 2).mean()


def test_skd_fixed_kernel_matches_cirkd_and_excludes_pool_scale():
    s = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    t = torch.randn(2, 4, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(pairwise_affinity_loss(s, t, pool_scale=None, pool_kernel=(2, 2)), _skd_cirkd(s, t))
    with pytest.raises(ValueError, match="not both"):
        pairwise_affinity_loss(s, t, pool_scale=0.5, pool_kernel=(2, 2))
    with pytest.raises(ValueError, match="pool_kernel"):
        pairwise_affinity_loss(s, t, pool_scale=None, pool_kernel=(0, 2))


# --------------------------------------------------------------------------------------------- IFVD
def test_ifvd_hand_value():
    # One image, 1×3 pixels of one class. Student f = (e1, e1, e2): class mean (2/3, 1/3) →
    # cos = (2/√5, 2/√5, 1/√5). Teacher all e1 → cos = 1.
    # MSE = (2·(1 − 2/√5)² + (1 − 1/√5)²) / 3 = 0.109288.
    s = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64).reshape(1, 2, 1, 3)
    t = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]], dtype=torch.float64).reshape(1, 2, 1, 3)
    labels = torch.zeros(1, 1, 3, dtype=torch.long)
    expected = (2 * (1 - 2 / math.sqrt(5)) ** 2 + (1 - 1 / math.sqrt(5)) ** 2) / 3
    assert expected == pytest.approx(0.109288, abs=1e-6)
    torch.testing.assert_close(ifvd_loss(s, t, labels, 1).item(), expected)


def _ifvd_case(seed):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(2, 4, 5, 6, generator=g, dtype=torch.float64)
    t = torch.randn(2, 7, 5, 6, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 5, 6), generator=g)
    labels[:, 0] = 255
    return s, t, labels


def test_ifvd_matches_per_image_per_class_loop():
    s, t, labels = _ifvd_case(1)
    errs = []
    for b in range(2):
        for k in range(4):
            m = labels[b] == k
            if not m.any():
                continue
            fs, ft = s[b][:, m], t[b][:, m]  # C×n
            cs = torch.cosine_similarity(fs, fs.mean(1, keepdim=True), dim=0)
            ct = torch.cosine_similarity(ft, ft.mean(1, keepdim=True), dim=0)
            errs.append((ct - cs) ** 2)
    errs = torch.cat(errs)
    assert errs.numel() == 2 * 4 * 6  # row 0 of each 5×6 image is ignore
    torch.testing.assert_close(ifvd_loss(s, t, labels, 4), errs.sum() / (2 * 5 * 6))  # all B·h·w pixels
    torch.testing.assert_close(ifvd_loss(s, t, labels, 4, reduction="labelled"), errs.mean())


def _ifvd_authors(feat_s, feat_t, labels, num_classes):
    # Transcription of the IFVD authors' algorithm (CriterionIFV): start from a copy of each feature map,
    # overwrite the pixels of every class 0..K−1 with that class's per-image mean (+1e-6 in the count),
    # per-pixel cosine with that "centre" map, then MSE over all B·h·w pixels.
    centres = []
    for f in (feat_s, feat_t):
        centre = f.clone()
        for k in range(num_classes):
            m = (labels == k).unsqueeze(1).to(f.dtype)  # B×1×h×w
            mean = (m * f).sum((2, 3), keepdim=True) / (m.sum((2, 3), keepdim=True) + 1e-6)
            centre = (1 - m) * centre + m * mean
        centres.append(torch.nn.functional.cosine_similarity(f, centre, dim=1))
    return ((centres[0] - centres[1]) ** 2).mean()


def test_ifvd_matches_transcription_of_authors_code():
    # Labels already at h×w (the authors' nearest resize is then the identity); 30% ignore pixels.
    g = torch.Generator().manual_seed(7)
    s = torch.randn(2, 4, 5, 6, generator=g, dtype=torch.float64)
    t = torch.randn(2, 7, 5, 6, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 5, 6), generator=g)
    labels.view(-1)[torch.randperm(60, generator=g)[:18]] = 255
    expected = _ifvd_authors(s, t, labels, 3)
    torch.testing.assert_close(ifvd_loss(s, t, labels, 3), expected, atol=1e-6, rtol=1e-5)
    # Dividing by the labelled pixels only scales it by 1 / 0.7 ≈ 1.43.
    torch.testing.assert_close(ifvd_loss(s, t, labels, 3, reduction="labelled"), expected * 60 / 42,
                               atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        ifvd_loss(s, t, labels, 3, reduction="mean")


def test_ifvd_zero_for_equal_invariances_and_ignore():
    s, t, labels = _ifvd_case(2)
    assert ifvd_loss(s, s.clone(), labels, 3).item() == pytest.approx(0, abs=1e-12)
    base = ifvd_loss(s, t, labels, 3)
    scale = torch.rand(2, 1, 1, 1, dtype=torch.float64) + 0.1  # per image: class means scale along
    torch.testing.assert_close(ifvd_loss(s * scale, t, labels, 3), base)
    pixel_scale = torch.rand(2, 1, 5, 6, dtype=torch.float64) + 0.1  # per pixel: the means move
    assert not torch.allclose(ifvd_loss(s * pixel_scale, t, labels, 3), base)
    torch.testing.assert_close(ifvd_loss(_rotation(4, 3)(s), t, labels, 3), base)
    # Features at ignore pixels enter nothing.
    s2 = s.clone()
    s2[:, :, 0] = torch.randn(2, 4, 6, dtype=torch.float64) * 5
    torch.testing.assert_close(ifvd_loss(s2, t, labels, 3), base)


def test_ifvd_no_labels_gives_zero_that_backpropagates():
    s, t, labels = _ifvd_case(3)
    s.requires_grad_(True)
    loss = ifvd_loss(s, t, torch.full_like(labels, 255), 3)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(s.grad).all()


# ------------------------------------------------------------------------------------------- FitNet
def test_fitnet_hand_value_and_teacher_detached():
    s = torch.tensor([1.0, 2.0]).reshape(1, 2, 1, 1).requires_grad_(True)
    t = torch.zeros(1, 2, 1, 1, requires_grad=True)
    loss = feature_mimic_loss(s, t)  # ((1 − 0)² + (2 − 0)²) / 2 = 2.5
    torch.testing.assert_close(loss.item(), 2.5)
    loss.backward()
    assert t.grad is None
    torch.testing.assert_close(s.grad.flatten(), torch.tensor([1.0, 2.0]))  # d/ds (s²/2) = s
    assert feature_mimic_loss(t.detach(), t.detach()).item() == 0.0
    with pytest.raises(ValueError, match=r"\(1, 2, 1, 1\).*\(1, 3, 1, 1\)"):
        feature_mimic_loss(s, torch.zeros(1, 3, 1, 1))
