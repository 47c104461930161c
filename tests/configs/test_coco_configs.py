"""The COCO R-CNN configs (configs/COCO-Detection, configs/COCO-InstanceSegmentation) load, agree with
themselves (input formats, masks, demo teachers) and build."""
import glob
import os

import pytest
from detectron2.config import LazyConfig, instantiate
from omegaconf import OmegaConf

from apd.config import check_config
from apd.modeling.distill.fpn_terms import FPNAPDHead, FPNImitationHead
from apd.modeling.distill.roi_terms import ROIAPDHead, ROILogitKDHead
from apd.modeling.meta_arch.rcnn_distiller import RCNNDistiller

CONFIGS = sorted(glob.glob("configs/COCO-Detection/*.py") + glob.glob("configs/COCO-InstanceSegmentation/*.py"))


def _name(path):
    return os.path.basename(path)[: -len(".py")]


def _student(cfg):
    return cfg.model.student if "student" in cfg.model else cfg.model


def test_configs_exist():
    names = {_name(p) for p in CONFIGS}
    assert {
        "apd_faster_rcnn_R101_to_R50_FPN_1x",
        "apd_faster_rcnn_R101_to_R18_FPN_1x",
        "kd_faster_rcnn_R101_to_R50_FPN_1x",
        "faster_rcnn_R_50_FPN_1x",
        "apd_mask_rcnn_R101_to_R50_FPN_1x",
        "apd_faster_rcnn_R101_to_R50_FPN_1x_demo",
        "apd_mask_rcnn_R101_to_R50_FPN_1x_demo",
        "mask_rcnn_R_34_FPN_demo",
        "mask_rcnn_R_18_FPN_demo",
        "kd_mask_rcnn_R34_to_R18_FPN_demo",
        "apd_mask_rcnn_R34_to_R18_FPN_demo",
        "apd_only_mask_rcnn_R34_to_R18_FPN_demo",
        "fpnmimic_mask_rcnn_R34_to_R18_FPN_demo",
        "roiapd_mask_rcnn_R34_to_R18_FPN_demo",
        "apd_mask_rcnn_R101_to_R18_FPN_1x",
        "fpnmimic_faster_rcnn_R101_to_R50_FPN_1x",
        "roiapd_faster_rcnn_R101_to_R50_FPN_1x",
    } <= names


# The terms of each method prefix (docs/METHOD.md §6b: "apd" = dense APD on FPN + KD, as in segmentation).
METHOD_TERMS = {
    "apd_only_": {"apd"},
    "apd_": {"apd", "kd"},
    "kd_": {"kd"},
    "fpnmimic_": {"fpn_mimic"},
    "roiapd_": {"roi_apd", "kd"},
}


def _method(name):
    return next((m for m in METHOD_TERMS if name.startswith(m)), None)


@pytest.mark.parametrize("path", CONFIGS, ids=_name)
def test_config_is_consistent(path):
    from apd.launch_checks import check_model_matches_data
    from apd.data.samplers import check_loaders
    from apd.engine.hooks import check_schedule
    from apd.solver.param_groups import check_optimizers

    cfg = LazyConfig.load(path)
    check_config(cfg)
    for check in (check_schedule, check_optimizers, check_loaders):  # every number in its range
        check(cfg)
    check_model_matches_data(cfg)  # roi_heads.num_classes == the dataset's thing classes
    student, name = _student(cfg), _name(path)
    mapper = cfg.dataloader.train.mapper
    # The loader delivers images in the student's format; the distiller converts for the teacher.
    assert mapper.image_format == cfg.dataloader.test.mapper.image_format == student.input_format
    has_mask = student.roi_heads.mask_head is not None
    assert has_mask == mapper.use_instance_mask == ("mask_rcnn" in name)
    assert cfg.train.output_dir.rstrip("/").endswith(name.replace("_demo", ""))
    method = _method(name)
    if method is not None:
        teacher_depth = int(name.split("_to_")[0].rsplit("R", 1)[1])  # "..._R101_to_R50_..." -> 101
        assert cfg.model.teacher.backbone.bottom_up.stages.depth == teacher_depth
        assert cfg.model.teacher.input_format == "BGR"  # model-zoo teachers (and the demo ones)
        assert (cfg.model.teacher.roi_heads.mask_head is not None) == has_mask
        assert set(cfg.model.distill_heads) == METHOD_TERMS[method]
        # A teacher adapter (and its optimiser) exactly for the APD terms.
        assert (cfg.get("adapter_optimizer") is not None) == ("apd" in method)
        assert cfg.optimizer.params.head_lr_multiplier == 1.0  # Detectron2's single learning rate
        if "apd" in cfg.model.distill_heads:
            assert cfg.model.class_map_from == ("masks" if has_mask else "auto")
    if name.endswith("_demo"):
        # Real-architecture demos: a pipeline check (≤ 200 it); the small R34/R18 family trains for real.
        assert cfg.train.max_iter <= (1200 if ("R_18_FPN_demo" in name or "R34" in name or "R_34" in name) else 200)
        assert cfg.dataloader.train.total_batch_size == 2
        assert cfg.train.init_checkpoint == ""  # no download on the demo machine


