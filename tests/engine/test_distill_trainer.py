import pytest
import torch
from torch import nn

from apd.engine.distill_trainer import DistillTrainer, NonFiniteLossError
from apd.modeling.distill.protocol import DistillationTerm
from apd.solver.param_groups import student_param_groups, teacher_adapter_params


class _OwnAdapterTerm(DistillationTerm):
    """A term whose ``mapper`` (a name no other code knows) is trained only by its second-optimiser key."""

    loss_keys = ("loss_mapped",)
    second_optimizer_keys = ("loss_mapped",)

    def __init__(self):
        super().__init__()
        self.mapper = nn.Linear(4, 4)

    def second_optimizer_parameters(self):
        return list(self.mapper.parameters())


class TwoAdapterModel(nn.Module):
    """student_adapter trained by the main loss, the term's mapper only by its own key (as APD's teacher
    adapter by loss_adapt)."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(4, 4)
        self.student_adapter = nn.Linear(4, 4)
        self.term = _OwnAdapterTerm()
        self.scale = 1.0

    @property
    def teacher_adapter(self):
        return self.term.mapper

    def forward(self, batch):
        x = torch.stack(batch)
        main = (self.student_adapter(self.backbone(x)) ** 2).mean() * self.scale
        adapt = (self.term.mapper(x.detach()) ** 2).mean()
        return {"loss_main": main, "loss_mapped": adapt}


def _loader():
    g = torch.Generator().manual_seed(0)
    while True:
        yield [torch.randn(4, generator=g) for _ in range(2)]


def _trainer(model):
    opt = torch.optim.SGD(student_param_groups(model, base_lr=0.1, weight_decay=0.0), lr=0.1)
    adam = torch.optim.Adam(teacher_adapter_params(model), lr=1e-2)
    return DistillTrainer(model, _loader(), opt, adam, seed=0)


def test_one_backward_steps_both_optimisers():
    model = TwoAdapterModel()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = _trainer(model)
    trainer.iter = 0
    from detectron2.utils.events import EventStorage

    with EventStorage(0):
        trainer.run_step()
    after = model.state_dict()
    for k in before:
        assert not torch.equal(before[k], after[k]), f"{k} was not updated"
    state = trainer.state_dict()
    assert "adapter_optimizer" in state and state["adapter_optimizer"]["state"]


def test_student_groups_exclude_teacher_adapter_and_scale_heads():
    model = TwoAdapterModel()
    groups = student_param_groups(model, base_lr=0.1, weight_decay=0.0)
    ids = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert id(model.teacher_adapter.weight) not in ids
    assert ids[id(model.backbone.weight)] == pytest.approx(0.1)
    assert ids[id(model.student_adapter.weight)] == pytest.approx(1.0)
    assert [id(p) for p in teacher_adapter_params(model)] == [id(model.teacher_adapter.weight),
                                                              id(model.teacher_adapter.bias)]
    # under a distiller the student's backbone (student.backbone.*) keeps base_lr, its heads get 10x
    wrapper = torch.nn.Module()
    wrapper.student = model
    lrs = {id(p): g["lr"] for g in student_param_groups(wrapper, base_lr=0.1, weight_decay=0.0) for p in g["params"]}
    assert lrs[id(model.backbone.weight)] == pytest.approx(0.1)
    assert lrs[id(model.student_adapter.weight)] == pytest.approx(1.0)


def test_non_finite_loss_stops_before_any_update():
    model = TwoAdapterModel()
    model.scale = float("nan")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = _trainer(model)
    trainer.iter = 3
    from detectron2.utils.events import EventStorage

    with EventStorage(3), pytest.raises(NonFiniteLossError, match="iteration 3"):
        trainer.run_step()
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_resume_requires_adapter_optimizer_state():
    trainer = _trainer(TwoAdapterModel())
    state = trainer.state_dict()
    del state["adapter_optimizer"]
    with pytest.raises(KeyError, match="adapter_optimizer"):
        trainer.load_state_dict(state)


# --------------------------------------------------------------------------------- train.compile
def _toy_apd_trainer(tmp_path, compile):
    import copy
    import os

    from apd.engine.distill_trainer import DistillTrainer
    from apd.modeling.distill import APDHead, LogitKDHead
    from apd.modeling.meta_arch.semantic_seg_distiller import SemanticSegDistiller
    from helpers import toy_batch, toy_segmentor

    teacher = toy_segmentor(seed=5)
    path = os.path.join(tmp_path, "teacher.pth")
    if not os.path.exists(path):
        torch.save({"model": teacher.state_dict()}, path)
    torch.manual_seed(0)
    heads = {"kd": LogitKDHead(),
             "apd": APDHead(student_channels=8, teacher_channels=8, num_classes=3, hidden_dim=8, embed_dim=8)}
    model = SemanticSegDistiller(student=toy_segmentor(seed=0), teacher=toy_segmentor(seed=1), teacher_weights=path,
                                 distill_heads=heads, loss_weights={"loss_kd": 10.0, "loss_apd": 10.0, "loss_pa": 10.0})
    model.student.sem_seg_head.dropout.p = 0.0  # compiled dropout draws other random numbers than eager
    model.train()
    opt = torch.optim.SGD(student_param_groups(model, base_lr=0.05, weight_decay=1e-4), lr=0.05, momentum=0.9)
    adam = torch.optim.Adam(teacher_adapter_params(model), lr=1e-2)
    batches = [toy_batch(2, 33, 29, seed=i) for i in range(3)]  # odd size: padded, resized
    return DistillTrainer(model, iter(copy.deepcopy(batches)), opt, adam, seed=0, compile=compile), model


def _run_steps(trainer, n):
    from detectron2.utils.events import EventStorage

    losses = []
    with EventStorage(0) as storage:
        for i in range(n):
            trainer.iter = storage.iter = i
            trainer.run_step()
            losses.append(storage.history("total_loss").latest())
    return losses


def test_compile_wraps_student_and_terms_and_keeps_the_state_dict(tmp_path):
    eager, m_eager = _toy_apd_trainer(tmp_path, compile=False)
    compiled, m_comp = _toy_apd_trainer(tmp_path, compile={"backend": "aot_eager"})
    assert eager.compiled == []
    names = [f"{type(o).__name__}.{n}" for o, n, _ in compiled.compiled]
    assert names == ["ToyBackbone.forward", "ToySegHead.layers", "ToySegHead.losses", "LogitKDHead.forward",
                     "APDHead.forward"]
    assert list(m_comp.state_dict()) == list(m_eager.state_dict())  # names (checkpoints) unchanged
    assert all(n not in vars(m) for m in m_comp.teacher.modules() for n in ("forward", "layers"))
    owner, name, _ = compiled.compiled[0]
    delattr(owner, name)  # undoes one
    assert owner.forward.__func__ is type(owner).forward


@pytest.mark.slow
def test_compile_matches_eager_steps(tmp_path):
    # aot_eager: Dynamo + AOTAutograd (the graphs and the decomposed backward of torch.compile) without
    # inductor's code generation (~20 s on 2 CPU cores, hence slow; the inductor test below takes longer).
    eager, m_eager = _toy_apd_trainer(tmp_path, compile=False)
    compiled, m_comp = _toy_apd_trainer(tmp_path, compile={"backend": "aot_eager"})
    torch.testing.assert_close(_run_steps(compiled, 3), _run_steps(eager, 3), rtol=1e-5, atol=1e-6)
    for (k, a), b in zip(m_eager.state_dict().items(), m_comp.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=lambda m: f"{k}: {m}")


@pytest.mark.slow
def test_compile_inductor_matches_eager_steps(tmp_path):
    eager, m_eager = _toy_apd_trainer(tmp_path, compile=False)
    compiled, m_comp = _toy_apd_trainer(tmp_path, compile=True)
    torch.testing.assert_close(_run_steps(compiled, 3), _run_steps(eager, 3), rtol=1e-4, atol=1e-5)
    for (k, a), b in zip(m_eager.state_dict().items(), m_comp.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4, msg=lambda m: f"{k}: {m}")
