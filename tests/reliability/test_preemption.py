"""Reliability: SIGTERM / SIGINT stop every process of a run (real processes and signals).

A 2-process gloo run on the CPU (``--num-gpus 2``) gets the signal at its launcher or at one worker:
every process of the run is gone within seconds, the launcher exits with 128 + the signal, log.txt says
which signal stopped it at which iteration, nothing writes into the folder afterwards and
``last_checkpoint`` names a complete checkpoint. A 1-process run stopped by SIGTERM resumes bitwise like
an uninterrupted one.
"""
import os
import signal
import time

import pytest
import torch

from reliability_helpers import TINY, read_metrics
from test_exact_resume import _assert_equal_nested

STUDENT_DEMO = "configs/demo/pspnet_r18_demo.py"
STOP_WITHIN = 20.0  # seconds from the signal until every process of the run is gone (the escalation's grace)


def _curve(output_dir):
    """iteration → logged losses and lr; each iteration must be logged once, also across a resume."""
    records = [m for m in read_metrics(output_dir) if "total_loss" in m]
    iterations = [m["iteration"] for m in records]
    assert iterations == sorted(set(iterations)), f"metrics.json logs iterations twice: {iterations}"
    return {m["iteration"]: {k: v for k, v in m.items() if k.startswith(("loss_", "total_loss", "lr"))}
            for m in records}


def _children(pid):
    """Pids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return found


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for_tag(proc, out, log_file, name, timeout=400):
    tag = out / "last_checkpoint"
    deadline = time.time() + timeout
    while not (tag.exists() and tag.read_text() == name):
        assert proc.poll() is None, open(log_file).read()[-3000:]
        assert time.time() < deadline, f"the run did not write {name}"
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize("target,signum", [("launcher", signal.SIGTERM), ("worker", signal.SIGINT)])
def test_a_signal_to_the_launcher_or_one_worker_stops_every_process_of_a_two_process_run(
        demo_datasets_root, tmp_path, popen_train_net, target, signum):
    out = tmp_path / "run"
    log_file = tmp_path / "launcher.log"
    proc = popen_train_net(["--num-gpus", "2", "--dist-url", "auto", "--config-file", STUDENT_DEMO, *TINY,
                            "dataloader.train.total_batch_size=2", "train.max_iter=500",
                            "train.checkpointer.period=2", f"train.output_dir={out}"],
                           demo_datasets_root, log_file)
    _wait_for_tag(proc, out, log_file, "model_0000001.pth")
    workers = [p for p in _children(proc.pid) if "spawn_main" in open(f"/proc/{p}/cmdline").read()]
    assert len(workers) == 2, workers
    everyone = [proc.pid, *workers, *(c for w in workers for c in _children(w))]

    start = time.time()
    os.kill(proc.pid if target == "launcher" else workers[-1], signum)
    assert proc.wait(timeout=120) == 128 + signum, open(log_file).read()[-3000:]
    while any(_alive(p) for p in everyone) and time.time() - start < 60:
        time.sleep(0.05)
    stopped_after = time.time() - start
    assert not any(_alive(p) for p in everyone), "a process of the run is still running"
    assert stopped_after < STOP_WITHIN, f"{stopped_after:.1f} s"

    printed = open(log_file).read()
    name = signal.Signals(signum).name
    assert f"train_net.py: stopped by {name}: every worker process has exited" in printed
    assert "did not stop within" not in printed  # no worker needed the SIGKILL escalation
    log = (out / "log.txt").read_text()
    assert f"Stopped by {name} during iteration " in log
    # Nothing writes into the folder any more, and last_checkpoint names a complete checkpoint.
    snapshot = {f: os.stat(out / f).st_mtime_ns for f in os.listdir(out)}
    time.sleep(3)
    assert {f: os.stat(out / f).st_mtime_ns for f in os.listdir(out)} == snapshot
    last = (out / "last_checkpoint").read_text()
    assert f"last_checkpoint names {last} (complete)" in log
    checkpoint = torch.load(out / last, weights_only=False)
    assert checkpoint["iteration"] == int(last[len("model_"):-len(".pth")])
    assert not (out / "model_final.pth").exists()


@pytest.mark.slow
def test_sigtermed_run_resumes_exactly(demo_datasets_root, tmp_path, run_train_net, popen_train_net):
    # One loader worker: a forked child that inherits the handler (it must not take part in the stop).
    args = ["--config-file", STUDENT_DEMO, *TINY, "train.max_iter=6", "train.checkpointer.period=2",
            "train.seed=7", "dataloader.train.num_workers=1"]
    full, stopped = tmp_path / "full", tmp_path / "stopped"
    run_train_net(args + [f"train.output_dir={full}"], demo_datasets_root)

    log_file = tmp_path / "stopped.log"
    proc = popen_train_net(args + [f"train.output_dir={stopped}"], demo_datasets_root, log_file)
    _wait_for_tag(proc, stopped, log_file, "model_0000003.pth")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM, open(log_file).read()[-3000:]
    assert not (stopped / "model_final.pth").exists()
    log = (stopped / "log.txt").read_text()
    assert "Stopped by SIGTERM during iteration " in log and "last_checkpoint names model_0000003.pth" in log

    run_train_net(["--resume", *args, f"train.output_dir={stopped}"], demo_datasets_root)
    assert "Starting training from iteration 4" in (stopped / "log.txt").read_text()
    _assert_equal_nested(torch.load(full / "model_final.pth", weights_only=False),
                         torch.load(stopped / "model_final.pth", weights_only=False))
    assert sorted(_curve(full)) == list(range(6))
    assert _curve(stopped) == _curve(full)  # each iteration logged once, the same values
