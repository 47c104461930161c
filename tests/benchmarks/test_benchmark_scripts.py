"""Smoke tests of benchmarks/accuracy.py and benchmarks/cost.py: argument handling, the run plan, the
statistics, and one tiny (untimed-for-assertion) cost measurement. No assertion depends on speed."""
import argparse
import os
import sys

import pytest
import torch

from helpers import load_script

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load(name):
    return load_script(os.path.join(REPO, "benchmarks", f"{name}.py"), f"bench_{name}")


@pytest.fixture(scope="module")
def accuracy():
    return _load("accuracy")


@pytest.fixture(scope="module")
def cost():
    return _load("cost")


# ------------------------------------------------------------------------------------------ accuracy
def test_accuracy_rejects_unknown_method_and_repeated_seeds(accuracy):
    with pytest.raises(SystemExit):
        accuracy.main(["--methods", "student,fitnet_typo"])
    with pytest.raises(SystemExit):
        accuracy.main(["--seeds", "1,1,2"])


def _plan(accuracy, tmp_path, preset, methods, seeds=(7,), iters=120, teacher="/t/teacher.pth", opts=()):
    """{run name: train_net.py command} of a benchmark: tools/compare_methods.py's plan of the preset."""
    from compare_methods import State, plan_runs

    comparison = accuracy.benchmark_comparison(preset, methods, iters, teacher, opts)
    plan = plan_runs(comparison, list(seeds), str(tmp_path), State(str(tmp_path)), tag="accuracy")
    return {name: cmd for name, _, cmd, _ in plan}


def _config_of(cmd):
    """The run's config: the generated method config with the command's overrides applied."""
    from apd.config import load_config

    return load_config(cmd[cmd.index("--config-file") + 1],
                       [c for c in cmd[cmd.index("--overwrite") + 1:] if not c.startswith("model.teacher_weights")])


def test_accuracy_command_seeds_the_run_and_gives_the_teacher_only_to_distillers(accuracy, tmp_path):
    cmds = _plan(accuracy, tmp_path, "ablation", ["student", "apd", "apd_kd_w1"], opts=["train.device=cpu"])
    cmd = cmds["apd/seed7"]
    assert cmd[cmd.index("--config-file") + 1] == str(tmp_path / "configs" / "apd.py")  # apply_method(recipe, "apd")
    # the first distiller of the first seed also scores the teacher
    for item in ("train.seed=7", "train.max_iter=120", "train.eval_period=120", f"train.output_dir={tmp_path}/apd/seed7",
                 "model.teacher_weights=/t/teacher.pth", "train.eval_teacher=True"):
        assert item in cmd
    assert set(_config_of(cmd).model.loss_weights) == {"loss_apd", "loss_pa", "loss_adapt"}
    assert not any(c.startswith("model.teacher_weights") for c in cmds["student/seed7"])
    # an ablation is the official recipe's method with its overrides, after the benchmark-wide ones
    w1 = cmds["apd_kd_w1/seed7"]
    assert w1[w1.index("--config-file") + 1] == str(tmp_path / "configs" / "apd_kd.py")
    assert w1[-3:] == ["train.device=cpu", "model.loss_weights.loss_apd=1.0", "model.loss_weights.loss_pa=1.0"]
    assert "train.eval_teacher=False" in w1
    assert dict(_config_of(w1).model.loss_weights) == {"loss_kd": 10.0, "loss_apd": 1.0, "loss_pa": 1.0,
                                                       "loss_adapt": 1.0}
    scratch = _plan(accuracy, tmp_path / "s", "ablation", ["student_scratch"])["student_scratch/seed7"]
    assert _config_of(scratch).train.init_checkpoint == "" and "teacher" not in _config_of(scratch).model
    with pytest.raises(ValueError, match="method 'apd_kd_w1'"):  # a variant's override is checked before training
        accuracy.benchmark_comparison("ablation", ["apd_kd_w1"], 10, "/t.pth", ["apd_kd_w1:model.warmup_iter=3"])


