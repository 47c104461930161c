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
    """iteration → logged losses; for a resumed run the last record of each iteration wins."""
    curve = {}
    for m in read_metrics(output_dir):
        if "total_loss" in m:
            curve[m["iteration"]] = {k: m[k] for k in _LOGGED}
    return curve


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
