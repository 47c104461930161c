"""tools/compare_methods.py: methods from the registry (apd.methods) applied to a user's distillation config,
paired seeds through plain train_net.py runs, resume after an interruption, and the table's statistics."""
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from detectron2.config import LazyConfig, instantiate

from apd.methods import apply_method, config_task, method_names
from helpers import script_env

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("compare_methods", os.path.join(REPO, "tools", "compare_methods.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------------- statistics
def test_paired_interval_matches_the_hand_computation(tool):
    # differences 1, 2, 4: mean 7/3, s² = ((4/3)² + (1/3)² + (5/3)²) / 2 = 7/3, t(0.975, 2) = 4.302652729749464
    d = tool.paired([1.0, 2.0, 4.0])
    mean, s = 7 / 3, math.sqrt(7 / 3)
    half = 4.302652729749464 * s / math.sqrt(3)
    assert d["mean"] == pytest.approx(mean) and d["std"] == pytest.approx(s)
    assert (d["lo"], d["hi"]) == (pytest.approx(mean - half), pytest.approx(mean + half))
    assert (d["wins"], d["n"]) == (3, 3)
    assert tool.format_diff(d) == "+2.33 [-1.46, +6.13] (3/3)"  # contains 0: not bold
    # 1, 1.2, 0.9: mean 1.033, s = 0.1528, half-width 4.3027·0.1528/√3 = 0.38: the interval excludes 0
    assert tool.format_diff(tool.paired([1.0, 1.2, 0.9])) == "**+1.03 [+0.65, +1.41] (3/3)**"


def test_summary_pairs_seeds_and_the_table_shows_mean_std_and_delta(tool):
    scores = {"student": {1: {"sem_seg/mIoU": 30.0}, 2: {"sem_seg/mIoU": 32.0}, 3: {"sem_seg/mIoU": 31.0}},
              "kd": {1: {"sem_seg/mIoU": 31.0}, 2: {"sem_seg/mIoU": 34.0}, 3: {"sem_seg/mIoU": 35.0}}}
    metrics = [("sem_seg/mIoU", "mIoU")]
    rows = tool.summarize(scores, ["student", "kd"], [1, 2, 3], metrics, ["student"])
    kd = rows[1]["metrics"]["sem_seg/mIoU"]
    # kd: 31, 34, 35 → s² = ((7/3)² + (2/3)² + (5/3)²) / 2 = 13/3
    assert kd["mean"] == pytest.approx(100 / 3) and kd["std"] == pytest.approx(math.sqrt(13 / 3))
    assert kd["vs_student"]["mean"] == pytest.approx(7 / 3)  # differences 1, 2, 4 as above
    table = tool.format_table(rows, {"kd": "+ KD"}, [1, 2, 3], metrics, ["student"])
    assert "| + KD | 33.33 ± 2.08 | 31.00 | 34.00 | 35.00 | +2.33 [-1.46, +6.13] (3/3) |" in table
    assert "| student | 31.00 ± 1.00 | 30.00 | 32.00 | 31.00 | — |" in table


def test_seeds_parse_as_ranges_and_lists(tool):
    assert tool.parse_seeds("1-5") == [1, 2, 3, 4, 5]
    assert tool.parse_seeds("1-3,9") == [1, 2, 3, 9]
    for bad in ("", "1,1", "a"):
        with pytest.raises(ValueError):
            tool.parse_seeds(bad)


# ----------------------------------------------------------------------------------------------- methods
def test_methods_replace_terms_and_weights_and_keep_the_configs_own_term_nodes():
    cfg = LazyConfig.load(os.path.join(REPO, "configs/demo/apd_pspnet_r18_demo.py"))
    assert config_task(cfg) == "sem_seg" and {"student", "kd", "cwd", "pkd", "apd_kd"} <= set(method_names("sem_seg"))
    assert {"student", "kd", "fpn_mimic", "pkd", "apd_kd"} <= set(method_names("rcnn"))
    cwd = apply_method(LazyConfig.load(os.path.join(REPO, "configs/demo/apd_pspnet_r18_demo.py")), "cwd")
    assert set(cwd.model.distill_heads) == {"cwd"} and dict(cwd.model.loss_weights) == {"loss_cwd": 3.0}
    assert cwd.adapter_optimizer is None
    apd_kd = apply_method(LazyConfig.load(os.path.join(REPO, "configs/demo/kd_pspnet_r18_demo.py")), "apd_kd")
    assert apd_kd.adapter_optimizer is not None  # added for APD's teacher adapter
    assert dict(apd_kd.model.loss_weights) == {"loss_kd": 10.0, "loss_apd": 10.0, "loss_pa": 10.0, "loss_adapt": 1.0}
    kept = apply_method(cfg, "apd_kd")
    assert kept.model.distill_heads.apd.hidden_dim == 64  # the demo's narrow APD adapters, not the registry's 512
    student = apply_method(LazyConfig.load(os.path.join(REPO, "configs/demo/apd_pspnet_r18_demo.py")), "student")
    assert student.model.backbone.stem_width == 16 and "teacher" not in student.model
    rcnn = LazyConfig.load(os.path.join(REPO, "configs/COCO-InstanceSegmentation/apd_mask_rcnn_R34_to_R18_FPN_demo.py"))
    assert config_task(rcnn) == "rcnn"
    mimic = apply_method(rcnn, "fpn_mimic")
    assert set(mimic.model.distill_heads) == {"fpn_mimic"} and mimic.adapter_optimizer is None
    with pytest.raises(KeyError, match="No method 'cwd' for rcnn configs"):
        apply_method(LazyConfig.load(os.path.join(REPO, "configs/COCO-InstanceSegmentation/"
                                                  "apd_mask_rcnn_R34_to_R18_FPN_demo.py")), "cwd")


def test_a_method_is_checked_against_its_terms_protocol_when_registered():
    from detectron2.config import LazyCall as L

    from apd.methods import Method, needs_second_optimizer, register_method
    from apd.modeling.distill import APDHead, CWDHead, LogitKDHead

    with pytest.raises(ValueError, match=r"term 'cwd' \(CWDHead\) reads \['head_outputs'\], which a rcnn distiller"):
        register_method(Method("seg_on_rcnn", "rcnn", "x", lambda: {"cwd": L(CWDHead)()}, {"loss_cwd": 1.0}))
    with pytest.raises(ValueError, match=r"loss weights \['loss_cwd'\] name no key its terms declare"):
        register_method(Method("typo", "sem_seg", "x", lambda: {"kd": L(LogitKDHead)()}, {"loss_cwd": 1.0}))
    with pytest.raises(ValueError, match="already registered"):
        register_method(Method("kd", "sem_seg", "x", lambda: {"kd": L(LogitKDHead)()}, {"loss_kd": 1.0}))
    assert needs_second_optimizer({"apd": L(APDHead)()}) and not needs_second_optimizer({"kd": L(LogitKDHead)()})


def test_a_method_config_builds_and_its_distiller_computes_the_methods_losses():
    cfg = apply_method(LazyConfig.load(os.path.join(REPO, "configs/demo/apd_pspnet_r18_demo.py")), "dist")
    cfg.model.teacher_weights = None
    model = instantiate(cfg.model)
    model.teacher_loaded = True  # a random teacher is enough to see which terms run
    model.train()
    batch = [{"image": torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8),
              "sem_seg": torch.randint(0, 19, (64, 64))} for _ in range(2)]
    losses = model(batch)
    assert "loss_dist" in losses and "loss_kd" not in losses and "loss_apd" not in losses


def test_student_runs_get_the_students_keys_without_teacher_or_term_keys(tool):
    opts = ["model.student.backbone.stem_width=8", "model.teacher.backbone.depth=18", "model.teacher_weights=t.pth",
            "model.distill_heads.apd.hidden_dim=8", "model.loss_weights.loss_kd=1", "train.max_iter=2"]
    assert tool.method_overrides("student", opts) == ["model.backbone.stem_width=8", "train.max_iter=2"]
    assert tool.method_overrides("kd", opts) == opts


def test_variants_and_per_method_overrides_are_parsed_and_checked_before_training(tool):
    specs, common = tool.parse_methods("student,kd,kd_warm=kd,scratch=student",
                                       ["train.max_iter=4", "kd_warm:model.warmup_iters=2",
                                        "scratch:train.init_checkpoint=", "model.teacher_weights=a:b.pth"], "sem_seg")
    by = {s.name: s for s in specs}
    assert [s.name for s in specs] == ["student", "kd", "kd_warm", "scratch"]
    assert (by["kd_warm"].method, by["kd_warm"].overrides) == ("kd", ["model.warmup_iters=2"])
    assert by["kd_warm"].label == "+ logit KD (w 10, T 1); model.warmup_iters=2" and by["kd"].overrides == []
    assert common == ["train.max_iter=4", "model.teacher_weights=a:b.pth"]  # a ':' in a value is no method name
    for text, opts, error in (("kd,kd", [], "appears twice"), ("x=fitnet", [], "unknown method 'fitnet'"),
                              ("kd", ["apd:model.warmup_iters=2"], "names 'apd', which is not in --methods")):
        with pytest.raises(ValueError, match=error):
            tool.parse_methods(text, opts, "sem_seg")
    config = os.path.join(REPO, "configs/demo/apd_pspnet_r18_demo.py")
    comparison = tool.load_comparison(config, "student,kd_warm=kd,scratch=student",
                                      ["model.student.backbone.stem_width=8", "kd_warm:model.warmup_iters=2",
                                       "scratch:train.init_checkpoint="])
    by = {s.name: s for s in comparison.specs}
    # the student alone gets the student's keys as a plain model spells them, then its own overrides
    assert comparison.run_opts(by["scratch"]) == ["model.backbone.stem_width=8", "train.init_checkpoint="]
    assert comparison.run_opts(by["kd_warm"]) == ["model.student.backbone.stem_width=8", "model.warmup_iters=2"]
    with pytest.raises(ValueError, match="method 'kd_warm'"):  # a typo stops the comparison before any run
        tool.load_comparison(config, "kd_warm=kd", ["kd_warm:model.warmup_iter=2"])


def _finished(out, iteration, scores):
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps({"iteration": iteration, **scores}) + "\n")
    (out / "model_final.pth").write_bytes(b"")