def test_accuracy_presets_pair_every_method_on_the_same_schedule(accuracy):
    assert set(accuracy.CORE) == {"student", "kd", "cwd", "dist", "apd", "apd_kd", "apd_cwd", "apd_dist"}
    for name, preset in accuracy.PRESETS.items():
        assert len(preset["seeds"]) >= 5 and set(preset["methods"]) <= set(accuracy.method_names()), name
        assert "student" in preset["methods"], name
        # nothing method-specific in the preset-wide overrides: every method gets the same budget and data
        assert not any(o.startswith(("model.", "dataloader.train.total_batch_size")) for o in preset["opts"]), name


@pytest.mark.parametrize("config_dir", ["configs/demo/", "configs/demo/ade/"])
def test_accuracy_method_configs_are_the_committed_demo_configs(accuracy, tmp_path, config_dir):
    """Every method's generated config (the recipe with apd.methods.apply_method) equals its committed
    ``<config_dir><method>_demo.py`` in every key but the output folder (and a None ``adapter_optimizer`` where
    the committed config has none), so the benchmark trains what docs/BENCHMARKS.md measured; the student
    alone gets the ``student.``-prefixed stand-in, whose tensors load into it as the committed one's do."""
    from detectron2.config import LazyConfig, instantiate
    from omegaconf import OmegaConf

    from apd.checkpoint import AtomicCheckpointer

    committed = {"student": "pspnet_r18_demo.py", "kd": "kd_pspnet_r18_demo.py", "cwd": "cwd_pspnet_r18_demo.py",
                 "dist": "dist_pspnet_r18_demo.py", "apd": "apd_only_pspnet_r18_demo.py",
                 "apd_kd": "apd_pspnet_r18_demo.py", "apd_cwd": "apd_cwd_pspnet_r18_demo.py",
                 "apd_dist": "apd_dist_pspnet_r18_demo.py"}
    preset = "ade" if "ade" in config_dir else "cpu"
    cmds = _plan(accuracy, tmp_path, preset, accuracy.CORE, seeds=(1,))
    for method, name in committed.items():
        cmd = cmds[f"{method}/seed1"]
        generated = OmegaConf.to_container(LazyConfig.load(cmd[cmd.index("--config-file") + 1]))
        reference = OmegaConf.to_container(LazyConfig.load(os.path.join(REPO, config_dir, name)))
        for cfg in (generated, reference):
            cfg["train"].pop("output_dir")
            if cfg.get("adapter_optimizer", "absent") is None:
                cfg.pop("adapter_optimizer")
        if method == "student":
            init = generated["train"].pop("init_checkpoint")
            assert init == reference["train"].pop("init_checkpoint").replace(".pth", "_student.pth")
            model = instantiate(LazyConfig.load(os.path.join(REPO, config_dir, name)).model)
            AtomicCheckpointer(model).load(os.path.join(REPO, init))
            plain = torch.load(os.path.join(REPO, init.replace("_student.pth", ".pth")), weights_only=True)["model"]
            assert plain and all(torch.equal(model.state_dict()[k], v) for k, v in plain.items())
        assert generated == reference, method


def test_accuracy_gpu_preset_trains_the_same_wider_student_in_every_method(accuracy, tmp_path):
    """The GPU preset's student overrides reach the student of every method (``model.`` for the student alone,
    ``model.student.`` for distillers), and the APD adapters follow its width."""
    from detectron2.config import instantiate

    from apd.config import load_config

    cpu_student = load_config(accuracy.config_file(), []).model.student
    cmds = _plan(accuracy, tmp_path, "gpu", ["student", "kd", "apd_kd"], seeds=(1,), iters=600)
    students = {}
    for method in ("student", "kd", "apd_kd"):
        cfg = _config_of(cmds[f"{method}/seed1"])
        assert cfg.train.init_checkpoint == "checkpoints/demo/standin_r18_half.pth", method
        students[method] = cfg.model if method == "student" else cfg.model.student
        if method == "apd_kd":
            assert instantiate(cfg.model.distill_heads.apd).student_adapter[0].in_channels == 128
    assert students["student"] == students["kd"] == students["apd_kd"]
    assert students["student"] != cpu_student
    assert students["student"].backbone.base_channels == 32 and students["student"].sem_seg_head.channels == 128


