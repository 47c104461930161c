"""Tests of apd.modeling.losses.kd.logit_kd_loss (docs/METHOD.md §3d, §8.1, §8.7)."""
import math

import pytest
import torch

from apd.modeling.losses import logit_kd_loss


def test_one_pixel_hand_value():
    # §8.7: K = 2, Z_t = (0, 0), Z_s = (ln 3, 0), T = 1: p_t = (1/2, 1/2), p_s = (3/4, 1/4);
    # per-pixel KL = ½ ln(½ / ¾) + ½ ln(½ / ¼) = ½ ln(4/3) = 0.143841; element mean ÷ K = 0.071921.
    student = torch.tensor([math.log(3.0), 0.0]).reshape(1, 2, 1, 1)
    teacher = torch.zeros(1, 2, 1, 1)
    loss = logit_kd_loss(student, teacher, temperature=1.0)
    assert 0.5 * math.log(4 / 3) == pytest.approx(0.143841, abs=1e-6)
    torch.testing.assert_close(loss.item(), 0.071921, atol=1e-6, rtol=0)


def test_temperature_softens_then_scales_by_t_squared():
    # T = 2: p_s = softmax(ln3 / 2, 0) = (√3, 1) / (1 + √3); p_t = (½, ½).
    # KL = ½ ln(¼ · (1 + √3)² / √3) = ½ ln(1.0773503) = 0.0372523; ÷ K = 0.0186261; × T² = 0.0745046.
    student = torch.tensor([math.log(3.0), 0.0], dtype=torch.float64).reshape(1, 2, 1, 1)
    teacher = torch.zeros(1, 2, 1, 1, dtype=torch.float64)
    expected = 0.5 * math.log(0.25 * (1 + math.sqrt(3)) ** 2 / math.sqrt(3)) / 2 * 4
    assert expected == pytest.approx(0.0745046, abs=1e-7)
    torch.testing.assert_close(logit_kd_loss(student, teacher, temperature=2.0).item(), expected)


def test_identical_logits_give_zero_and_teacher_gets_no_grad():
    z = torch.randn(2, 5, 3, 4)
    assert logit_kd_loss(z, z.clone()).item() == pytest.approx(0.0, abs=1e-7)
    student = torch.randn(2, 5, 3, 4, requires_grad=True)
    teacher = torch.randn(2, 5, 3, 4, requires_grad=True)
    logit_kd_loss(student, teacher, out_size=(9, 11)).backward()
    assert teacher.grad is None
    assert student.grad.abs().sum() > 0


def test_out_size_resizes_both_with_bilinear_align_corners():
    # align_corners=True keeps the corner pixels: a 2-pixel-wide map upsampled to 3 has its corners
    # unchanged and the mean of both in the middle. Compare with the loss on hand-upsampled logits.
    s = torch.randn(1, 3, 1, 2, dtype=torch.float64)
    t = torch.randn(1, 3, 1, 2, dtype=torch.float64)
    up = lambda z: torch.stack([z[..., 0], (z[..., 0] + z[..., 1]) / 2, z[..., 1]], dim=-1)  # noqa: E731
    torch.testing.assert_close(logit_kd_loss(s, t, out_size=(1, 3)), logit_kd_loss(up(s), up(t)))


def test_element_mean_over_all_pixels_and_classes():
    # The loss of a batch is the mean of per-pixel KLs divided by K (ignore pixels are not masked).
    s = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    t = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    per_pixel = (t.softmax(1) * (t.log_softmax(1) - s.log_softmax(1))).sum(1)
    torch.testing.assert_close(logit_kd_loss(s, t), per_pixel.mean() / 4)


def test_shape_mismatch_without_out_size_is_an_error():
    with pytest.raises(ValueError, match="out_size"):
        logit_kd_loss(torch.randn(1, 3, 4, 4), torch.randn(1, 3, 5, 5))
    with pytest.raises(ValueError, match="temperature"):
        logit_kd_loss(torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4), temperature=0)