def test_rcnn_configs_are_scored_on_box_ap_and_mask_ap_and_finished_runs_are_reused(tool, tmp_path):
    """The R-CNN path without training: Faster R-CNN is scored on box AP, Mask R-CNN on box and mask AP; the
    plan reuses finished runs of the same command, continues a run cut short and trains the rest; the report
    pairs the seeds."""
    faster = tool.load_comparison(
        os.path.join(REPO, "configs/COCO-Detection/apd_faster_rcnn_R101_to_R18_FPN_1x_demo.py"), "student,apd_kd",
        ["train.max_iter=4"])
    assert faster.task == "rcnn" and faster.metrics == [("bbox/AP", "box AP")] and faster.max_iter == 4
    mask = tool.load_comparison(
        os.path.join(REPO, "configs/COCO-InstanceSegmentation/apd_mask_rcnn_R34_to_R18_FPN_demo.py"), "student,kd",
        ["train.max_iter=4", "model.teacher_weights=/t.pth"])
    assert mask.metrics == [("bbox/AP", "box AP"), ("segm/AP", "mask AP")]
    state = tool.State(str(tmp_path))
    first = {name: (cmd, resume) for name, _, cmd, resume in tool.plan_runs(mask, [1, 2], str(tmp_path), state)}
    assert list(first) == ["student/seed1", "kd/seed1", "student/seed2", "kd/seed2"]  # seed-major: pairs first
    assert not any(c.startswith("model.teacher_weights") for c in first["student/seed1"][0])
    assert "train.eval_teacher=True" in first["kd/seed1"][0] and "train.eval_teacher=False" in first["kd/seed2"][0]
    values = {("student", 1): (10.0, 8.0), ("kd", 1): (11.0, 8.5), ("student", 2): (12.0, 9.0), ("kd", 2): (12.5, 9.0)}
    for (method, seed), (box, segm) in values.items():
        if (method, seed) != ("kd", 2):
            _finished(tmp_path / method / f"seed{seed}", 3, {"bbox/AP": box, "segm/AP": segm})
        state.set(f"{method}/seed{seed}", cmd=first[f"{method}/seed{seed}"][0], status="done")
    (tmp_path / "kd" / "seed2").mkdir(parents=True)
    (tmp_path / "kd" / "seed2" / "last_checkpoint").write_text("model_0000001.pth")
    second = tool.plan_runs(mask, [1, 2], str(tmp_path), state)
    assert [(name, resume, "--resume" in cmd) for name, _, cmd, resume in second] == [("kd/seed2", True, True)]
    # another schedule is another run: nothing reused
    longer = tool.load_comparison(mask.config_file, "student,kd", ["train.max_iter=6", "model.teacher_weights=/t.pth"])
    assert len(tool.plan_runs(longer, [1, 2], str(tmp_path), state)) == 4
    _finished(tmp_path / "kd" / "seed2", 3, {"bbox/AP": 12.5, "segm/AP": 9.0})
    rows = {r["method"]: r for r in tool.write_report(str(tmp_path), mask, [1, 2], ["student"], [], quiet=True)}
    box = rows["kd"]["metrics"]["bbox/AP"]["vs_student"]  # +1.0, +0.5
    assert (box["mean"], box["wins"], box["n"]) == (pytest.approx(0.75), 2, 2)
    assert rows["kd"]["metrics"]["segm/AP"]["vs_student"]["mean"] == pytest.approx(0.25)  # +0.5, 0
    table = (tmp_path / "table.md").read_text()
    assert "box AP mean ± std" in table and "mask AP mean ± std" in table
    assert "| + logit KD (ROI scores) | 11.75 ± 1.06 | 11.00 | 12.50 | +0.75 [-2.43, +3.93] (2/2) |" in table


