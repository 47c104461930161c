"""Every segmentation config loads, passes the key checks, and instantiates (model + data loaders) on CPU.

Models are instantiated (on the meta device: real modules, no weight init) once per distinct model node
(many leaf configs share one), data loaders on the generated datasets of every format.
"""
import glob
import itertools
import os

import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from omegaconf import OmegaConf

from apd.config import check_config
from apd.data.samplers import check_loaders
from apd.engine.hooks import check_schedule
from apd.solver.param_groups import check_optimizers

CONFIGS = sorted(
    p for p in glob.glob("configs/**/*.py", recursive=True)
    if "COCO-" not in p and not os.path.basename(p).startswith("_") and "/common/" not in p
)


def _name(path):
    return path[len("configs/"):-len(".py")]


def _cfg(path):
    cfg = LazyConfig.load(path)
    check_config(cfg)
    for check in (check_schedule, check_optimizers, check_loaders):  # every number in its range
        check(cfg)
    if "teacher_weights" in cfg.model:
        cfg.model.teacher_weights = None  # the files are not here; training would refuse, building works
    return cfg


def test_all_recipe_families_are_present():
    names = {_name(p) for p in CONFIGS}
    for ds in ("cityscapes", "ade20k", "pascal_context"):
        for arch in ("pspnet_r101", "pspnet_r18", "deeplabv3_r101", "deeplabv3_r18", "pspnet_mbv2",
                     "semantic_fpn_r50", "semantic_fpn_r18"):
            assert f"{ds}/{arch}" in names
    for ds in ("", "ade20k/", "pascal_context/"):
        for method in ("apd_pspnet_r18", "apd_deeplab_r18", "apd_pspnet_mbv2", "kd_pspnet_r18", "cwd_pspnet_r18"):
            assert f"{ds}{method}" in names
    assert {"demo/pspnet_r18_wide_demo", "demo/pspnet_r18_demo", "demo/apd_pspnet_r18_demo"} <= names


@pytest.mark.slow
def test_models_instantiate_once_per_distinct_node():
    seen = {}
    for path in CONFIGS:
        cfg = _cfg(path)
        seen.setdefault(OmegaConf.to_yaml(cfg.model, resolve=True), (path, cfg))
    assert len(seen) >= 20
    for path, cfg in seen.values():
        with torch.device("meta"):  # build the real modules without paying for weight init
            model = instantiate(cfg.model)
        student = getattr(model, "student", model)
        head = student.sem_seg_head
        assert head.num_classes == cfg.dataloader.train.mapper.num_classes, path
        if hasattr(model, "teacher"):
            assert model.teacher.sem_seg_head.num_classes == head.num_classes, path
            assert all(not p.requires_grad for p in model.teacher.parameters()), path
            # the student optimiser and, for APD, the teacher-adapter optimiser build on this model
            cfg.optimizer.params.model = model
            instantiate(cfg.optimizer)
            if cfg.get("adapter_optimizer") is not None:
                cfg.adapter_optimizer.params.model = model
                instantiate(cfg.adapter_optimizer)
        del model


@pytest.mark.parametrize("dataset", ["cityscapes", "ade20k", "pascal_context", "demo"])
def test_data_loaders_instantiate_and_yield_batches(dataset, demo_datasets_root, register_datasets_at):
    register_datasets_at(demo_datasets_root)
    path = {"cityscapes": "configs/cityscapes/pspnet_r18.py", "ade20k": "configs/ade20k/pspnet_r18.py",
            "pascal_context": "configs/pascal_context/pspnet_r18.py",
            "demo": "configs/demo/apd_pspnet_r18_demo.py"}[dataset]
    cfg = _cfg(path)
    cfg.dataloader.train.num_workers = 0
    cfg.dataloader.train.total_batch_size = 2
    cfg.dataloader.test.num_workers = 0
    batch = next(iter(instantiate(cfg.dataloader.train)))
    crop = tuple(cfg.dataloader.train.mapper.augmentations.crop_size)
    assert len(batch) == 2
    assert tuple(batch[0]["image"].shape) == (3, *crop) and tuple(batch[0]["sem_seg"].shape) == crop
    labels = torch.cat([b["sem_seg"].flatten() for b in batch])
    k = cfg.dataloader.train.mapper.num_classes
    assert bool(((labels >= 0) & (labels < k) | (labels == 255)).all())
    test = list(itertools.islice(iter(instantiate(cfg.dataloader.test)), 1))
    assert test[0][0]["image"].shape[0] == 3
    evaluator = instantiate(cfg.dataloader.evaluator)
    assert type(evaluator).__name__ in ("SemSegEvaluator", "CityscapesSemSegEvaluator")
