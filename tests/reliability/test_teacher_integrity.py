"""Reliability §1: the teacher is loaded strictly, stays frozen for the whole run, and is scored first.

Unit-level checks already in tests/modeling/meta_arch/test_semantic_seg_distiller.py (mismatched keys
listed, missing file, no weights refused, eval mode after train(), state_dict without teacher) are not
repeated; these tests go through train_net.py, the trainer and its hooks, and checkpoint loading.
"""
import os
import pickle
import re

import pytest
import torch
import torch.nn.functional as F
from detectron2.engine import HookBase, hooks
from detectron2.evaluation import DatasetEvaluator, inference_on_dataset
from detectron2.layers import FrozenBatchNorm2d
from torch import nn

from apd.checkpoint import AtomicCheckpointer
from apd.engine.distill_trainer import DistillTrainer
from apd.engine.hooks import TeacherEvalHook
from apd.modeling.distill.protocol import HEAD_OUTPUTS, DistillationTerm
from apd.modeling.meta_arch.semantic_seg_distiller import SemanticSegDistiller
from apd.modeling.meta_arch.teacher import TeacherWeightsError
from helpers import toy_batch, toy_segmentor

from reliability_helpers import APD_DEMO, TINY


class FeatureMSE(DistillationTerm):
    """A minimal distillation term with a student adapter."""

    loss_keys = ("loss_mse",)
    inputs = frozenset({HEAD_OUTPUTS})

    def __init__(self, channels=8):
        super().__init__()
        self.student_adapter = nn.Conv2d(channels, channels, 1)

    def forward(self, student, teacher, targets):
        return {"loss_mse": F.mse_loss(self.student_adapter(student.feature), teacher.feature)}


def _teacher_file(tmp_path, seed=1, transform=None):
    state = toy_segmentor(seed=seed).state_dict()
    if transform is not None:
        state = transform(state)
    path = os.path.join(tmp_path, f"teacher_{seed}.pth")
    torch.save({"model": state}, path)
    return path


def _distiller(teacher_weights, **kw):
    return SemanticSegDistiller(student=toy_segmentor(seed=0), teacher=toy_segmentor(seed=5),
                                teacher_weights=teacher_weights, distill_heads={"mse": FeatureMSE()}, **kw)