# ---------------------------------------------------------------------------------------- end to end
def _own_data(root):
    import numpy as np
    from PIL import Image

    for split, n in (("train", 4), ("val", 2)):
        for kind in ("images", "labels"):
            os.makedirs(root / kind / split)
        for i in range(n):
            label = np.zeros((32, 48), np.uint8)
            label[10 + i:, :] = 1
            Image.fromarray((np.stack([label * 120] * 3, -1) + 40).astype(np.uint8)).save(
                root / "images" / split / f"{i}.png")
            Image.fromarray(label).save(root / "labels" / split / f"{i}.png")
    return [f"dataloader.train.dataset.image_root={root}/images/train",
            f"dataloader.train.dataset.sem_seg_root={root}/labels/train",
            f"dataloader.test.dataset.image_root={root}/images/val",
            f"dataloader.test.dataset.sem_seg_root={root}/labels/val",
            "dataloader.train.dataset.classes=[ground,sky]", "dataloader.train.dataset.image_ext=.png"]


def _interrupt_after_the_first_run(cmd, env, out):
    """Start the comparison ``cmd``, kill it (the whole process group) once a run has finished, and return
    the names of the finished runs (``runs.json``): at least one, not all four."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    state = out / "runs.json"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and any(r.get("status") == "done" for r in json.loads(state.read_text()).values()):
            break
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = [k for k, r in json.loads(state.read_text()).items() if r.get("status") == "done"]
    assert done and len(done) < 4
    return done


def _interrupted_then_rerun(cmd, env, out):
    """Interrupt ``cmd`` after its first finished run (:func:`_interrupt_after_the_first_run`), run it again
    to the end, check that the second call reused every finished run and trained only the rest, and return
    its CompletedProcess."""
    done = _interrupt_after_the_first_run(cmd, env, out)
    second = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    for name in done:
        assert f"[compare] {name}: finished, reused" in second.stdout
    assert f"[compare] {4 - len(done)} of 4 runs to train" in second.stdout
    return second


TINY_OWN = [
    "model.student.backbone.stem_width=8", "model.student.backbone.base_channels=8",
    "model.student.sem_seg_head.channels=16", "model.student.sem_seg_head.aux_channels=8",
    "model.teacher.backbone.depth=18", "model.teacher.backbone.stem_width=8", "model.teacher.backbone.base_channels=8",
    "model.teacher.sem_seg_head.channels=16", "model.teacher.sem_seg_head.aux_channels=8",
    "model.sliding_window=null", "train.init_checkpoint=", "dataloader.train.total_batch_size=2",
    "dataloader.train.mapper.augmentations.crop_size=[32,32]", "dataloader.train.num_workers=0",
    "dataloader.test.num_workers=0", "train.max_iter=2", "train.eval_period=2", "train.checkpointer.period=1",
    "train.log_period=1",
]


@pytest.mark.slow
def test_two_methods_two_seeds_resume_after_an_interruption_and_write_the_table(tmp_path, tool):
    from apd.config import load_config

    opts = _own_data(tmp_path / "data") + TINY_OWN
    cfg = load_config(os.path.join(REPO, "configs/own/apd_pspnet_r18.py"), opts)
    torch.manual_seed(0)
    torch.save({"model": instantiate(cfg.model.teacher).state_dict()}, tmp_path / "teacher.pth")
    opts.append(f"model.teacher_weights={tmp_path / 'teacher.pth'}")
    out = tmp_path / "compare"
    cmd = [sys.executable, "tools/compare_methods.py", "--config-file", "configs/own/apd_pspnet_r18.py",
           "--methods", "student,kd", "--seeds", "1-2", "--output", str(out), "--threads", "1", *opts]
    env = script_env(None, threads=1)

    second = _interrupted_then_rerun(cmd, env, out)
    assert "ETA" in second.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["runs_finished"] == 4 and results["methods"] == ["student", "kd"]
    miou = {m: {int(s): v["sem_seg/mIoU"] for s, v in r.items()} for m, r in results["scores"].items()}
    kd = next(r for r in results["summary"] if r["method"] == "kd")["metrics"]["sem_seg/mIoU"]
    diffs = [miou["kd"][s] - miou["student"][s] for s in (1, 2)]
    assert kd["vs_student"]["mean"] == pytest.approx(sum(diffs) / 2)
    half = 12.706204736174707 * abs(diffs[0] - diffs[1]) / math.sqrt(2) / math.sqrt(2)  # t(0.975, 1)·s/√n
    assert kd["vs_student"]["hi"] - kd["vs_student"]["mean"] == pytest.approx(half, abs=1e-9)
    table = (out / "table.md").read_text()
    assert "| Student alone (no distillation) |" in table and "| + logit KD (w 10, T 1) |" in table
    # the runs are plain train_net.py runs of the generated configs: the student run has no teacher
    student_cfg = LazyConfig.load(str(out / "student" / "seed1" / "config.yaml"))
    assert "teacher" not in student_cfg.model and student_cfg.train.seed == 1
    kd_cfg = LazyConfig.load(str(out / "kd" / "seed2" / "config.yaml"))
    assert set(kd_cfg.model.distill_heads) == {"kd"} and kd_cfg.train.seed == 2


@pytest.mark.slow
def test_an_rcnn_config_is_compared_on_box_and_mask_ap_over_paired_seeds_and_resumes(tmp_path, demo_datasets_root):
    """Mask R-CNN R34 → R18 demo on the generated COCO-format set (3 train / 2 val images): student and KD,
    seeds 1 and 2, 2 iterations each, interrupted after the first run and run again."""
    config = "configs/COCO-InstanceSegmentation/apd_mask_rcnn_R34_to_R18_FPN_demo.py"
    cfg = LazyConfig.load(os.path.join(REPO, config))
    torch.manual_seed(0)
    torch.save({"model": instantiate(cfg.model.teacher).state_dict()}, tmp_path / "teacher.pth")
    out = tmp_path / "compare"
    small = ["dataloader.train.mapper.augmentations.0.short_edge_length=[96]",
             "dataloader.train.mapper.augmentations.0.max_size=160",
             "dataloader.test.mapper.augmentations.0.short_edge_length=96",
             "dataloader.test.mapper.augmentations.0.max_size=160", "dataloader.train.num_workers=0",
             "dataloader.test.num_workers=0", "train.max_iter=2", "train.eval_period=2", "train.checkpointer.period=2"]
    cmd = [sys.executable, "tools/compare_methods.py", "--config-file", config, "--methods", "student,kd",
           "--seeds", "1,2", "--output", str(out), "--threads", "1",
           f"model.teacher_weights={tmp_path / 'teacher.pth'}", *small]
    env = script_env(demo_datasets_root, threads=1)
    second = _interrupted_then_rerun(cmd, env, out)
    results = json.loads((out / "results.json").read_text())
    assert results["metrics"] == ["bbox/AP", "segm/AP"] and results["runs_finished"] == 4
    kd = next(r for r in results["summary"] if r["method"] == "kd")["metrics"]
    for key in ("bbox/AP", "segm/AP"):
        values = {m: {int(s): v[key] for s, v in r.items()} for m, r in results["scores"].items()}
        diffs = [values["kd"][s] - values["student"][s] for s in (1, 2)]
        assert kd[key]["vs_student"]["n"] == 2 and kd[key]["vs_student"]["mean"] == pytest.approx(sum(diffs) / 2)
    table = (out / "table.md").read_text()
    assert "box AP mean ± std" in table and "mask AP mean ± std" in table and "box AP Δ vs student" in table
    assert "| + logit KD (ROI scores) |" in table