def test_accuracy_ade_preset_runs_each_method_on_ade20k_format_data_with_its_own_checkpoints(accuracy, tmp_path):
    """The ``ade`` preset trains every method from configs/demo/ade's recipe: 150 classes, the ADE20K loader,
    the stand-ins of checkpoints/demo/ade; its report never overwrites the Cityscapes-format table's."""
    preset = accuracy.PRESETS["ade"]
    assert preset["methods"] == ["student", "kd", "cwd", "dist", "apd_kd", "apd_cwd"]
    cmds = _plan(accuracy, tmp_path, "ade", preset["methods"], seeds=(1,), iters=50)
    students = {}
    for method in preset["methods"]:
        cfg = _config_of(cmds[f"{method}/seed1"])
        assert cfg.dataloader.train.dataset.names == "ade20k_sem_seg_train", method
        assert cfg.dataloader.test.dataset.names == "ade20k_sem_seg_val", method
        assert cfg.train.init_checkpoint.startswith("checkpoints/demo/ade/standin_r18_quarter"), method
        students[method] = cfg.model if method == "student" else cfg.model.student
        if method != "student":
            assert cfg.model.teacher.sem_seg_head.num_classes == 150, method
        assert students[method].sem_seg_head.num_classes == 150, method
    assert all(s == students["student"] for s in students.values())
    assert preset["teacher"] == "checkpoints/demo/ade/teacher_pspnet_r18_half.pth"
    assert set(accuracy.report_names("ade")).isdisjoint(accuracy.report_names("cpu"))


def test_accuracy_summary_mean_std_paired_t_intervals_and_best_baseline(accuracy):
    results = {
        "student": {1: {"mIoU": 40.0, "pACC": 80.0}, 2: {"mIoU": 42.0, "pACC": 81.0}, 3: {"mIoU": 44.0, "pACC": 82.0}},
        "kd": {1: {"mIoU": 41.0, "pACC": 80.0}, 2: {"mIoU": 44.0, "pACC": 81.0}, 3: {"mIoU": 44.0, "pACC": 82.0}},
        "cwd": {1: {"mIoU": 45.0, "pACC": 80.0}, 2: {"mIoU": 46.0, "pACC": 81.0}, 3: {"mIoU": 47.0, "pACC": 82.0}},
        "apd_kd": {1: {"mIoU": 46.0, "pACC": 80.0}, 2: {"mIoU": 47.0, "pACC": 81.0}},  # seed 3 not finished
    }
    methods = ["student", "kd", "cwd", "apd_kd"]
    rows, best = accuracy.summarize(results, methods, [1, 2, 3])
    rows = {r["method"]: r for r in rows}
    assert best == "cwd"  # the best of KD / CWD / DIST by mean
    # student: mean 42, sample std sqrt(((-2)^2 + 0 + 2^2) / 2) = 2
    assert rows["student"]["mean"] == pytest.approx(42.0) and rows["student"]["std"] == pytest.approx(2.0)
    # kd - student per seed: +1, +2, 0 -> mean 1, std 1, 95% t-interval 1 ± t(0.975, 2) / sqrt(3) = 1 ± 2.4841
    d = rows["kd"]["vs_student"]
    assert (d["mean"], d["std"], d["wins"], d["n"]) == (pytest.approx(1.0), pytest.approx(1.0), 2, 3)
    assert d["lo"] == pytest.approx(1 - 4.302653 / 3 ** 0.5, abs=1e-4) and d["hi"] == pytest.approx(3.484, abs=1e-3)
    # cwd - student: +5, +4, +3 -> interval 4 ± 2.4841 excludes 0
    c = rows["cwd"]["vs_student"]
    assert c["lo"] > 0 and "vs_best" not in rows["cwd"]
    # apd_kd is paired only on the seeds it has: vs cwd +1, +1 -> std 0, interval [1, 1]
    a = rows["apd_kd"]["vs_best"]
    assert (a["n"], a["mean"], a["ref"]) == (2, pytest.approx(1.0), "cwd") and a["lo"] == pytest.approx(1.0)
    # what APD adds: apd_kd against kd on their shared seeds, +5, +3 -> mean 4, std sqrt(2)
    r = rows["apd_kd"]["vs_ref"]
    assert (r["ref"], r["n"], r["mean"], r["std"]) == ("kd", 2, pytest.approx(4.0), pytest.approx(2 ** 0.5))
    assert "vs_ref" not in rows["kd"] and set(accuracy.REFERENCE.values()) <= set(accuracy.method_names())
    table = accuracy.format_table(list(rows.values()), (60.0, 90.0), 300, [1, 2, 3], best)
    assert "vs kd: +4.00 [-8.71, +16.71] (2/2)" in table
    assert "42.00 ± 2.00" in table and "+1.00 [-1.48, +3.48] (2/3)" in table and "60.00" in table
    assert "**+4.00 [+1.52, +6.48] (3/3)**" in table and "Δ vs best baseline (CWD" in table


