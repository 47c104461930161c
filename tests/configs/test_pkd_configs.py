"""The PKD configs (segmentation and R-CNN, real recipes and demos): they hold the intended terms, build, and
the demos train end to end through ``train_net.py`` on generated data."""
import json
import os

import pytest
import torch
from detectron2.config import LazyConfig, instantiate

from apd.config import check_config
from apd.modeling.distill.pkd_terms import FPNPKDHead, PKDHead
from helpers import TINY_TRAIN_OVERRIDES, run_script

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SEG_DEMO = "configs/demo/pkd_pspnet_r18_demo.py"
RCNN_DEMO = "configs/COCO-InstanceSegmentation/pkd_mask_rcnn_R34_to_R18_FPN_demo.py"
# config → (term class, loss weight, (student, teacher) channels, whether there is an adapter)
CONFIGS = {
    "configs/pkd_pspnet_r18.py": (PKDHead, 6.0, (512, 512)),
    SEG_DEMO: (PKDHead, 6.0, (64, 128)),
    "configs/COCO-Detection/pkd_faster_rcnn_R101_to_R50_FPN_1x.py": (FPNPKDHead, 24.0, (256, 256)),
    "configs/COCO-InstanceSegmentation/pkd_mask_rcnn_R101_to_R50_FPN_1x.py": (FPNPKDHead, 24.0, (256, 256)),
    RCNN_DEMO: (FPNPKDHead, 24.0, (64, 128)),
}


@pytest.mark.parametrize("path", sorted(CONFIGS), ids=os.path.basename)
def test_config_builds_its_pkd_term_and_the_student_optimiser_trains_the_adapter(path):
    term_cls, weight, (c_s, c_t) = CONFIGS[path]
    cfg = LazyConfig.load(path)
    check_config(cfg)
    assert cfg.get("adapter_optimizer") is None  # no teacher-side adapter
    assert dict(cfg.model.loss_weights) == {"loss_pkd": weight}
    cfg.model.teacher_weights = None
    with torch.device("meta"):  # real modules without paying for their initialisation
        model = instantiate(cfg.model)
    assert set(model.distill_heads) == {"pkd"}
    term = model.distill_heads["pkd"]
    assert type(term) is term_cls and (term.student_channels, term.teacher_channels) == (c_s, c_t)
    assert term.scope == "image"
    if term_cls is FPNPKDHead:  # mmrazor's Faster R-CNN recipe: p2–p5, 6 per level summed = 24 on the mean
        assert term.levels == ("p2", "p3", "p4", "p5")
        assert model.student.roi_heads.mask_on == ("mask_rcnn" in path) == model.teacher.roi_heads.mask_on
    # PKD's own setting (equal widths) has nothing to train; otherwise a 1×1 adapter the student's SGD steps.
    assert (term.adapter is None) == (c_s == c_t)
    cfg.optimizer.params.model = model
    stepped = {id(p) for g in instantiate(cfg.optimizer).param_groups for p in g["params"]}
    assert {id(p) for p in term.parameters()} <= stepped
    assert stepped == {id(p) for p in model.parameters() if p.requires_grad}


def _metrics(out):
    with open(os.path.join(out, "metrics.json")) as f:
        return [json.loads(line) for line in f if line.strip()]


def _train(config, teacher_file, out, root, extra):
    run_script("train_net.py", ["--config-file", config, f"model.teacher_weights={teacher_file}",
                                f"train.output_dir={out}", "train.max_iter=2", "train.eval_teacher=False",
                                "train.eval_period=1000", "train.checkpointer.period=1000", *extra],
               cwd=REPO, datasets_root=root, threads=2)
    steps = [m for m in _metrics(out) if "total_loss" in m]
    assert [m["iteration"] for m in steps] == [0, 1]
    return steps


@pytest.mark.slow
def test_segmentation_demo_trains_with_a_finite_pkd_loss(demo_datasets_root, teacher_weights, tmp_path):
    steps = _train(SEG_DEMO, teacher_weights, str(tmp_path / "run"), demo_datasets_root, TINY_TRAIN_OVERRIDES)
    for step in steps:
        # Weight 6 on 1 − ρ ∈ [0, 2]: an adapter at random initialisation correlates little with the teacher.
        assert 0.0 < step["loss_pkd"] < 12.0 and "loss_sem_seg" in step
    final = torch.load(tmp_path / "run" / "model_final.pth", map_location="cpu", weights_only=False)["model"]
    assert final["distill_heads.pkd.adapter.weight"].shape == (128, 64, 1, 1)
    assert not any(k.startswith("teacher.") for k in final)


@pytest.mark.slow
def test_mask_rcnn_demo_trains_with_a_finite_pkd_loss(demo_datasets_root, tmp_path):
    torch.manual_seed(0)  # a random R34-FPN demo teacher: the architecture and keys of the real one
    teacher_cfg = LazyConfig.load("configs/COCO-InstanceSegmentation/mask_rcnn_R_34_FPN_demo.py")
    teacher_file = tmp_path / "teacher.pth"
    torch.save({"model": instantiate(teacher_cfg.model).state_dict()}, teacher_file)
    steps = _train(RCNN_DEMO, teacher_file, str(tmp_path / "run"), demo_datasets_root,
                   ["dataloader.train.num_workers=0", "dataloader.test.num_workers=0", "train.log_period=1"])
    for step in steps:
        assert 0.0 < step["loss_pkd"] < 48.0 and "loss_mask" in step and "loss_rpn_cls" in step