# --------------------------------------------------------------------------- strict loading
def test_train_net_refuses_mismatched_teacher_weights_before_training(
        demo_datasets_root, teacher_weights, tmp_path, run_train_net):
    state = torch.load(teacher_weights, weights_only=True)["model"]
    state.pop("sem_seg_head.classifier.bias")  # missing
    state["sem_seg_head.extra.weight"] = torch.zeros(1)  # unexpected
    state["sem_seg_head.aux_head.classifier.weight"] = torch.zeros(19, 64, 3, 3)  # model: 19×64×1×1
    bad = str(tmp_path / "bad_teacher.pth")
    torch.save({"model": state}, bad)
    out = tmp_path / "run"
    proc = run_train_net(["--config-file", APD_DEMO, f"train.output_dir={out}", f"model.teacher_weights={bad}",
                          "train.max_iter=1", *TINY], demo_datasets_root, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    msg = proc.stderr
    assert "missing keys (1): sem_seg_head.classifier.bias" in msg
    assert "unexpected keys (1): sem_seg_head.extra.weight" in msg
    assert ("sem_seg_head.aux_head.classifier.weight (checkpoint (19, 64, 3, 3) vs model (19, 64, 1, 1))"
            in msg)
    assert "Traceback" not in msg
    assert "Starting training" not in (out / "log.txt").read_text()
    assert not [f for f in os.listdir(out) if f.endswith(".pth")]


class _RunsCode:
    """Unpickling this object calls ``os.system(command)``."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.slow
@pytest.mark.parametrize("key", ["model.teacher_weights", "train.init_checkpoint"])
def test_train_net_refuses_a_crafted_pkl_without_running_it(
        demo_datasets_root, teacher_weights, tmp_path, run_train_net, key):
    """A model-zoo style .pkl whose unpickling would run a shell command, given as the teacher or as the
    init checkpoint: exit status 2, one line naming the file and the global, and the command never ran."""
    marker = tmp_path / "pwned"
    state = {k: v.numpy() for k, v in torch.load(teacher_weights, weights_only=True)["model"].items()}
    evil = str(tmp_path / "model_final.pkl")
    with open(evil, "wb") as f:
        pickle.dump({"model": dict(state, x=_RunsCode(f"touch {marker}")), "__author__": "zoo"}, f)
    out = tmp_path / "run"
    args = ["--config-file", APD_DEMO, f"train.output_dir={out}", f"{key}={evil}", "train.max_iter=1", *TINY]
    if key != "model.teacher_weights":
        args.append(f"model.teacher_weights={teacher_weights}")
    proc = run_train_net(args, demo_datasets_root, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("train_net.py: error:")]
    assert len(errors) == 1 and evil in errors[0] and "'posix.system'" in errors[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert not marker.exists()
    assert not [f for f in os.listdir(out) if f.endswith(".pth")]


def test_every_teacher_load_is_strict(tmp_path, monkeypatch):
    calls = []
    original = nn.Module.load_state_dict

    def spy(self, state_dict, strict=True, assign=False):
        calls.append((self, strict))
        return original(self, state_dict, strict=strict, assign=assign)

    monkeypatch.setattr(nn.Module, "load_state_dict", spy)
    # A DDP-prefixed checkpoint without the (benign) num_batches_tracked buffers still loads.
    path = _teacher_file(tmp_path, transform=lambda s: {
        "module." + k: v for k, v in s.items() if not k.endswith("num_batches_tracked")})
    model = _distiller(path)
    teacher_calls = [strict for module, strict in calls if module is model.teacher]
    assert teacher_calls == [True]
    for k, v in toy_segmentor(seed=1).state_dict().items():
        torch.testing.assert_close(model.teacher.state_dict()[k], v)


def test_checkpoint_with_part_of_the_teacher_is_refused(tmp_path):
    model = _distiller(_teacher_file(tmp_path), save_teacher=True)
    AtomicCheckpointer(model, str(tmp_path)).save("model_0000001")
    path = str(tmp_path / "model_0000001.pth")

    # Complete teacher in the checkpoint: a model built without teacher weights is ready to distil.
    fresh = _distiller(None, save_teacher=True)
    AtomicCheckpointer(fresh).load(path)
    fresh.check_teacher_ready()
    torch.testing.assert_close(fresh.teacher.state_dict(), model.teacher.state_dict())

    data = torch.load(path, weights_only=True)
    del data["model"]["teacher.sem_seg_head.predictor.bias"]
    data["model"]["teacher.sem_seg_head.conv.weight"] = torch.zeros(8, 8, 1, 1)  # model: 8×8×3×3
    torch.save(data, path)
    with pytest.raises(TeacherWeightsError) as err:
        AtomicCheckpointer(_distiller(None, save_teacher=True)).load(path)
    # Detectron2's checkpointer drops the shape-mismatched key, so it is reported as missing too.
    assert "teacher.sem_seg_head.predictor.bias" in str(err.value)
    assert "teacher.sem_seg_head.conv.weight" in str(err.value)


def test_student_only_checkpoint_does_not_make_a_random_teacher_ready():
    # FrozenBatchNorm2d fills in running stats absent from old checkpoints, so counting the missing
    # teacher keys after loading cannot tell whether the checkpoint carried the teacher.
    teacher = FrozenBatchNorm2d.convert_frozen_batchnorm(toy_segmentor(seed=1))
    model = SemanticSegDistiller(student=toy_segmentor(seed=0), teacher=teacher, teacher_weights=None)
    student_run = {"student." + k: v for k, v in toy_segmentor(seed=2).state_dict().items()}
    result = model.load_state_dict(student_run, strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []
    with pytest.raises(TeacherWeightsError, match="teacher_weights"):
        model.check_teacher_ready()


# --------------------------------------------------------------- frozen for the whole run
class _CountingEvaluator(DatasetEvaluator):
    def reset(self):
        self.count = 0

    def process(self, inputs, outputs):
        self.count += len(outputs)

    def evaluate(self):
        return {"sem_seg": {"mIoU": float(self.count)}}


class _TeacherSpy(HookBase):
    """Checks, around every step, that the teacher is in eval mode, has no gradient and is unchanged."""

    def __init__(self, reference):
        self.reference = reference
        self.checks = 0

    def _check(self, when):
        teacher = self.trainer.model.teacher
        assert [n for n, m in teacher.named_modules() if m.training] == [], when
        for name, p in teacher.named_parameters():
            assert not p.requires_grad and p.grad is None, (when, name)
        state = teacher.state_dict()
        for k, v in self.reference.items():
            assert torch.equal(state[k], v), (when, k)
        self.checks += 1

    def before_step(self):
        self._check(f"before step {self.trainer.iter}")

    def after_step(self):
        self._check(f"after step {self.trainer.iter} and its hooks")

    def after_train(self):
        self._check("after training")


def _batches():
    i = 0
    while True:
        yield toy_batch(seed=i)
        i += 1


def _train(model, out, start_or_resume, max_iter, reference):
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    trainer = DistillTrainer(model, _batches(), opt, seed=0)
    test_data = [[x] for x in toy_batch(batch_size=2, seed=99)]
    checkpointer = AtomicCheckpointer(model, out, trainer=trainer)
    spy = _TeacherSpy(reference)
    trainer.register_hooks([
        TeacherEvalHook(lambda: inference_on_dataset(model.teacher, test_data, _CountingEvaluator())),
        hooks.PeriodicCheckpointer(checkpointer, period=2),
        hooks.EvalHook(1, lambda: inference_on_dataset(model, test_data, _CountingEvaluator())),
        spy,
    ])
    checkpointer.resume_or_load("", resume=start_or_resume == "resume")
    start = trainer.iter + 1 if start_or_resume == "resume" else 0
    trainer.train(start, max_iter)
    return trainer, spy


def test_teacher_frozen_through_training_evaluation_hooks_and_resume(tmp_path):
    teacher_path = _teacher_file(tmp_path)
    reference = toy_segmentor(seed=1).state_dict()  # the teacher file (BN buffers included)
    out = str(tmp_path / "run")
    _, spy = _train(_distiller(teacher_path), out, "start", 3, reference)
    assert spy.checks == 7  # 3 × (before, after) + after_train
    trainer, spy = _train(_distiller(teacher_path), out, "resume", 5, reference)
    # The last checkpoint is model_final (iteration 2): the resumed run does iterations 3 and 4.
    assert trainer.start_iter == 3 and spy.checks == 5


# --------------------------------------------------------------- teacher score before step 0
@pytest.mark.slow
def test_teacher_score_before_step_0_and_teacher_left_out_of_checkpoints(
        demo_datasets_root, teacher_weights, tmp_path, run_train_net, metrics):
    out = tmp_path / "run"
    run_train_net(["--config-file", APD_DEMO, f"train.output_dir={out}",
                   f"model.teacher_weights={teacher_weights}",
                   "train.max_iter=1", *TINY], demo_datasets_root)
    log = (out / "log.txt").read_text()
    score = log.index("Teacher score before distillation: teacher/sem_seg/mIoU=")
    assert score < log.index(" iter: 0 ")
    first = metrics(out)[0]
    assert first["iteration"] == 0 and "teacher/sem_seg/mIoU" in first and "total_loss" in first
    keys = torch.load(out / "model_final.pth", weights_only=True)["model"].keys()
    assert not [k for k in keys if k.startswith("teacher.")]
    assert any(k.startswith("student.") for k in keys)
    assert any(k.startswith("distill_heads.apd.teacher_adapter.") for k in keys)


@pytest.mark.slow
def test_teacher_score_switched_off_and_saved_teacher_unchanged_by_training(apd_demo_run, teacher_weights, metrics):
    # The session's shared run (tests/conftest.py): 2 iterations, train.eval_teacher=False, model.save_teacher=True.
    out = apd_demo_run
    log = (out / "log.txt").read_text()
    assert "Teacher score" not in log and re.search(r" iter: 0 ", log)
    assert not [k for m in metrics(out) for k in m if k.startswith("teacher/")]
    saved = torch.load(out / "model_final.pth", weights_only=True)["model"]
    original = torch.load(teacher_weights, weights_only=True)["model"]
    assert sorted(k[len("teacher."):] for k in saved if k.startswith("teacher.")) == sorted(original)
    for k, v in original.items():  # BN statistics included: the teacher never ran in train mode
        assert torch.equal(saved["teacher." + k], v), k