def test_accuracy_reuses_a_run_only_for_the_same_command(accuracy, tmp_path):
    import json

    from compare_methods import State

    cmd = _plan(accuracy, tmp_path, "cpu", ["kd"], seeds=(1,), iters=20)["kd/seed1"]
    out = tmp_path / "kd" / "seed1"
    out.mkdir(parents=True)
    (out / "metrics.json").write_text(json.dumps({"iteration": 19, "sem_seg/mIoU": 50.0, "sem_seg/pACC": 90.0}) + "\n")
    (out / "model_final.pth").write_bytes(b"")
    # finished, recorded with another interpreter and with the teacher scored: the same run, reused
    State(str(tmp_path)).set("kd/seed1", cmd=["/other/python"] + [c.replace("=True", "=False") for c in cmd[1:]],
                             status="done", wall_s=3.0)
    assert _plan(accuracy, tmp_path, "cpu", ["kd"], seeds=(1,), iters=20) == {}
    assert "kd/seed1" in _plan(accuracy, tmp_path, "cpu", ["kd"], seeds=(1,), iters=20, opts=["model.warmup_iters=5"])
    assert "kd/seed1" in _plan(accuracy, tmp_path, "cpu", ["kd"], seeds=(1,), iters=30)
    res = accuracy.collect(str(tmp_path), ["kd", "student"], [1, 2], 20, {})
    assert res == {"kd": {1: {"mIoU": 50.0, "pACC": 90.0, "iteration": 19, "step_s": None, "data_s": None,
                              "wall_s": 3.0}}}


def test_accuracy_presets_sharing_a_folder_keep_their_own_report(accuracy, tmp_path):
    """The cpu and ablation presets write to one folder; the ablation's report must not replace the core
    table's (it did: both wrote results.json)."""
    import json

    for method, miou in (("student", 30.0), ("kd", 31.0)):
        out = tmp_path / method / "seed1"
        out.mkdir(parents=True)
        (out / "metrics.json").write_text(json.dumps({"iteration": 19, "sem_seg/mIoU": miou}) + "\n")
    base = ["--output", str(tmp_path), "--seeds", "1", "--iters", "20", "--report-only"]
    accuracy.main(base + ["--methods", "student,kd"])
    accuracy.main(base + ["--preset", "ablation", "--methods", "student"])
    core = json.loads((tmp_path / "results.json").read_text())
    ablation = json.loads((tmp_path / "results_ablation.json").read_text())
    assert core["methods"] == ["student", "kd"] and core["preset"] == "cpu"
    assert core["runs"]["kd"]["1"]["mIoU"] == 31.0
    assert ablation["methods"] == ["student"] and ablation["preset"] == "ablation"
    assert "logit KD" in (tmp_path / "table.md").read_text()
    assert "logit KD" not in (tmp_path / "table_ablation.md").read_text()


# ---------------------------------------------------------------------------------------------- cost
def test_cost_rejects_unknown_pairs_and_items(cost):
    with pytest.raises(SystemExit):
        cost.main(["--configs", "pspnet,resnet9000"])
    with pytest.raises(SystemExit):
        cost.main(["--configs", "pspnet", "--items", "apd,warp_drive"])


