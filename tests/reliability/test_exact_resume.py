"""Reliability §2 (and §7): a SIGKILLed run resumes exactly; a kill while saving loses nothing.

The uninterrupted/killed/resumed comparison runs three demo APD trainings (``-m slow``). What a resume
must restore: student + both APD adapters + BN statistics (model), SGD momentum (optimizer), the teacher
adapter's Adam moments (adapter_optimizer), the LR schedule and the iteration (trainer), the data
position (loader.set_start_iter) and the dropout RNG (re-seeded from the iteration each step).
"""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from torch import nn

from apd.checkpoint import AtomicCheckpointer

from reliability_helpers import APD_DEMO, REPO, TINY, read_metrics

# Writes a first checkpoint, then dies (SIGKILL from the test) halfway through writing the second one
# under the same name, as a resumed run does with model_final.pth.
_KILLED_WHILE_SAVING = textwrap.dedent(
    """
    import io, sys, time
    import torch
    from torch import nn
    from apd.checkpoint import AtomicCheckpointer

    torch.manual_seed(0)
    model = nn.Linear(256, 256)
    checkpointer = AtomicCheckpointer(model, sys.argv[1])
    checkpointer.save("model_final")
    real_save = torch.save

    def half_then_hang(obj, f, *args, **kwargs):
        buf = io.BytesIO()
        real_save(obj, buf)
        data = buf.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        print("WRITING", flush=True)
        time.sleep(600)

    torch.save = half_then_hang
    with torch.no_grad():
        model.weight.add_(1.0)
    checkpointer.save("model_final")
    """
)


