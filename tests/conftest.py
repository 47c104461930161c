"""Shared fixtures. Tests run from the repository root (configs are addressed relative to it).

Datasets: the scripts under datasets/, generated demo data, and (re-)registration of Detectron2's
builtin names and ours at a chosen root. Detectron2 registers its builtin datasets once, at import,
under ``$DETECTRON2_DATASETS``; these fixtures re-register the names we use with Detectron2's own
functions and put the original registrations back afterwards, so no subprocess is needed.
"""
import copy
import os
import sys

import pytest
import torch
from detectron2.config import LazyConfig
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances
from detectron2.data.datasets.builtin import register_all_ade20k, register_all_cityscapes
from detectron2.data.datasets.builtin_meta import _get_builtin_metadata

from apd.data.datasets import register_pascal_context
from helpers import TINY_TRAIN_OVERRIDES, load_script, run_script
from apd.data.datasets.coco import use_checked_coco_loader

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CITYSCAPES_NAMES = [f"cityscapes_fine_{task}_{split}" for task in ("instance_seg", "sem_seg")
                    for split in ("train", "val", "test")]
ADE20K_NAMES = ["ade20k_sem_seg_train", "ade20k_sem_seg_val"]
COCO_NAMES = {"coco_2017_train": ("coco/train2017", "coco/annotations/instances_train2017.json"),
              "coco_2017_val": ("coco/val2017", "coco/annotations/instances_val2017.json")}
PASCAL_CONTEXT_NAMES = [f"pascal_context_{n}_sem_seg_{split}" for n in (59, 60) for split in ("train", "val")]
ALL_NAMES = CITYSCAPES_NAMES + ADE20K_NAMES + list(COCO_NAMES) + PASCAL_CONTEXT_NAMES


def load_dataset_script(name):
    """Import ``datasets/<name>.py`` as a module (that folder is not a package)."""
    return load_script(os.path.join(REPO, "datasets", f"{name}.py"))


@pytest.fixture(scope="session")
def dataset_script():
    """``dataset_script("prepare_cityscapes")`` -> that script as a module (cached)."""
    cache = {}

    def load(name):
        if name not in cache:
            cache[name] = load_dataset_script(name)
        return cache[name]

    return load


@pytest.fixture(scope="session")
def demo_datasets_root(tmp_path_factory, dataset_script):
    """All four demo datasets (3 train / 2 val images each, seed 0), generated once per session."""
    root = tmp_path_factory.mktemp("demo_datasets")
    dataset_script("generate_demo_data").generate(str(root), seed=0, num_train=3, num_val=2)
    return root


@pytest.fixture(scope="session")
def teacher_weights(tmp_path_factory):
    """Path of a checkpoint ``{"model": state_dict}`` of the demo teacher (PSPNet-R18 half width),
    saved from a freshly instantiated model (seed 0): real architecture and key names, no training."""
    from detectron2.config import instantiate

    torch.manual_seed(0)
    teacher = instantiate(LazyConfig.load(os.path.join(REPO, "configs/demo/pspnet_r18_wide_demo.py")).model)
    path = str(tmp_path_factory.mktemp("teacher") / "teacher.pth")
    torch.save({"model": teacher.state_dict()}, path)
    return path


@pytest.fixture(scope="session")
def apd_demo_run(demo_datasets_root, teacher_weights, tmp_path_factory):
    """Output dir of one tiny ``train_net.py`` run of configs/demo/apd_pspnet_r18_demo.py, shared by the
    tests that only read what a run leaves (tests/test_logging.py, tests/reliability/test_teacher_integrity.py):
    2 iterations, ``TINY_TRAIN_OVERRIDES`` (batch 2, 64×128 crops, no workers, log every step), the
    ``teacher_weights`` checkpoint as teacher, ``train.eval_teacher=False``, ``model.save_teacher=True``.
    Tests must not write into it."""
    out = tmp_path_factory.mktemp("apd_demo_run") / "run"
    run_script("train_net.py", ["--config-file", "configs/demo/apd_pspnet_r18_demo.py",
                                f"model.teacher_weights={teacher_weights}", f"train.output_dir={out}",
                                "train.max_iter=2", *TINY_TRAIN_OVERRIDES, "train.eval_teacher=False",
                                "model.save_teacher=True"],
               cwd=REPO, datasets_root=demo_datasets_root, threads=2)
    return out


def _remove(name):
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
    if name in MetadataCatalog.list():
        MetadataCatalog.remove(name)


@pytest.fixture
def register_datasets_at():
    """
    ``register_datasets_at(root)`` registers the Cityscapes, ADE20K, COCO 2017 and
    PASCAL-Context names under ``root`` (Detectron2's functions for the builtin ones); the
    registrations in place before the test are restored at teardown.
    """
    saved = {
        name: (DatasetCatalog[name], MetadataCatalog.get(name).as_dict())
        for name in ALL_NAMES
        if name in DatasetCatalog.list()
    }

    def register(root):
        root = str(root)
        for name in ALL_NAMES:
            _remove(name)
        register_all_cityscapes(root)
        register_all_ade20k(root)
        for name, (image_root, json_file) in COCO_NAMES.items():
            register_coco_instances(name, _get_builtin_metadata("coco"), os.path.join(root, json_file),
                                    os.path.join(root, image_root))
        use_checked_coco_loader(list(COCO_NAMES))  # as apd.data.datasets.builtin does on import
        register_pascal_context(root)

    yield register
    for name in ALL_NAMES:
        _remove(name)
    for name, (func, meta) in saved.items():
        DatasetCatalog.register(name, func)
        MetadataCatalog.get(name).set(**{k: v for k, v in meta.items() if k != "name"})


@pytest.fixture
def demo_datasets(demo_datasets_root, register_datasets_at):
    """The demo root, with all dataset names we use registered under it for this test."""
    register_datasets_at(demo_datasets_root)
    return demo_datasets_root


@pytest.fixture(autouse=True)
def _repo_root_cwd(monkeypatch):
    monkeypatch.chdir(REPO)


torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def _load_rel(filename, keys=None):
    """Detectron2's ``LazyConfig.load_rel`` without ``inspect.stack()``: same result (a path relative to the
    caller's file), but ``inspect.stack()`` reads the source of every frame and scans ``sys.modules`` for each,
    ~0.3 s per call inside pytest (many frames, thousands of modules); the config tests make ~100 such calls."""
    caller_fname = sys._getframe(1).f_code.co_filename
    assert caller_fname != "<string>", "load_rel Unable to find caller"
    return LazyConfig.load(os.path.join(os.path.dirname(caller_fname), filename), keys)


LazyConfig.load_rel = staticmethod(_load_rel)

_CONFIGS_DIR = os.path.join(REPO, "configs") + os.sep
_lazy_load = LazyConfig.load
_loaded = {}


def _load(filename, keys=None):
    """Detectron2's ``LazyConfig.load``, memoised for the committed configs under configs/ (the tests never
    write there): each file is executed once per session (~0.2 s for a segmentation config, ~0.9 s for an
    R-CNN one) and every call gets its own deep copy (~0.01 s), so callers may change what they get. Any
    other file (a test's own config in tmp_path) and every failing load go through the original each time."""
    path = os.path.abspath(filename)
    if not path.startswith(_CONFIGS_DIR):
        return _lazy_load(filename, keys)
    key = (path, os.stat(path).st_mtime_ns, keys if not isinstance(keys, list) else tuple(keys))
    if key not in _loaded:
        _loaded[key] = _lazy_load(filename, keys)
    return copy.deepcopy(_loaded[key])


LazyConfig.load = staticmethod(_load)