def test_cost_synthetic_seg_batch_has_every_class_and_ignore(cost):
    from cost_parts.pairs import seg_batch  # benchmarks/cost_parts, on sys.path once cost.py is loaded

    batch = seg_batch(2, 40, 50, num_classes=19)
    assert len(batch) == 2 and batch[0]["image"].shape == (3, 40, 50) and batch[0]["image"].dtype == torch.uint8
    for x in batch:
        assert set(x["sem_seg"].unique().tolist()) == set(range(19)) | {255}
    assert not torch.equal(batch[0]["sem_seg"], batch[1]["sem_seg"])


def test_cost_ratios_are_medians_of_per_round_ratios(cost):
    res = {"times": {"floor": [1.0, 2.0, 4.0], "kd": [1.1, 2.2, 4.4], "apd": [1.5, 2.0, 8.0],
                     "apd_term": [0.1, 0.1, 0.1], "infer_student": [0.5], "infer_teacher": [2.0]},
           "memory": {"student": 1.0, "teacher_fwd": 1.0, "floor": 1.5, "apd": 2.1},
           "height": 8, "width": 8, "batch": 2, "device": "cpu", "threads": 1, "repeats": 3, "warmup": 0}
    d = cost.derived(res)
    # per-round apd/floor: 1.5, 1.0, 2.0 -> median 1.5
    assert d["APD step / floor"].startswith("1.500")
    assert d["inference images/s student / teacher"].endswith("4.00×")  # 2.0 / 0.5
    assert d["APD peak / (student peak + teacher-forward peak)"].startswith("1.050")  # 2.1 / (1 + 1)
    assert "| apd |" in cost.report_pair("pspnet", res)


def test_cost_tiny_measurement_runs_the_real_apd_step_with_a_no_grad_teacher(cost):
    args = argparse.Namespace(configs="demo", height=64, width=128, batch=2, device="cpu", warmup=0, repeats=1,
                              items="apd,apd_term", amp="off", profile="")
    out = cost.worker_time(args)
    assert set(out["times"]) == {"apd", "apd_term"}
    assert all(len(v) == 1 and v[0] > 0 for v in out["times"].values())
    check = out["teacher_check"]
    assert check["teacher_forward_calls"] == 1
    assert not check["grad_enabled_in_teacher_forward"] and not check["teacher_output_requires_grad"]
    assert check["teacher_params_with_grad"] == 0 and check["teacher_in_eval_mode"]
    assert out["profile"] is None


@pytest.mark.slow
def test_cost_amp_and_profile_run_the_trainer_amp_path(cost, monkeypatch):
    """--amp bf16 builds the DistillTrainer with autocast (CPU: bfloat16) and --profile returns an op table."""
    from apd.engine import distill_trainer

    seen = []
    original = distill_trainer.DistillTrainer.__init__

    def spy(self, *a, **kw):
        seen.append((kw.get("amp"), kw.get("amp_dtype")))
        original(self, *a, **kw)

    monkeypatch.setattr(distill_trainer.DistillTrainer, "__init__", spy)
    args = argparse.Namespace(configs="demo", height=64, width=128, batch=2, device="cpu", warmup=0, repeats=1,
                              items="apd,infer_student", amp="bf16", profile="apd")
    out = cost.worker_time(args)
    assert seen and all(s == (True, "bfloat16") for s in seen)
    assert "aten::" in out["profile"] and "profile of 'apd'" in out["profile"]


def test_loss_balance_gradients_norms_and_cosines_on_a_known_example():
    """Two linear losses on one parameter vector: gradients are their coefficient vectors exactly."""
    import torch

    sys.path.insert(0, "benchmarks")
    import loss_balance

    w = torch.nn.Parameter(torch.zeros(3))
    unused = torch.nn.Parameter(torch.zeros(2))
    a, b = torch.tensor([3.0, 4.0, 0.0]), torch.tensor([0.0, 0.0, 2.0])
    losses = {"loss_sem_seg": (w * a).sum() + 1.0, "loss_pa": (w * b).sum(), "loss_aux": (w * -a).sum() * 0.5}
    grads = loss_balance.term_gradients(losses, [w, unused])
    assert torch.equal(grads["loss_sem_seg"], torch.cat([a, torch.zeros(2)]))
    assert torch.allclose(grads["task (sem_seg + aux)"], torch.cat([a * 0.5, torch.zeros(2)]))
    rows = loss_balance.balance_rows([({"loss_sem_seg": 1.0, "loss_pa": 0.0, "loss_aux": 0.0}, grads)])
    assert rows["loss_sem_seg"]["norm"] == pytest.approx(5.0) and rows["loss_pa"]["norm"] == pytest.approx(2.0)
    assert rows["loss_pa"]["cos_task"] == pytest.approx(0.0) and rows["loss_aux"]["cos_task"] == pytest.approx(-1.0)
    assert rows["loss_sem_seg"]["share"] == pytest.approx(5.0 / (5.0 + 2.0 + 2.5))


