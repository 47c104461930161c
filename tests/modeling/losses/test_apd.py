"""Tests of apd.modeling.losses.apd against docs/METHOD.md §2-§3 and the sanity facts of §8.

The reference below is a direct, loop-over-classes transcription of the spec (and of the official
``CriterionKmeansInterWhole``); the library code is fully vectorised.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from apd.modeling.losses import (
    apd_loss_terms,
    apd_point_loss_terms,
    class_prototypes,
    downsample_labels,
    perspective_logits,
)

KEYS = {"loss_apd", "loss_pa", "loss_adapt"}


# ----------------------------------------------------------------------------------------------------
# Slow reference (docs/METHOD.md §2-§3 transcribed with Python loops over classes and images)
# ----------------------------------------------------------------------------------------------------
def _ref_perspective(a_s, a_t, y, num_classes, tau, detach_student_protos=False):
    """One perspective over M points. a_*: M×E already normalised, y: M labels (no class = outside [0,K)).

    Returns (Σ KL over points, #points, N, cos of prototype pairs (N,), U: M×K) or None when N = 0.
    """
    classes = [k for k in sorted(set(y.tolist())) if 0 <= k < num_classes]
    if not classes:
        return None
    c_s, c_t = [], []
    for k in classes:
        mask = y == k
        c_s.append(F.normalize(a_s[mask].mean(0), dim=0))
        c_t.append(F.normalize(a_t[mask].mean(0), dim=0))
    c_s, c_t = torch.stack(c_s), torch.stack(c_t)  # N×E
    if detach_student_protos:
        c_s = c_s.detach()
    s_s = tau * a_s @ c_s.t()  # M×N
    s_t = tau * a_t @ c_t.t()
    kl = F.kl_div(F.log_softmax(s_s, 1), F.softmax(s_t.detach(), 1), reduction="sum")
    cos = (c_s * c_t.detach()).sum(1)
    u = s_t.new_zeros(s_t.shape[0], num_classes)
    for i, k in enumerate(classes):
        u[:, k] = s_t[:, i]
    return kl, a_s.shape[0], len(classes), cos, u


def _ref_dense(s_feat, t_feat, labels, num_classes, tau=10.0, scope="batch", detach_student_protos=False):
    b, e, h, w = s_feat.shape
    small = F.interpolate(labels[:, None].float(), size=(h, w), mode="nearest")[:, 0].long()
    a_s = F.normalize(s_feat, dim=1).permute(0, 2, 3, 1)  # B×h×w×E
    a_t = F.normalize(t_feat, dim=1).permute(0, 2, 3, 1)
    if scope == "batch":
        views = [(a_s.reshape(-1, e), a_t.reshape(-1, e), small.reshape(-1))]
    else:
        views = [(a_s[i].reshape(-1, e), a_t[i].reshape(-1, e), small[i].reshape(-1)) for i in range(b)]
    apd_terms, cos_all, u_all = [], [], []
    for vs, vt, vy in views:
        out = _ref_perspective(vs, vt, vy, num_classes, tau, detach_student_protos)
        if out is None:
            u_all.append(vt.new_zeros(vt.shape[0], num_classes) + 0 * vt.sum())
            continue
        kl, m, n, cos, u = out
        apd_terms.append(kl / (m * n))  # KLDivLoss element mean: / (points · N)
        cos_all.append(cos)
        u_all.append(u)
    u = torch.cat(u_all).reshape(b, h, w, num_classes).permute(0, 3, 1, 2)
    u = F.interpolate(u, size=labels.shape[-2:], mode="bilinear", align_corners=True)
    if not apd_terms:
        zero = s_feat.sum() * 0
        return {"loss_apd": zero, "loss_pa": zero, "loss_adapt": t_feat.sum() * 0}
    return {
        "loss_apd": torch.stack(apd_terms).mean(),
        "loss_pa": (0.5 * (1 - torch.cat(cos_all))).mean(),
        "loss_adapt": F.cross_entropy(u, labels, ignore_index=255),
    }


def _ref_points(s_emb, t_emb, labels, image_ids, num_classes, tau=10.0):
    a_s, a_t = F.normalize(s_emb, dim=1), F.normalize(t_emb, dim=1)
    apd_terms, cos_all, ce_terms = [], [], []
    for i in sorted(set(image_ids.tolist())):
        m = image_ids == i
        out = _ref_perspective(a_s[m], a_t[m], labels[m], num_classes, tau)
        if out is None:
            continue
        kl, rows, n, cos, u = out
        apd_terms.append(kl / (rows * n))
        cos_all.append(cos)
        valid = (labels[m] >= 0) & (labels[m] < num_classes)
        ce_terms.append(F.cross_entropy(u[valid], labels[m][valid], reduction="none"))
    return {
        "loss_apd": torch.stack(apd_terms).mean(),
        "loss_pa": (0.5 * (1 - torch.cat(cos_all))).mean(),
        "loss_adapt": torch.cat(ce_terms).mean(),
    }


def _random_case(seed, b=2, e=6, h=5, w=6, size=(11, 13), num_classes=5, dtype=torch.float64):
    """Random adapted features and labels with ignore pixels; class K-1 never occurs."""
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(b, e, h, w, generator=g, dtype=dtype)
    t = torch.randn(b, e, h, w, generator=g, dtype=dtype)
    labels = torch.randint(0, num_classes - 1, (b,) + size, generator=g)
    labels[torch.rand((b,) + size, generator=g) < 0.25] = 255
    return s, t, labels


def _assert_terms_close(got, expected, **tol):
    assert set(got) == KEYS
    for key in KEYS:
        assert got[key].dim() == 0, key
        torch.testing.assert_close(got[key], expected[key], msg=lambda m: f"{key}: {m}", **tol)


# ----------------------------------------------------------------------------------------------------
# Agreement with the loop references
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scope", ["batch", "image"])
def test_matches_loop_reference_values_and_gradients(scope):
    s, t, labels = _random_case(0)
    s.requires_grad_(True)
    t.requires_grad_(True)
    got = apd_loss_terms(s, t, labels, 5, tau=10.0, scope=scope)
    ref = _ref_dense(s, t, labels, 5, tau=10.0, scope=scope)
    _assert_terms_close(got, ref, atol=1e-10, rtol=1e-8)
    for key in ("loss_apd", "loss_pa"):
        (g_got,) = torch.autograd.grad(got[key], s, retain_graph=True)
        (g_ref,) = torch.autograd.grad(ref[key], s, retain_graph=True)
        torch.testing.assert_close(g_got, g_ref, atol=1e-10, rtol=1e-7)
    (g_got,) = torch.autograd.grad(got["loss_adapt"], t)
    (g_ref,) = torch.autograd.grad(ref["loss_adapt"], t)
    torch.testing.assert_close(g_got, g_ref, atol=1e-10, rtol=1e-7)


@pytest.mark.parametrize("scope", ["batch", "image"])
def test_float32_matches_float64_reference(scope):
    s, t, labels = _random_case(1, b=3, e=8, h=7, w=7, size=(25, 25), num_classes=6)
    got = apd_loss_terms(s.float(), t.float(), labels, 6, scope=scope)
    ref = _ref_dense(s, t, labels, 6, scope=scope)
    _assert_terms_close(got, {k: v.float() for k, v in ref.items()}, atol=1e-5, rtol=1e-4)


def test_image_scope_skips_images_without_valid_class():
    s, t, labels = _random_case(2, b=3)
    labels[1] = 255  # image 1 has no class: it must not enter the image average
    got = apd_loss_terms(s, t, labels, 5, scope="image")
    ref_02 = _ref_dense(s[[0, 2]], t[[0, 2]], labels[[0, 2]], 5, scope="image")
    torch.testing.assert_close(got["loss_apd"], ref_02["loss_apd"])
    torch.testing.assert_close(got["loss_pa"], ref_02["loss_pa"])
    # loss_adapt: CE mean over valid pixels, which all lie in images 0 and 2.
    torch.testing.assert_close(got["loss_adapt"], ref_02["loss_adapt"])


def test_scopes_differ_with_two_images():
    s, t, labels = _random_case(3)
    a = apd_loss_terms(s, t, labels, 5, scope="image")["loss_apd"]
    b = apd_loss_terms(s, t, labels, 5, scope="batch")["loss_apd"]
    assert not torch.allclose(a, b)


def test_dense_and_point_apis_agree_on_one_image():
    s, t, labels = _random_case(4, b=1, size=(5, 6))  # labels already at h×w: no resizing anywhere
    dense = apd_loss_terms(s, t, labels, 5, scope="image")
    pts = apd_point_loss_terms(
        s[0].flatten(1).t(), t[0].flatten(1).t(), labels[0].flatten(), torch.zeros(30, dtype=torch.long),
        5, ignore_value=255,
    )
    _assert_terms_close(pts, dense, atol=1e-12, rtol=1e-10)
    dense_batch = apd_loss_terms(s, t, labels, 5, scope="batch")
    _assert_terms_close(pts, dense_batch, atol=1e-12, rtol=1e-10)


def test_points_one_perspective_per_image_any_order():
    g = torch.Generator().manual_seed(5)
    k = 4
    # image 0: 7 points, image 1: 4 points, image 2: 5 points with no class (background only).
    image_ids = torch.tensor([0] * 7 + [1] * 4 + [2] * 5)
    labels = torch.tensor([0, 0, 1, 2, k, k, 1, 3, 3, 0, k] + [k] * 5)  # k = Detectron2 background
    s = torch.randn(16, 6, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(16, 6, generator=g, dtype=torch.float64, requires_grad=True)
    perm = torch.randperm(16, generator=g)
    got = apd_point_loss_terms(s[perm], t[perm], labels[perm], image_ids[perm], k)
    ref = _ref_points(s, t, labels, image_ids, k)
    _assert_terms_close(got, ref, atol=1e-10, rtol=1e-8)
    (g_got,) = torch.autograd.grad(got["loss_apd"] + got["loss_pa"], s)
    (g_ref,) = torch.autograd.grad(ref["loss_apd"] + ref["loss_pa"], s)
    torch.testing.assert_close(g_got, g_ref)


def test_points_ignore_value_is_no_class():
    g = torch.Generator().manual_seed(6)
    s, t = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    ids = torch.tensor([0, 0, 0, 1, 1, 1])
    with_ignore = apd_point_loss_terms(s, t, torch.tensor([0, 1, -1, 1, 2, -1]), ids, 3, ignore_value=-1)
    with_background = apd_point_loss_terms(s, t, torch.tensor([0, 1, 3, 1, 2, 3]), ids, 3)
    _assert_terms_close(with_ignore, with_background)


# ----------------------------------------------------------------------------------------------------
# docs/METHOD.md §8 sanity facts
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scope", ["batch", "image"])
def test_identical_adapted_features_give_zero_apd_and_pa(scope):
    # §8.1: A_s ≡ A_t ⇒ identical prototypes and similarity maps ⇒ L_apd = 0, L_pa = 0.
    s, _, labels = _random_case(7)
    out = apd_loss_terms(s, s.clone(), labels, 5, scope=scope)
    torch.testing.assert_close(out["loss_apd"], torch.zeros((), dtype=s.dtype), atol=1e-12, rtol=0)
    torch.testing.assert_close(out["loss_pa"], torch.zeros((), dtype=s.dtype), atol=1e-12, rtol=0)


@pytest.mark.parametrize("scope", ["batch", "image"])
def test_single_present_class_gives_zero_apd(scope):
    # §8.2: N = 1 ⇒ softmax over one channel ⇒ KL exactly 0; L_pa need not be 0.
    s, t, labels = _random_case(8)
    labels[labels != 255] = 2
    out = apd_loss_terms(s, t, labels, 5, scope=scope)
    assert out["loss_apd"].item() == 0.0
    assert out["loss_pa"].item() > 1e-3


def test_two_pixel_hand_value():
    # §8.8. Pixel 0 (class 0), pixel 1 (class 1), E = 2, τ = 10:
    #   teacher a_t = (e1, −e1) ⇒ c_t = (e1, −e1) ⇒ S_t(p0) = (10, −10), S_t(p1) = (−10, 10);
    #   student a_s = (e1, e2)  ⇒ c_s = (e1, e2)  ⇒ S_s(p0) = (10, 0),   S_s(p1) = (0, 10).
    # Per-pixel KL(softmax(10,−10) ‖ softmax(10,0)) = 4.5376e−5 at both pixels (symmetric), so the
    # element mean over (2 pixels × N=2) is 4.5376e−5 / 2 = 2.2688e−5.
    q_t = [1 / (1 + math.exp(-20)), math.exp(-20) / (1 + math.exp(-20))]
    q_s = [1 / (1 + math.exp(-10)), math.exp(-10) / (1 + math.exp(-10))]
    kl = sum(p * math.log(p / q) for p, q in zip(q_t, q_s))
    assert abs(kl - 4.5376e-5) < 1e-9
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64).t().reshape(1, 2, 1, 2)
    t = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64).t().reshape(1, 2, 1, 2)
    labels = torch.tensor([[[0, 1]]])
    for scope in ("batch", "image"):
        out = apd_loss_terms(s, t, labels, 2, tau=10.0, scope=scope)
        torch.testing.assert_close(out["loss_apd"].item(), kl / 2, atol=1e-12, rtol=1e-9)
        assert abs(out["loss_apd"].item() - 2.2688e-5) < 1e-8
    # float32 too (precision of log-softmax around 10 limits the agreement to ~1e-7).
    out32 = apd_loss_terms(s.float(), t.float(), labels, 2, tau=10.0)
    torch.testing.assert_close(out32["loss_apd"].item(), 2.2688e-5, atol=5e-7, rtol=0)


def test_adapt_hand_value_absent_classes_at_logit_zero():
    # §8.6: K = 19, one present class (7), every valid pixel equal to its prototype (cos = 1):
    # U = (10 for class 7, 0 for the 18 absent classes) ⇒ CE = log(1 + 18·e^−10) ≈ 8.1687e−4.
    expected = math.log(1 + 18 * math.exp(-10))
    assert abs(expected - 8.1687e-4) < 1e-8
    t = torch.ones(2, 4, 5, 5)  # every pixel identical, so equal to its (batch or image) prototype
    labels = torch.full((2, 17, 17), 7)
    labels[:, :3] = 255
    for scope in ("batch", "image"):
        out = apd_loss_terms(torch.randn(2, 4, 5, 5), t, labels, 19, scope=scope)
        torch.testing.assert_close(out["loss_adapt"].item(), expected, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("scope", ["batch", "image"])
def test_apd_invariances(scope):
    # §8.3 (i) positive per-pixel rescaling, (ii) one-sided orthogonal channel transform,
    # (iii) consistent permutation of class ids.
    s, t, labels = _random_case(9)
    base = apd_loss_terms(s, t, labels, 5, scope=scope)["loss_apd"]
    g = torch.Generator().manual_seed(10)
    scale = torch.rand(2, 1, 5, 6, generator=g, dtype=s.dtype) * 5 + 0.1
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=s.dtype))
    rotate = lambda x: torch.einsum("ij,bjhw->bihw", q, x)  # noqa: E731
    perm = torch.tensor([3, 0, 4, 1, 2])
    permuted = torch.where(labels == 255, labels, perm[labels.clamp(max=4)])
    variants = {
        "scale student": apd_loss_terms(s * scale, t, labels, 5, scope=scope),
        "scale teacher": apd_loss_terms(s, t * scale, labels, 5, scope=scope),
        "rotate student": apd_loss_terms(rotate(s), t, labels, 5, scope=scope),
        "rotate teacher": apd_loss_terms(s, rotate(t), labels, 5, scope=scope),
        "permute classes": apd_loss_terms(s, t, permuted, 5, scope=scope),
    }
    for name, out in variants.items():
        torch.testing.assert_close(out["loss_apd"], base, msg=lambda m: f"{name}: {m}")


def test_pa_invariant_to_common_rotation_only():
    s, t, labels = _random_case(11)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(12), dtype=s.dtype))
    rotate = lambda x: torch.einsum("ij,bjhw->bihw", q, x)  # noqa: E731
    base = apd_loss_terms(s, t, labels, 5)["loss_pa"]
    torch.testing.assert_close(apd_loss_terms(rotate(s), rotate(t), labels, 5)["loss_pa"], base)
    assert not torch.allclose(apd_loss_terms(rotate(s), t, labels, 5)["loss_pa"], base)


@pytest.mark.parametrize("scope", ["batch", "image"])
def test_ignore_pixels_change_apd_but_not_prototypes(scope):
    # §8.4: prototypes (hence L_pa) ignore label-255 pixels; L_apd includes them as KL rows.
    s, t, labels = _random_case(13, size=(5, 6))
    ignored = (labels == 255).unsqueeze(1)
    assert ignored.any()
    s2 = torch.where(ignored, torch.randn_like(s) * 3, s)
    t2 = torch.where(ignored, torch.randn_like(t) * 3, t)
    a, b = apd_loss_terms(s, t, labels, 5, scope=scope), apd_loss_terms(s2, t2, labels, 5, scope=scope)
    torch.testing.assert_close(a["loss_pa"], b["loss_pa"])
    assert not torch.allclose(a["loss_apd"], b["loss_apd"])


def test_ranges_and_orthogonal_prototypes():
    # §8.5: S ∈ [−τ, τ]; L_pa ∈ [0, 1]; L_pa = 0.5 when student and teacher prototypes are orthogonal.
    s, t, labels = _random_case(14)
    small = downsample_labels(labels, (5, 6)).flatten(1)
    a = F.normalize(s.flatten(2).transpose(1, 2), dim=-1)
    protos, counts = class_prototypes(a, small, 5)
    logits = perspective_logits(a, protos, 10.0)
    assert logits.abs().max() <= 10.0 + 1e-9
    assert (counts[:, 4] == 0).all() and (protos[:, 4] == 0).all()  # class 4 absent: zero prototype
    pa = apd_loss_terms(s, t, labels, 5)["loss_pa"]
    assert 0.0 <= pa.item() <= 1.0
    # Student features on e1 for every pixel, teacher on e2: every prototype pair is orthogonal.
    s_orth = torch.zeros(2, 6, 5, 6, dtype=torch.float64)
    s_orth[:, 0] = 1
    t_orth = torch.zeros_like(s_orth)
    t_orth[:, 1] = 1
    for scope in ("batch", "image"):
        out = apd_loss_terms(s_orth, t_orth, labels, 5, scope=scope)
        torch.testing.assert_close(out["loss_pa"].item(), 0.5)
        # Opposite prototypes give the maximum 1.
        assert apd_loss_terms(s_orth, -s_orth, labels, 5, scope=scope)["loss_pa"].item() == pytest.approx(1)


def test_downsample_labels_is_pytorch_nearest():
    # src index = floor(dst · in / out): 11 → 5 rows picks rows 0, 2, 4, 6, 8 (floor(i · 2.2)).
    labels = torch.arange(11).reshape(1, 11, 1).expand(1, 11, 3)
    small = downsample_labels(labels, (5, 3))
    assert small[0, :, 0].tolist() == [0, 2, 4, 6, 8]
    assert small.dtype == torch.int64


# ----------------------------------------------------------------------------------------------------
# Gradient routing, empty input, extreme values
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scope", ["batch", "image"])
def test_gradient_routing(scope):
    s, t, labels = _random_case(15)
    s.requires_grad_(True)
    t.requires_grad_(True)
    out = apd_loss_terms(s, t, labels, 5, scope=scope)
    student_obj = out["loss_apd"] + out["loss_pa"]
    g_t = torch.autograd.grad(student_obj, t, allow_unused=True, retain_graph=True)[0]
    assert g_t is None or not g_t.any()  # §8.9: the student objective never reaches the teacher side
    g_s = torch.autograd.grad(out["loss_adapt"], s, allow_unused=True, retain_graph=True)[0]
    assert g_s is None or not g_s.any()  # loss_adapt trains only the teacher side
    (g_adapt,) = torch.autograd.grad(out["loss_adapt"], t, retain_graph=True)
    assert g_adapt.abs().sum() > 0

    # loss_apd reaches the student through a_s *and* through the (non-detached) prototypes c_s.
    (g_full,) = torch.autograd.grad(out["loss_apd"], s)
    (g_ref_full,) = torch.autograd.grad(_ref_dense(s, t, labels, 5, scope=scope)["loss_apd"], s)
    ref_detached = _ref_dense(s, t, labels, 5, scope=scope, detach_student_protos=True)
    (g_ref_detached,) = torch.autograd.grad(ref_detached["loss_apd"], s)
    torch.testing.assert_close(g_full, g_ref_full)
    assert g_ref_detached.abs().sum() > 0  # the a_s path alone is non-zero
    assert (g_full - g_ref_detached).abs().max() > 1e-6  # ... and the c_s path adds to it


@pytest.mark.parametrize("scope", ["batch", "image"])
def test_empty_labels_give_zero_losses_that_backpropagate(scope):
    s, t, labels = _random_case(16, dtype=torch.float32)
    s.requires_grad_(True)
    t.requires_grad_(True)
    out = apd_loss_terms(s, t, torch.full_like(labels, 255), 5, scope=scope)
    for key in KEYS:
        assert out[key].item() == 0.0 and out[key].requires_grad, key
    sum(out.values()).backward()
    assert torch.isfinite(s.grad).all() and not s.grad.any()
    assert torch.isfinite(t.grad).all() and not t.grad.any()


def test_points_empty_and_background_only_give_zero_losses():
    s = torch.randn(0, 4, requires_grad=True)
    t = torch.randn(0, 4, requires_grad=True)
    empty = apd_point_loss_terms(s, t, torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), 3)
    assert set(empty) == KEYS and all(v.item() == 0 for v in empty.values())
    sum(empty.values()).backward()

    s = torch.randn(5, 4, requires_grad=True)
    t = torch.randn(5, 4, requires_grad=True)
    out = apd_point_loss_terms(s, t, torch.full((5,), 3), torch.tensor([0, 0, 1, 1, 1]), 3)
    assert all(v.item() == 0 for v in out.values())
    sum(out.values()).backward()
    assert torch.isfinite(s.grad).all() and not s.grad.any()
    assert torch.isfinite(t.grad).all() and not t.grad.any()


@pytest.mark.parametrize("scope", ["batch", "image"])
def test_extreme_and_zero_features_stay_finite(scope):
    g = torch.Generator().manual_seed(17)
    s = (torch.randint(0, 2, (2, 8, 5, 6), generator=g).float() * 2 - 1) * 1e4
    t = torch.randn(2, 8, 5, 6, generator=g) * 1e4
    t[0, :, 0, :] = 0  # zero vectors normalise to zero
    s.requires_grad_(True)
    t.requires_grad_(True)
    labels = torch.randint(0, 3, (2, 9, 11), generator=g)
    out = apd_loss_terms(s, t, labels, 3, scope=scope)
    assert all(torch.isfinite(v) for v in out.values())
    sum(out.values()).backward()
    assert torch.isfinite(s.grad).all() and torch.isfinite(t.grad).all()


def test_half_precision_is_upcast():
    s, t, labels = _random_case(18, dtype=torch.float32)
    out = apd_loss_terms(s.half(), t.half(), labels, 5)
    ref = apd_loss_terms(s.half().float(), t.half().float(), labels, 5)
    assert all(v.dtype == torch.float32 for v in out.values())
    _assert_terms_close(out, ref)


def test_autocast_keeps_full_precision():
    s, t, labels = _random_case(20, dtype=torch.float32)
    ref = apd_loss_terms(s, t, labels, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = apd_loss_terms(s, t, labels, 5)
    _assert_terms_close(out, ref)


def test_invalid_arguments_are_named():
    s, t, labels = _random_case(19)
    with pytest.raises(ValueError, match="'pixel'"):
        apd_loss_terms(s, t, labels, 5, scope="pixel")
    with pytest.raises(ValueError, match=r"\(2, 6, 5, 6\).*\(2, 6, 5, 5\)"):
        apd_loss_terms(s, t[..., :5], labels, 5)
    with pytest.raises(ValueError, match="image_ids must be >= 0"):
        apd_point_loss_terms(s[0, :, 0], t[0, :, 0], torch.zeros(6), torch.full((6,), -1), 5)
