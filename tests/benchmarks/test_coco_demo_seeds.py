"""benchmarks/coco_demo_seeds.py: the paired statistics of its table and its runs as tools/compare_methods.py
plans them (no training)."""
import os
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import coco_demo_seeds

    return coco_demo_seeds


def test_table_pairs_each_method_with_the_student_and_kd_seed_by_seed(bench):
    results = {
        "student": {1: {"bbox/AP": 10.0, "segm/AP": 8.0}, 2: {"bbox/AP": 12.0, "segm/AP": 9.0}},
        "apd": {1: {"bbox/AP": 11.0, "segm/AP": 8.0}, 2: {"bbox/AP": 12.5, "segm/AP": 8.5}},
        "kd": {1: {"bbox/AP": 9.0, "segm/AP": 7.0}},  # one seed finished: no interval, paired on seed 1 only
    }
    table = bench.summarise(results, ["student", "apd", "kd"], [1, 2])
    box, mask = table.split("mask AP")
    # differences 1.0, 0.5: mean 0.75, sd 0.354, t_{0.975,1} = 12.706 → half-width 3.18
    assert "| + dense APD + KD | 2 | 11.75 ± 1.06 | 11.00, 12.50 | +0.75 [-2.43, +3.93] (2/2) | +2.00 (1/1) | — |" in box
    assert "| + logit KD on the ROI scores | 1 | 9.00 | 9.00 | -1.00 (0/1) | — | — |" in box
    assert "| Student alone | 2 | 11.00 ± 1.41 | 10.00, 12.00 | — | +1.00 (1/1) | — |" in box
    assert "| + dense APD + KD | 2 | 8.25 ± 0.35 | 8.00, 8.50 | -0.25 [" in mask


def test_an_interval_that_excludes_zero_is_marked(bench):
    results = {"student": {s: {"bbox/AP": 10.0, "segm/AP": 8.0} for s in (1, 2, 3)},
               "apd": {s: {"bbox/AP": 11.0 + 0.1 * s, "segm/AP": 8.0} for s in (1, 2, 3)},
               "fpnmimic": {s: {"bbox/AP": 11.0, "segm/AP": 8.0} for s in (1, 2, 3)}}
    box = bench.summarise(results, ["student", "apd", "fpnmimic"], [1, 2, 3]).split("mask AP")[0]
    # vs the student: +1.1, +1.2, +1.3; vs FPN imitation: +0.1, +0.2, +0.3 (t_{0.975,2} · 0.1 / √3 = 0.25)
    assert "| **+1.20 [+0.95, +1.45] (3/3)** | — | +0.20 [-0.05, +0.45] (3/3) |" in box


def test_each_method_is_the_committed_demo_config_turned_into_it_by_the_tool(bench, tmp_path):
    """The benchmark's runs are tools/compare_methods.py's plan of the dense APD + KD demo config: each
    method's config equals its committed demo config in every key but the output folder (the student alone:
    its optimiser's parameter groups are built by another function and come out the same), and the ROI
    ablation is the registry's ROI APD + KD with the demo's 256-d adapters."""
    from compare_methods import State, load_comparison, plan_runs
    from detectron2.config import LazyConfig, instantiate
    from omegaconf import OmegaConf

    from apd.config import load_config

    methods = list(bench.METHODS)
    comparison = load_comparison(os.path.join(REPO, bench.CONFIG), *bench.tool_arguments(methods, 600, "/t.pth"))
    cmds = {name: cmd for name, _, cmd, _ in plan_runs(comparison, [1], str(tmp_path), State(str(tmp_path)))}
    assert list(cmds) == [f"{m}/seed1" for m in methods]
    committed = {"student": "mask_rcnn_R_18_FPN_demo.py", "kd": "kd_mask_rcnn_R34_to_R18_FPN_demo.py",
                 "fpnmimic": "fpnmimic_mask_rcnn_R34_to_R18_FPN_demo.py",
                 "apd_only": "apd_only_mask_rcnn_R34_to_R18_FPN_demo.py", "apd": "apd_mask_rcnn_R34_to_R18_FPN_demo.py"}
    for name, file in committed.items():
        cmd = cmds[f"{name}/seed1"]
        assert "train.max_iter=600" in cmd and ("model.teacher_weights=/t.pth" in cmd) == (name != "student")
        configs = [LazyConfig.load(cmd[cmd.index("--config-file") + 1]),
                   LazyConfig.load(os.path.join(REPO, "configs/COCO-InstanceSegmentation", file))]
        if name == "student":
            model, groups = instantiate(configs[0].model), []
            for cfg in configs:
                cfg.optimizer.params.model = model
                groups.append([(g.get("lr", cfg.optimizer.lr), g.get("weight_decay", cfg.optimizer.weight_decay),
                                [id(p) for p in g["params"]]) for g in instantiate(cfg.optimizer.params)])
                del cfg["optimizer"]
            assert groups[0] and groups[0] == groups[1]
        generated, reference = (OmegaConf.to_container(cfg) for cfg in configs)
        for cfg in (generated, reference):
            cfg["train"].pop("output_dir")
            if cfg.get("adapter_optimizer", "absent") is None:
                cfg.pop("adapter_optimizer")
        assert generated == reference, name
    roi = load_config(cmds["roiapd/seed1"][cmds["roiapd/seed1"].index("--config-file") + 1],
                      [c for c in cmds["roiapd/seed1"] if c.startswith("model.distill_heads")] +
                      ["model.teacher_weights=None"])
    assert set(roi.model.distill_heads) == {"kd", "roi_apd"}
    assert roi.model.distill_heads.roi_apd.hidden_dim == roi.model.distill_heads.roi_apd.embed_dim == 256
    assert dict(roi.model.loss_weights) == {"loss_kd": 10.0, "loss_roi_apd": 1.0, "loss_roi_pa": 1.0,
                                            "loss_roi_adapt": 1.0}
    adapter = instantiate(roi.model).distill_heads["roi_apd"].student_adapter
    assert adapter[0].out_features == 256, adapter
