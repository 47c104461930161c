import pytest
import torch
from torch import nn

from apd.engine.distill_trainer import DistillTrainer, NonFiniteLossError
from apd.solver.param_groups import student_param_groups, teacher_adapter_params


class TwoAdapterModel(nn.Module):
    """student_adapter trained by the main loss, teacher_adapter only by loss_adapt (as in APD)."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(4, 4)
        self.student_adapter = nn.Linear(4, 4)
        self.teacher_adapter = nn.Linear(4, 4)
        self.scale = 1.0

    def forward(self, batch):
        x = torch.stack(batch)
        main = (self.student_adapter(self.backbone(x)) ** 2).mean() * self.scale
        adapt = (self.teacher_adapter(x.detach()) ** 2).mean()
        return {"loss_main": main, "loss_adapt": adapt}


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
