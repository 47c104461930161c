"""Tests of APDHead: loss keys, gradient routing between the two adapters."""
import pytest
import torch
from detectron2.config import LazyCall as L
from detectron2.config import instantiate

from apd.modeling.distill import APDHead, ConvAdapter
from apd.modeling.heads.outputs import SegHeadOutputs
from apd.modeling.losses import apd_loss_terms

KEYS = {"loss_apd", "loss_pa", "loss_adapt"}


def _outputs(seed, c_s=6, c_t=10, k=4, size=(5, 6), t_size=None):
    g = torch.Generator().manual_seed(seed)
    student = SegHeadOutputs(
        feature=torch.randn(2, c_s, *size, generator=g, requires_grad=True),
        logits=torch.randn(2, k, *size, generator=g, requires_grad=True),
    )
    t_size = t_size or size
    teacher = SegHeadOutputs(
        feature=torch.randn(2, c_t, *t_size, generator=g, requires_grad=True),
        logits=torch.randn(2, k, *t_size, generator=g),
    )
    targets = torch.randint(0, k, (2, 17, 21), generator=g)
    targets[:, :4] = 255
    return student, teacher, targets


def _head(**kwargs):
    torch.manual_seed(0)
    args = dict(student_channels=6, teacher_channels=10, num_classes=4, hidden_dim=8, embed_dim=5)
    args.update(kwargs)
    return APDHead(**args)


def _grads(loss, params):
    grads = torch.autograd.grad(loss, list(params), allow_unused=True, retain_graph=True)
    return [torch.zeros(()) if g is None else g for g in grads]


@pytest.mark.parametrize("scope", ["image", "batch"])
def test_returns_apd_terms_of_adapted_features(scope):
    head = _head(scope=scope)
    student, teacher, targets = _outputs(1)
    out = head(student, teacher, targets)
    assert set(out) == KEYS == set(head.loss_keys)
    expected = apd_loss_terms(
        head.student_adapter(student.feature), head.teacher_adapter(teacher.feature), targets, 4,
        tau=10.0, scope=scope,
    )
    for key in KEYS:
        torch.testing.assert_close(out[key], expected[key])


def test_gradient_routing_between_adapters():
    head = _head()
    student, teacher, targets = _outputs(2)
    out = head(student, teacher, targets)
    student_obj = 10 * out["loss_apd"] + 10 * out["loss_pa"]
    s_params, t_params = list(head.student_adapter.parameters()), head.second_optimizer_parameters()

    # §8.9: ∂L/∂θ(g_t) = 0 for the student objective; ∂L_adapt/∂θ(g_s, student) = 0.
    assert all(not g.any() for g in _grads(student_obj, t_params))
    assert all(g.abs().sum() > 0 for g in _grads(student_obj, s_params))
    assert _grads(student_obj, [student.feature])[0].abs().sum() > 0
    assert all(not g.any() for g in _grads(out["loss_adapt"], s_params + [student.feature]))
    assert all(g.abs().sum() > 0 for g in _grads(out["loss_adapt"], t_params))
    # The teacher network never receives gradient: its feature is detached before g_t.
    total = sum(out.values())
    assert not _grads(total, [teacher.feature])[0].any()


def test_second_optimizer_parameters_are_exactly_g_t():
    head = _head()
    assert [id(p) for p in head.second_optimizer_parameters()] == [id(p) for p in head.teacher_adapter.parameters()]
    assert isinstance(head.student_adapter, ConvAdapter) and isinstance(head.teacher_adapter, ConvAdapter)
    names = {n for n, _ in head.named_parameters()}
    assert {"teacher_adapter.0.weight", "student_adapter.2.bias"} <= names


def test_teacher_feature_on_another_grid_is_resized():
    head = _head()
    student, teacher, targets = _outputs(3, t_size=(9, 11))
    out = head(student, teacher, targets)
    assert all(torch.isfinite(v) for v in out.values())


def test_lazy_call_and_argument_errors():
    head = instantiate(L(APDHead)(student_channels=6, teacher_channels=10, num_classes=4, hidden_dim=8,
                                  embed_dim=5, scope="batch"))
    assert head.scope == "batch" and head.teacher_adapter[2].out_channels == 5
    with pytest.raises(ValueError, match="'global'"):
        _head(scope="global")
    with pytest.raises(TypeError, match="adapter"):  # dense 1×1-conv adapters only; not a keyword
        _head(adapter="mlp")
    with pytest.raises(TypeError):
        APDHead(6, 10, 4)  # keyword-only
