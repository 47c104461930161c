"""What a run logs: every loss term as its own scalar (metrics.json and TensorBoard), an ETA in the log,
and the per-class IoU table of --eval-only.

One tiny APD demo run (2 iterations, 64×128 crops, batch 2, a random demo teacher saved as its
checkpoint; tests/conftest.py::apd_demo_run, shared with the reliability tests) is read by the module;
--eval-only runs once on its final checkpoint.
"""
import json
import math
import os

import pytest

from helpers import run_script

REPO = os.path.dirname(os.path.abspath(__file__)).rsplit(os.sep, 1)[0]
APD_DEMO = "configs/demo/apd_pspnet_r18_demo.py"
LOSS_TERMS = ("loss_sem_seg", "loss_aux", "loss_kd", "loss_apd", "loss_pa", "loss_adapt")


def _train_net(args, root):
    return run_script("train_net.py", args, cwd=REPO, datasets_root=root, threads=2)


@pytest.fixture(scope="module")
def apd_run(apd_demo_run, teacher_weights, demo_datasets_root):
    """(output dir, teacher checkpoint, dataset root) of the session's 2-iteration APD demo run
    (tests/conftest.py::apd_demo_run: ``train.max_iter=2``, ``TINY_TRAIN_OVERRIDES``, ``train.eval_teacher=False``,
    ``model.save_teacher=True``)."""
    return str(apd_demo_run), teacher_weights, demo_datasets_root


def _train_entries(out):
    with open(os.path.join(out, "metrics.json")) as f:
        entries = [json.loads(line) for line in f if line.strip()]
    return [e for e in entries if "total_loss" in e]


def test_metrics_json_has_each_loss_term(apd_run):
    entries = _train_entries(apd_run[0])
    assert [e["iteration"] for e in entries] == [0, 1]
    for entry in entries:
        for key in LOSS_TERMS:
            assert key in entry and math.isfinite(entry[key]), (key, entry)
    # total_loss is the sum of the six terms (d2 sums the loss dict; each term is logged apart).
    first = entries[0]
    assert first["total_loss"] == pytest.approx(sum(first[k] for k in LOSS_TERMS), rel=1e-5)


def test_tensorboard_has_each_loss_term(apd_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = apd_run[0]
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(out))
    events = EventAccumulator(out)
    events.Reload()
    scalars = events.Tags()["scalars"]
    entries = {e["iteration"]: e for e in _train_entries(out)}
    for key in LOSS_TERMS:
        assert key in scalars, (key, scalars)
        # Same numbers as metrics.json (both writers read the same storage; TensorBoard keeps float32).
        for event in events.Scalars(key):
            assert event.value == pytest.approx(entries[event.step][key], rel=1e-6)


def test_log_shows_progress_with_eta(apd_run):
    with open(os.path.join(apd_run[0], "log.txt")) as f:
        lines = [line for line in f if "iter: " in line and "total_loss" in line]
    assert lines and any("eta: " in line for line in lines), lines


@pytest.mark.slow
def test_eval_only_prints_per_class_iou_table(apd_run, tmp_path):
    out, teacher, root = apd_run
    proc = _train_net(["--config-file", APD_DEMO, "--eval-only", f"train.init_checkpoint={out}/model_final.pth",
                       f"model.teacher_weights={teacher}", f"train.output_dir={tmp_path}",
                       "dataloader.test.num_workers=0"], root)
    log = proc.stdout + proc.stderr
    assert "Per-class results" in log, log[-3000:]
    table = log[log.index("Per-class results"):]
    assert "| class" in table and "IoU" in table
    # One row per Cityscapes class (pipe table rows start with "| <name>").
    for name in ("road", "sidewalk", "traffic light", "bicycle"):
        assert f"| {name}" in table, name
