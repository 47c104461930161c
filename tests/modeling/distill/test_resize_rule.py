"""One resize rule for teacher maps (issue 15 §8): bilinear with align_corners=True everywhere."""
import pytest
import torch
import torch.nn.functional as F

from apd.modeling.distill import (
    ALIGN_CORNERS,
    APDHead,
    CWDHead,
    DISTHead,
    FitNetHead,
    IFVDHead,
    LogitKDHead,
    SKDHead,
    resize_to,
)
from apd.modeling.heads.outputs import SegHeadOutputs
from apd.modeling.losses import logit_kd_loss


def test_rule_is_align_corners_true_and_keeps_corners():
    assert ALIGN_CORNERS is True
    # 1×2 → 1×4, values (1, 3). align_corners=True samples at s = d/3: (1, 5/3, 7/3, 3).
    # (align_corners=False would sample at s = (d + ½)/2 − ½, clamped: (1, 1.5, 2.5, 3).)
    x = torch.tensor([1.0, 3.0]).reshape(1, 1, 1, 2)
    torch.testing.assert_close(resize_to(x, (1, 4)).flatten(), torch.tensor([1.0, 5 / 3, 7 / 3, 3.0]))
    assert resize_to(x, (1, 2)) is x


def _pair(seed, grid_t):
    g = torch.Generator().manual_seed(seed)
    student = SegHeadOutputs(feature=torch.randn(2, 6, 6, 6, generator=g), logits=torch.randn(2, 4, 6, 6, generator=g))
    teacher = SegHeadOutputs(
        feature=torch.randn(2, 6, *grid_t, generator=g), logits=torch.randn(2, 4, *grid_t, generator=g)
    )
    targets = torch.randint(0, 4, (2, 21, 21), generator=g)
    targets[:, :3] = 255
    return student, teacher, targets


TERMS = [
    lambda: CWDHead(),
    lambda: DISTHead(),
    lambda: SKDHead(),
    lambda: IFVDHead(num_classes=4),
    lambda: FitNetHead(student_channels=6, teacher_channels=6),
    lambda: APDHead(student_channels=6, teacher_channels=6, num_classes=4, hidden_dim=8, embed_dim=8),
]


@pytest.mark.parametrize("make", TERMS, ids=["cwd", "dist", "skd", "ifvd", "fitnet", "apd"])
def test_every_term_resizes_the_teacher_with_the_rule(make):
    torch.manual_seed(0)
    term = make()
    student, teacher, targets = _pair(1, (11, 11))
    on_grid = SegHeadOutputs(feature=resize_to(teacher.feature, (6, 6)), logits=resize_to(teacher.logits, (6, 6)))
    other = SegHeadOutputs(
        feature=F.interpolate(teacher.feature, size=(6, 6), mode="bilinear", align_corners=False),
        logits=F.interpolate(teacher.logits, size=(6, 6), mode="bilinear", align_corners=False),
    )
    got, same, differ = (term(student, t, targets) for t in (teacher, on_grid, other))
    for key in got:
        torch.testing.assert_close(got[key], same[key])
    assert any(not torch.allclose(got[k], differ[k]) for k in got)


def test_logit_kd_upsamples_with_the_rule():
    student, teacher, targets = _pair(2, (6, 6))
    expected = logit_kd_loss(resize_to(student.logits, (21, 21)), resize_to(teacher.logits, (21, 21)))
    torch.testing.assert_close(LogitKDHead()(student, teacher, targets)["loss_kd"], expected)
    torch.testing.assert_close(logit_kd_loss(student.logits, teacher.logits, out_size=(21, 21)), expected)
