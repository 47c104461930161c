"""Tests of the baseline distillation terms (term protocol: keys, no teacher gradient, zero at equality)."""
import pytest
import torch
from detectron2.config import LazyCall as L
from detectron2.config import instantiate

from apd.modeling.distill import CWDHead, DISTHead, FitNetHead, IFVDHead, LogitKDHead, SKDHead
from apd.modeling.heads.outputs import SegHeadOutputs
from apd.modeling.losses import dist_loss, ifvd_loss, logit_kd_loss

TERMS = [
    L(LogitKDHead)(temperature=1.0),
    L(CWDHead)(temperature=4.0),
    L(DISTHead)(beta=1.0, gamma=1.0, tau=1.0),
    L(SKDHead)(pool_scale=0.5),
    L(SKDHead)(pool_scale=None, pool_kernel=(2, 2)),
    L(IFVDHead)(num_classes=4),
    L(IFVDHead)(num_classes=4, reduction="labelled"),
    L(FitNetHead)(student_channels=6, teacher_channels=6),
    L(FitNetHead)(student_channels=6, teacher_channels=6, bias=True),
]


def _outputs(seed, channels=6, size=(6, 6)):
    g = torch.Generator().manual_seed(seed)
    out = SegHeadOutputs(
        feature=torch.randn(2, channels, *size, generator=g, requires_grad=True),
        logits=torch.randn(2, 4, *size, generator=g, requires_grad=True),
    )
    targets = torch.randint(0, 4, (2, 21, 21), generator=g)
    targets[:, :3] = 255
    return out, targets


@pytest.mark.parametrize("cfg", TERMS, ids=lambda c: c._target_.__name__)
def test_term_keys_and_no_teacher_gradient(cfg):
    term = instantiate(cfg)
    student, targets = _outputs(0)
    teacher, _ = _outputs(1)
    out = term(student, teacher, targets)
    assert set(out) == set(term.loss_keys) and len(out) == 1
    loss = next(iter(out.values()))
    assert loss.dim() == 0 and loss.item() > 0
    loss.backward()
    assert teacher.feature.grad is None and teacher.logits.grad is None
    assert (student.feature.grad is not None and student.feature.grad.abs().sum() > 0) or (
        student.logits.grad is not None and student.logits.grad.abs().sum() > 0
    )


@pytest.mark.parametrize("cfg", TERMS, ids=lambda c: c._target_.__name__)
def test_term_is_zero_when_student_equals_teacher(cfg):
    term = instantiate(cfg)
    if isinstance(term, FitNetHead):  # identity regressor
        with torch.no_grad():
            term.regressor.weight.copy_(torch.eye(6).reshape(6, 6, 1, 1))
            if term.regressor.bias is not None:
                term.regressor.bias.zero_()
    student, targets = _outputs(2)
    loss = next(iter(term(student, student, targets).values()))
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_logit_kd_head_upsamples_to_targets():
    student, targets = _outputs(3)
    teacher, _ = _outputs(4)
    out = LogitKDHead(temperature=2.0)(student, teacher, targets)
    torch.testing.assert_close(
        out["loss_kd"], logit_kd_loss(student.logits, teacher.logits, 2.0, out_size=(21, 21))
    )


def test_teacher_on_other_grid_and_channels():
    student, targets = _outputs(5, channels=6, size=(6, 6))
    teacher, _ = _outputs(6, channels=9, size=(11, 11))
    for term in (CWDHead(), DISTHead(), SKDHead(), IFVDHead(num_classes=4), FitNetHead(student_channels=6, teacher_channels=9)):
        loss = next(iter(term(student, teacher, targets).values()))
        assert torch.isfinite(loss)


def test_dist_head_is_dist_loss_on_the_logits():
    student, targets = _outputs(7)
    teacher, _ = _outputs(8)
    out = DISTHead(beta=2.0, gamma=0.5, tau=2.0)(student, teacher, targets)
    torch.testing.assert_close(out["loss_dist"], dist_loss(student.logits, teacher.logits, 2.0, 0.5, 2.0))


def test_constructor_errors():
    with pytest.raises(ValueError, match="temperature"):
        CWDHead(temperature=0.0)
    with pytest.raises(ValueError, match="tau"):
        DISTHead(tau=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        DISTHead(gamma=-1.0)
    with pytest.raises(ValueError, match="pool_scale"):
        SKDHead(pool_scale=2.0)
    with pytest.raises(ValueError, match="not both"):
        SKDHead(pool_scale=0.5, pool_kernel=(2, 2))
    with pytest.raises(ValueError, match="reduction"):
        IFVDHead(num_classes=4, reduction="mean")
    with pytest.raises(TypeError):
        FitNetHead(6, 6)


def test_fitnet_regressor_has_no_bias_by_default():
    # As CIRKD's CriterionFitNet: a 1×1 conv without bias; bias=True adds one.
    assert FitNetHead(student_channels=6, teacher_channels=9).regressor.bias is None
    assert FitNetHead(student_channels=6, teacher_channels=9, bias=True).regressor.bias.shape == (9,)


def test_ifvd_head_passes_its_reduction():
    student, targets = _outputs(9)
    teacher, _ = _outputs(10)
    for reduction in ("all", "labelled"):
        out = IFVDHead(num_classes=4, reduction=reduction)(student, teacher, targets)
        torch.testing.assert_close(
            out["loss_ifvd"], ifvd_loss(student.feature, teacher.feature, targets, 4, reduction=reduction)
        )