@pytest.mark.parametrize("path", [p for p in CONFIGS if _name(p).endswith("_demo") and "_to_" in p], ids=_name)
def test_demo_distiller_reads_its_demo_teachers_final_checkpoint(path):
    cfg = LazyConfig.load(path)
    kind = "mask_rcnn" if "mask_rcnn" in path else "faster_rcnn"
    folder = "COCO-InstanceSegmentation" if kind == "mask_rcnn" else "COCO-Detection"
    teacher = "R_34_FPN_demo" if "_R34_to_" in path else "R_101_FPN_3x_demo"
    teacher_cfg = LazyConfig.load(f"configs/{folder}/{kind}_{teacher}.py")
    assert cfg.model.teacher_weights == teacher_cfg.train.output_dir + "/model_final.pth"
    # The teacher node is the model the demo teacher was trained with (GroupNorm ResNet), key for key.
    assert OmegaConf.to_container(cfg.model.teacher) == OmegaConf.to_container(teacher_cfg.model)
    assert cfg.model.teacher.backbone.bottom_up.stages.norm == "GN"


def test_r18_student_builds():
    cfg = LazyConfig.load("configs/COCO-Detection/faster_rcnn_R_18_FPN_1x.py")
    model = instantiate(cfg.model)
    assert model.backbone.bottom_up.res5[0].conv1.weight.shape == (512, 256, 3, 3)  # BasicBlock
    assert model.backbone.output_shape()["p2"].channels == 256


def test_apd_mask_rcnn_config_builds_with_disjoint_optimizers():
    cfg = LazyConfig.load("configs/COCO-InstanceSegmentation/apd_mask_rcnn_R101_to_R50_FPN_1x.py")
    cfg.model.teacher_weights = None  # no download; training would refuse this teacher
    model = instantiate(cfg.model)
    assert isinstance(model, RCNNDistiller)
    assert len(model.teacher.backbone.bottom_up.res4) == 23 and len(model.student.backbone.bottom_up.res4) == 6
    apd = model.distill_heads["apd"]
    assert isinstance(apd, FPNAPDHead) and isinstance(model.distill_heads["kd"], ROILogitKDHead)
    assert apd.num_classes == 80 and apd.student_adapter[0].in_channels == 256
    assert apd.levels == ("p2", "p3", "p4", "p5", "p6")
    assert model.student.roi_heads.mask_on and model.teacher.roi_heads.mask_on
    cfg.optimizer.params.model = model
    cfg.adapter_optimizer.params.model = model
    student_opt, adapter_opt = instantiate(cfg.optimizer), instantiate(cfg.adapter_optimizer)
    student_ids = {id(p) for g in student_opt.param_groups for p in g["params"]}
    adapter_ids = {id(p) for g in adapter_opt.param_groups for p in g["params"]}
    assert adapter_ids == {id(p) for p in apd.teacher_adapter.parameters()}
    assert not student_ids & adapter_ids
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert student_ids | adapter_ids == trainable
    assert not trainable & {id(p) for p in model.teacher.parameters()}
    assert {g["lr"] for g in student_opt.param_groups} == {0.02}


def test_small_demo_family_builds_with_narrow_heads_and_distills_across_widths():
    """The small COCO demo pair (R34-FPN 128 → R18-FPN 64): built models have the documented widths, and
    the APD adapters map the two different box-head widths (512 vs 256) to one embedding."""
    cfg = LazyConfig.load("configs/COCO-InstanceSegmentation/apd_mask_rcnn_R34_to_R18_FPN_demo.py")
    cfg.model.teacher_weights = None
    model = instantiate(cfg.model)
    assert isinstance(model, RCNNDistiller)
    student = model.student
    assert student.backbone.output_shape()["p2"].channels == 64
    assert model.teacher.backbone.output_shape()["p2"].channels == 128
    assert student.roi_heads.box_predictor.cls_score.in_features == 256
    assert model.teacher.roi_heads.box_predictor.cls_score.in_features == 512
    assert len(model.teacher.backbone.bottom_up.res4) == 6 and len(student.backbone.bottom_up.res4) == 2
    assert student.roi_heads.batch_size_per_image == 64
    apd = model.distill_heads["apd"]
    assert (apd.student_adapter[0].in_channels, apd.teacher_adapter[0].in_channels) == (64, 128)


@pytest.mark.parametrize("method", ["fpnmimic_", "roiapd_"])
def test_small_demo_baselines_build_their_terms(method):
    cfg = LazyConfig.load(f"configs/COCO-InstanceSegmentation/{method}mask_rcnn_R34_to_R18_FPN_demo.py")
    cfg.model.teacher_weights = None
    model = instantiate(cfg.model)
    if method == "fpnmimic_":
        mimic = model.distill_heads["fpn_mimic"]
        assert isinstance(mimic, FPNImitationHead) and tuple(mimic.adapter.weight.shape[:2]) == (128, 64)
    else:
        roi = model.distill_heads["roi_apd"]
        assert isinstance(roi, ROIAPDHead) and (roi.student_channels, roi.teacher_channels) == (256, 512)
        assert set(model.loss_weights) == {"loss_kd", "loss_roi_apd", "loss_roi_pa", "loss_roi_adapt"}
