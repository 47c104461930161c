"""train_net.py end to end on generated Cityscapes-format data (subprocesses, a few iterations each)."""
import json
import os

from apd.utils.testing import TINY_TRAIN_OVERRIDES, run_script

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY = list(TINY_TRAIN_OVERRIDES)


def _run(args, root, check=True):
    return run_script("train_net.py", args, cwd=REPO, datasets_root=root, threads=2, check=check)


def _metrics(out):
    with open(os.path.join(out, "metrics.json")) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_train_evaluate_checkpoint_and_resume(demo_datasets_root, tmp_path):
    out = str(tmp_path / "run")
    cfg = ["--config-file", "configs/demo/pspnet_r18_demo.py", f"train.output_dir={out}"]
    _run(cfg + TINY + ["train.max_iter=3", "train.eval_period=3", "train.checkpointer.period=2"],
         demo_datasets_root)
    metrics = _metrics(out)
    iters = [m["iteration"] for m in metrics if "total_loss" in m]
    assert iters == [0, 1, 2]
    last_train = [m for m in metrics if "total_loss" in m][-1]
    assert all(k in last_train for k in ("loss_sem_seg", "loss_aux", "lr", "time", "eta_seconds"))
    evals = [m for m in metrics if "sem_seg/mIoU" in m]
    assert len(evals) == 1 and 0.0 <= evals[0]["sem_seg/mIoU"] <= 100.0
    for f in ("model_0000001.pth", "model_final.pth", "last_checkpoint", "config.yaml", "log.txt"):
        assert os.path.exists(os.path.join(out, f)), f
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(out))

    # a new run into the same folder without --resume is refused, nothing is overwritten
    before = os.path.getmtime(os.path.join(out, "model_final.pth"))
    proc = _run(cfg + TINY + ["train.max_iter=3"], demo_datasets_root, check=False)
    assert proc.returncode == 2 and "--resume" in proc.stderr
    assert os.path.getmtime(os.path.join(out, "model_final.pth")) == before

    # --resume continues after the last checkpoint (iteration 2 -> starts at 3)
    _run(["--resume"] + cfg + TINY + ["train.max_iter=5", "train.eval_period=100"], demo_datasets_root)
    iters = [m["iteration"] for m in _metrics(out) if "total_loss" in m]
    assert iters == [0, 1, 2, 3, 4]


def test_missing_dataset_root_is_one_clear_line(tmp_path):
    proc = _run(["--config-file", "configs/demo/pspnet_r18_demo.py", f"train.output_dir={tmp_path}/o"],
                tmp_path / "nowhere", check=False)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert "nowhere/cityscapes/leftImg8bit/train" in last and "prepare_cityscapes.py" in last
    assert "Traceback" not in proc.stderr