def test_cost_variant_keys_ratios_and_inference_split_report(cost):
    res = {"times": {"floor": [1.0, 2.0], "apd": [1.2, 2.2], "floor@compiled": [1.0, 2.0], "apd@compiled": [1.5, 2.4],
                     "kd_term": [0.1, 0.2], "kd_term@compiled": [0.2, 0.3], "pre_student": [0.1], "net_student": [1.0],
                     "post_student": [0.4], "infer_student": [1.6], "net_teacher": [4.0], "infer_teacher": [4.8]},
           "variants": ["default", "compiled"], "memory_inline": {"apd": 2 * 2**30, "apd@compiled": 3 * 2**30},
           "height": 8, "width": 8, "batch": 2, "device": "cpu", "threads": 1, "repeats": 2, "warmup": 0}
    d = cost.derived(res)
    assert d["APD step / floor"].startswith("1.150") and d["APD step / floor [compiled]"].startswith("1.350")
    assert d["kd_term: compiled / default (per round)"].startswith("1.750")  # median of 2.0, 1.5
    assert d["inference images/s student / teacher, network alone"].endswith("4.00×")
    assert d["inference images/s student / teacher"].endswith("3.00×")  # 4.8 / 1.6
    assert "(pre + post = 31.2% of the whole call)" in d["inference split student: pre / net / post / whole"]
    table = cost.report_pair("pspnet", res)
    assert "| apd@compiled | 1,950 ms | 1,500–2,400 | 1.350 | 3.00 GiB |" in table
    with pytest.raises(SystemExit):
        cost.main(["--configs", "demo", "--variants", "warp"])


@pytest.mark.slow
def test_compiled_variant_is_its_own_bench_and_patches_nothing_else(cost):
    from cost_parts.steps import Bench

    plain = Bench("demo", 64, 128, 2, "cpu")
    compiled = Bench("demo", 64, 128, 2, "cpu", compiled=True, compile_backend="eager")
    assert "forward" in vars(compiled.student.backbone) and "forward" in vars(compiled.apd.distill_heads["kd"])
    assert not any("forward" in vars(m) or "layers" in vars(m) for m in plain.apd.modules())
    assert plain.student is not compiled.student


@pytest.mark.slow
def test_cost_variants_and_inference_split_run_and_are_reported(cost):
    args = argparse.Namespace(configs="demo", height=64, width=128, batch=2, device="cpu", warmup=0, repeats=1,
                              items="teacher_fwd,kd_term,pre_student,net_student,post_student,infer_student",
                              amp="off", profile="kd_term@compiled", variants="default,compiled",
                              compile_backend="eager")
    out = cost.worker_time(args)
    student = ("kd_term", "pre_student", "net_student", "post_student", "infer_student")
    assert set(out["times"]) == {"teacher_fwd", *student, *(f"{i}@compiled" for i in student)}  # not the teacher
    assert "profile of 'kd_term@compiled'" in out["profile"]
    res = dict(out, height=64, width=128, batch=2, device="cpu", repeats=1, warmup=0)
    d = cost.derived(res)
    assert "kd_term: compiled / default (per round)" in d
    assert "inference split student: pre / net / post / whole" in d
    assert "| kd_term@compiled |" in cost.report_pair("demo", res)
    with pytest.raises(SystemExit):
        cost.main(["--configs", "demo", "--variants", "warp"])