def test_sigkill_while_saving_leaves_previous_checkpoint_loadable(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WHILE_SAVING, str(tmp_path)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        assert proc.stdout.readline().strip() == "WRITING"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    torch.manual_seed(0)
    expected = nn.Linear(256, 256).state_dict()
    model = nn.Linear(256, 256)
    nn.init.zeros_(model.weight)
    checkpointer = AtomicCheckpointer(model, str(tmp_path))
    assert checkpointer.get_checkpoint_file() == str(tmp_path / "model_final.pth")
    checkpointer.resume_or_load("", resume=True)
    torch.testing.assert_close(model.state_dict(), expected)
    # The half-written file is a hidden temporary that no loader looks at.
    leftovers = [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    assert len(leftovers) == 1 and leftovers[0].startswith(".model_final.pth.")


def _assert_equal_nested(a, b, path="checkpoint"):
    assert type(a) is type(b), path
    if isinstance(a, dict):
        assert sorted(a, key=str) == sorted(b, key=str), path
        for k in a:
            _assert_equal_nested(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_equal_nested(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), path
    else:
        assert a == b, path


_LOGGED = ("total_loss", "loss_sem_seg", "loss_aux", "loss_kd", "loss_apd", "loss_pa", "loss_adapt", "lr")


def _curve(output_dir):
    """iteration → logged losses; each iteration must be logged once, also across a resume."""
    records = [m for m in read_metrics(output_dir) if "total_loss" in m]
    iterations = [m["iteration"] for m in records]
    assert iterations == sorted(set(iterations)), f"metrics.json logs iterations twice: {iterations}"
    return {m["iteration"]: {k: m[k] for k in _LOGGED} for m in records}


@pytest.mark.slow
def test_sigkilled_run_resumes_exactly(demo_datasets_root, teacher_weights, tmp_path, run_train_net,
                                       popen_train_net):
    # One loader worker: data is then read in another process, so the dropout masks of the main process
    # depend on DistillTrainer's per-step re-seeding alone (with 0 workers the loader re-seeds too).
    args = ["--config-file", APD_DEMO, f"model.teacher_weights={teacher_weights}", *TINY, "train.max_iter=6",
            "train.checkpointer.period=2", "train.eval_teacher=False", "train.seed=7",
            "dataloader.train.num_workers=1"]
    full, killed = tmp_path / "full", tmp_path / "killed"
    run_train_net(args + [f"train.output_dir={full}"], demo_datasets_root)

    # Same run, SIGKILLed right after model_0000003.pth (4 iterations done) while it continues.
    proc = popen_train_net(args + [f"train.output_dir={killed}"], demo_datasets_root, tmp_path / "killed.log")
    tag = killed / "last_checkpoint"
    deadline = time.time() + 300
    while not (tag.exists() and tag.read_text() == "model_0000003.pth"):
        assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
        assert time.time() < deadline, "the run did not reach iteration 3"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert not (killed / "model_final.pth").exists()

    run_train_net(["--resume", *args, f"train.output_dir={killed}"], demo_datasets_root)
    assert "Starting training from iteration 4" in (killed / "log.txt").read_text()

    a = torch.load(full / "model_final.pth", weights_only=False)
    b = torch.load(killed / "model_final.pth", weights_only=False)
    model_keys = a["model"].keys()
    for part in ("student.backbone.", "student.sem_seg_head.", "distill_heads.apd.student_adapter.",
                 "distill_heads.apd.teacher_adapter."):
        assert any(k.startswith(part) for k in model_keys), part
    assert not any(k.startswith("teacher.") for k in model_keys)
    assert a["trainer"]["adapter_optimizer"]["state"], "the teacher adapter's Adam has no moments"
    assert a["trainer"]["optimizer"]["state"], "the student's SGD has no momentum buffers"
    _assert_equal_nested(a, b)  # model, trainer (both optimisers, LR scheduler hook, iteration)

    assert sorted(_curve(full)) == list(range(6))
    assert _curve(killed) == _curve(full)

    # §7: --eval-only into the same folder touches none of the run's checkpoints, metrics or config.
    before = {f: (killed / f).read_bytes() for f in os.listdir(killed)
              if f.endswith(".pth") or f in ("last_checkpoint", "metrics.json", "config.yaml")}
    assert "config.yaml" in before
    run_train_net(["--eval-only", "--config-file", APD_DEMO, f"model.teacher_weights={teacher_weights}", *TINY,
                   f"train.output_dir={killed}", f"train.init_checkpoint={killed / 'model_final.pth'}"],
                  demo_datasets_root)
    assert {f: (killed / f).read_bytes() for f in before} == before


STUDENT_DEMO = "configs/demo/pspnet_r18_demo.py"


def _kill_when(proc, log_file, condition, what, timeout=300):
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, open(log_file).read()[-3000:]
        assert time.time() < deadline, f"the run did not reach {what}"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL


def _logged_iterations(output_dir):
    if not (output_dir / "metrics.json").exists():
        return []
    try:
        return [m["iteration"] for m in read_metrics(output_dir) if "total_loss" in m]
    except ValueError:  # a line being written
        return []


def _periodic(output_dir):
    return sorted(f for f in os.listdir(output_dir) if f.startswith("model_0"))


@pytest.mark.slow
def test_killed_after_a_checkpoint_resume_logs_each_iteration_once_and_prunes_old_checkpoints(
        demo_datasets_root, tmp_path, popen_train_net, run_train_net):
    # Checkpoints at iterations 1, 3, 5, 7, keeping 1. Killed once iteration 4 is logged, after
    # model_0000003.pth: the killed run has logged past its last checkpoint.
    out = tmp_path / "run"
    args = ["--config-file", STUDENT_DEMO, *TINY, "train.max_iter=8", "train.checkpointer.period=2",
            "train.checkpointer.max_to_keep=1", f"train.output_dir={out}"]
    proc = popen_train_net(args, demo_datasets_root, tmp_path / "killed.log")
    _kill_when(proc, tmp_path / "killed.log", lambda: 4 in _logged_iterations(out), "iteration 4")
    start = int((out / "last_checkpoint").read_text()[len("model_"):-len(".pth")]) + 1
    before = _logged_iterations(out)
    assert max(before) >= start, (before, start)  # records the resumed run writes again
    assert _periodic(out) == [f"model_{start - 1:07d}.pth"]

    run_train_net(["--resume", *args], demo_datasets_root)
    assert f"Starting training from iteration {start}" in (out / "log.txt").read_text()
    # Detectron2's JSONWriter appends: without the truncation iterations start.. appear twice.
    assert _logged_iterations(out) == list(range(8))
    # fvcore's PeriodicCheckpointer forgets files of the killed run: model_<start-1> stayed forever.
    assert _periodic(out) == ["model_0000007.pth"] and (out / "model_final.pth").exists()


@pytest.mark.slow
def test_overwrite_then_kill_before_the_first_checkpoint_then_resume_starts_the_new_run(
        demo_datasets_root, tmp_path, popen_train_net, run_train_net):
    out = tmp_path / "run"
    base = ["--config-file", STUDENT_DEMO, *TINY, f"train.output_dir={out}"]
    run_train_net(base + ["train.max_iter=3", "train.checkpointer.period=1", "train.seed=1"], demo_datasets_root)
    old = {f: (out / f).read_bytes() for f in os.listdir(out) if f.endswith(".pth") or
           f in ("last_checkpoint", "metrics.json", "config.yaml")}
    assert "model_final.pth" in old and "metrics.json" in old

    # --overwrite: the old run moves aside at start; the new run is killed before its first checkpoint.
    new = base + ["train.max_iter=4", "train.checkpointer.period=100", "train.seed=2"]
    proc = popen_train_net(["--overwrite", *new], demo_datasets_root, tmp_path / "killed.log")
    def new_run_at_iteration_1():  # (the old run's metrics.json, until it moves, has iteration 1 too)
        return any(f.startswith("previous_") for f in os.listdir(out)) and 1 in _logged_iterations(out)

    _kill_when(proc, tmp_path / "killed.log", new_run_at_iteration_1, "iteration 1")
    previous = [f for f in os.listdir(out) if f.startswith("previous_")]
    assert len(previous) == 1
    assert {f: (out / previous[0] / f).read_bytes() for f in old} == old  # moved, not deleted or changed
    assert not (out / "last_checkpoint").exists() and _periodic(out) == []
    assert f"was moved to {out / previous[0]}" in (out / "log.txt").read_text()

    # --resume finds no checkpoint of the new run: it starts the new run at 0 (before the fix it
    # resumed the old run's model_final.pth, and metrics.json interleaved both runs).
    run_train_net(["--resume", *new], demo_datasets_root)
    log = (out / "log.txt").read_text()  # the old run's log.txt moved aside too
    assert log.count("Starting training from iteration 0") == 2 and "from iteration 3" not in log
    assert _logged_iterations(out) == [0, 1, 2, 3]
    assert torch.load(out / "model_final.pth", weights_only=False)["iteration"] == 3


def _files(folder):
    # log.txt gets the refused run's lines (appended), .run.lock its pid; config.yaml is put back
    return {f: (folder / f).read_bytes() for f in os.listdir(folder) if (folder / f).is_file() and
            f not in ("log.txt", ".run.lock")}


@pytest.mark.slow
def test_resume_refuses_another_model_and_another_teacher_naming_them(
        demo_datasets_root, teacher_weights, tmp_path, run_train_net):
    # A model change: Detectron2 skipped the reshaped tensors and the run crashed in the optimiser step.
    out = tmp_path / "student"
    args = ["--config-file", STUDENT_DEMO, *TINY, "train.max_iter=2", "train.checkpointer.period=1",
            f"train.output_dir={out}"]
    run_train_net(args, demo_datasets_root)
    before = _files(out)
    refused = run_train_net(["--resume", *args, "train.max_iter=4", "model.sem_seg_head.channels=48"],
                            demo_datasets_root, check=False)
    assert refused.returncode == 2, refused.stderr[-3000:]
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith("train_net.py: error: --resume: ") and "holds another model than the config builds" in line
    assert "sem_seg_head.ppm.bottleneck" in line or "sem_seg_head." in line
    assert "Traceback" not in refused.stderr
    assert _files(out) == before  # nothing of the run changed

    # A distiller resumed with another teacher file: refused, naming both files; the original resumes.
    out = tmp_path / "apd"
    other = tmp_path / "other_teacher.pth"
    state = torch.load(teacher_weights, weights_only=True)
    next(t for k, t in state["model"].items() if k.endswith("running_mean")).add_(0.5)
    torch.save(state, other)
    args = ["--config-file", APD_DEMO, *TINY, "train.max_iter=1", "train.checkpointer.period=1",
            "train.eval_teacher=False", f"train.output_dir={out}"]
    run_train_net([*args, f"model.teacher_weights={teacher_weights}"], demo_datasets_root)
    before = _files(out)
    refused = run_train_net(["--resume", *args, "train.max_iter=2", f"model.teacher_weights={other}"],
                            demo_datasets_root, check=False)
    assert refused.returncode == 2, refused.stderr[-3000:]
    line = refused.stderr.strip().splitlines()[-1]
    assert f"distilled from the teacher in '{teacher_weights}'" in line
    assert f"model.teacher_weights='{other}' holds another teacher" in line
    assert _files(out) == before
    run_train_net(["--resume", *args, "train.max_iter=2", f"model.teacher_weights={teacher_weights}"],
                  demo_datasets_root)
    assert "Starting training from iteration 1" in (out / "log.txt").read_text()


@pytest.mark.slow
def test_resume_of_a_finished_run_changes_nothing(demo_datasets_root, tmp_path, run_train_net):
    # It evaluated again and appended records to metrics.json out of order.
    out = tmp_path / "run"
    args = ["--config-file", STUDENT_DEMO, *TINY, "train.max_iter=3", "train.eval_period=3",
            "train.checkpointer.period=2", f"train.output_dir={out}"]
    run_train_net(args, demo_datasets_root)
    metrics = (out / "metrics.json").read_bytes()
    checkpoints = {f: (out / f).read_bytes() for f in os.listdir(out) if f.endswith(".pth") or f == "last_checkpoint"}
    assert any("sem_seg/mIoU" in m for m in read_metrics(out))
    run_train_net(["--resume", *args], demo_datasets_root)
    assert (out / "metrics.json").read_bytes() == metrics
    assert {f: (out / f).read_bytes() for f in checkpoints} == checkpoints
    assert "has finished (3 of train.max_iter=3 iterations): nothing to resume" in (out / "log.txt").read_text()
