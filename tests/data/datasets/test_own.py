"""A user's own dataset by config (apd/data/datasets/own.py, configs/common/data/own_*.py, configs/own/).

Generated data in the real on-disk formats: a folder of PNG images and a folder of label PNGs (class ids,
255 unlabelled) for segmentation; the demo generator's COCO json for detection. Each goes through the
config's own loader and evaluator (the ground truth fed back scores 100), train_net.py's checks (one line
naming the bad file, before training) and, marked slow, a short train_net.py run with its evaluation.
"""
import importlib.util
import json
import os
import sys

import numpy as np
import pytest
import torch
from detectron2.config import instantiate
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import inference_on_dataset
from detectron2.structures import BoxMode, Boxes, Instances, polygons_to_bitmask
from PIL import Image

from apd.config import load_config
from apd.errors import ConfigMismatchError
from apd.launch_checks import check_datasets, check_model_matches_data
from helpers import TINY_TRAIN_OVERRIDES, run_script

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CLASSES = ["sky", "road", "car"]
OWN_NAMES = ["own_sem_seg_train", "own_sem_seg_val", "own_coco_train", "own_coco_val"]


def _write_split(root, split, n, seed):
    """``n`` 48×64 RGB PNGs and their label PNGs: three horizontal bands (sky / road / car blocks), 255 on
    a border; returns (image folder, label folder)."""
    rng = np.random.default_rng(seed)
    images, labels = root / "images" / split, root / "labels" / split
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for i in range(n):
        label = np.zeros((48, 64), np.uint8)
        label[16 + i:, :] = 1
        label[30:40, 8 + 4 * i:30 + 4 * i] = 2
        label[:, :2] = 255
        image = (np.stack([label * 60 + 20] * 3, -1) + rng.integers(0, 30, (48, 64, 3))).astype(np.uint8)
        Image.fromarray(image).save(images / f"img_{i}.png")
        Image.fromarray(label).save(labels / f"img_{i}.png")
    return images, labels


@pytest.fixture
def own_names():
    """Removes the own datasets' registrations after the test (they live in Detectron2's global catalogs)."""
    yield
    for name in OWN_NAMES:
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
        if name in MetadataCatalog.list():
            MetadataCatalog.remove(name)


@pytest.fixture
def sem_seg_data(tmp_path, own_names):
    """Overrides that point configs/own/*.py at a generated folder dataset (4 train, 2 val images)."""
    train = _write_split(tmp_path / "data", "train", 4, 0)
    val = _write_split(tmp_path / "data", "val", 2, 1)
    return [f"dataloader.train.dataset.image_root={train[0]}", f"dataloader.train.dataset.sem_seg_root={train[1]}",
            f"dataloader.test.dataset.image_root={val[0]}", f"dataloader.test.dataset.sem_seg_root={val[1]}",
            f"dataloader.train.dataset.classes=[{','.join(CLASSES)}]", "dataloader.train.dataset.image_ext=.png",
            "dataloader.test.num_workers=0"]


def _run(cfg, model):
    return inference_on_dataset(model, instantiate(cfg.dataloader.test), instantiate(cfg.dataloader.evaluator))


class SemSegOracle:
    """The label file fed back as one-hot scores (``as_class``: every pixel predicted as that class)."""

    def __init__(self, label_of, as_class=None):
        self.label_of, self.as_class = label_of, as_class

    def __call__(self, batched_inputs):
        outputs = []
        for x in batched_inputs:
            gt = np.array(Image.open(self.label_of[x["file_name"]])).astype(np.int64)
            pred = np.where(gt == 255, 0, gt) if self.as_class is None else np.full_like(gt, self.as_class)
            scores = torch.nn.functional.one_hot(torch.from_numpy(pred), len(CLASSES)).permute(2, 0, 1)
            outputs.append({"sem_seg": scores.float()})
        return outputs


def test_folder_dataset_is_registered_from_the_config_and_the_ground_truth_scores_100(sem_seg_data):
    cfg = load_config(os.path.join(REPO, "configs/own/apd_pspnet_r18.py"), sem_seg_data)
    meta = MetadataCatalog.get("own_sem_seg_val")
    assert meta.stuff_classes == CLASSES and meta.ignore_label == 255 and meta.evaluator_type == "sem_seg"
    # the class count follows the class list, in the data and in both models
    for key in ("dataloader.train.mapper.num_classes", "dataloader.test.mapper.num_classes",
                "model.student.sem_seg_head.num_classes", "model.teacher.sem_seg_head.num_classes",
                "model.distill_heads.apd.num_classes"):
        assert cfg_select(cfg, key) == 3, key
    records = DatasetCatalog.get("own_sem_seg_train")
    assert [os.path.basename(r["file_name"]) for r in records] == [f"img_{i}.png" for i in range(4)]
    check_datasets(cfg)  # every file read once: no error on good data
    check_model_matches_data(cfg)

    label_of = {r["file_name"]: r["sem_seg_file_name"] for r in DatasetCatalog.get("own_sem_seg_val")}
    assert _run(cfg, SemSegOracle(label_of))["sem_seg"]["mIoU"] == pytest.approx(100.0, abs=1e-9)
    # Everything predicted "sky": IoU(sky) = sky pixels / labelled pixels, the other two classes 0.
    labels = np.stack([np.array(Image.open(f)) for f in label_of.values()])
    hand = 100.0 * np.sum(labels == 0) / np.sum(labels != 255) / 3
    assert _run(cfg, SemSegOracle(label_of, as_class=0))["sem_seg"]["mIoU"] == pytest.approx(hand, abs=1e-6)


def cfg_select(cfg, key):
    from omegaconf import OmegaConf

    return OmegaConf.select(cfg, key)


def _train_net():
    spec = importlib.util.spec_from_file_location("train_net", os.path.join(REPO, "train_net.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _missing_label(data):
    os.remove(data / "labels" / "train" / "img_2.png")
    return data / "images" / "train" / "img_2.png", "has no label"


def _id_out_of_range(data):
    path = data / "labels" / "val" / "img_1.png"
    label = np.array(Image.open(path))
    label[5, 5] = 3  # three classes: ids 0, 1, 2 and 255
    Image.fromarray(label).save(path)
    return path, "has ids [3] outside [0, 3)"


def _size_mismatch(data):
    path = data / "labels" / "train" / "img_0.png"
    Image.fromarray(np.zeros((40, 64), np.uint8)).save(path)
    return path, "is 40×64 (h×w) but image"


@pytest.mark.parametrize("mutate", [_missing_label, _id_out_of_range, _size_mismatch])
def test_bad_file_stops_train_net_before_training_with_one_line_naming_it(sem_seg_data, tmp_path, monkeypatch,
                                                                           capsys, mutate):
    path, what = mutate(tmp_path / "data")
    out = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["train_net.py", "--config-file", "configs/own/pspnet_r18.py",
                                      f"train.output_dir={out}", "train.init_checkpoint=", *sem_seg_data])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        _train_net().invoke_main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert str(path) in line and what in line, line
    assert not out.exists()


def test_class_list_and_model_disagreeing_is_one_line(sem_seg_data):
    cfg = load_config(os.path.join(REPO, "configs/own/pspnet_r18.py"),
                      sem_seg_data + ["model.sem_seg_head.num_classes=5"])
    with pytest.raises(ConfigMismatchError, match=r"Class counts disagree: model.sem_seg_head.num_classes=5 but "
                                                  r"dataloader.train.mapper.num_classes=3"):
        check_model_matches_data(cfg)


# ------------------------------------------------------------------------------------------------- COCO
def _coco_overrides(root, num_classes):
    coco = root / "coco"
    return [f"dataloader.train.dataset.json_file={coco}/annotations/instances_train2017.json",
            f"dataloader.train.dataset.image_root={coco}/train2017",
            f"dataloader.test.dataset.json_file={coco}/annotations/instances_val2017.json",
            f"dataloader.test.dataset.image_root={coco}/val2017",
            f"model.roi_heads.num_classes={num_classes}", "dataloader.test.num_workers=0"]


class DetectionOracle:
    """The registered annotations of each image returned as detections of score 1."""

    def __init__(self, dataset_name):
        self.records = {r["image_id"]: r for r in DatasetCatalog.get(dataset_name)}

    def __call__(self, batched_inputs):
        outputs = []
        for x in batched_inputs:
            h, w = x["height"], x["width"]
            annos = [a for a in self.records[x["image_id"]]["annotations"] if not a.get("iscrowd", 0)]
            inst = Instances((h, w))
            boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in annos]
            inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
            inst.scores = torch.ones(len(annos))
            inst.pred_classes = torch.tensor([a["category_id"] for a in annos], dtype=torch.int64)
            inst.pred_masks = torch.from_numpy(np.stack([polygons_to_bitmask(a["segmentation"], h, w) for a in annos]))
            outputs.append({"instances": inst})
        return outputs


def _num_categories(root):
    with open(root / "coco" / "annotations" / "instances_val2017.json") as f:
        return len(json.load(f)["categories"])


def test_coco_json_is_registered_from_the_config_and_the_ground_truth_scores_100(demo_datasets_root, own_names):
    k = _num_categories(demo_datasets_root)
    cfg = load_config(os.path.join(REPO, "configs/COCO-InstanceSegmentation/mask_rcnn_R_18_FPN_own.py"),
                      _coco_overrides(demo_datasets_root, k))
    check_datasets(cfg)
    check_model_matches_data(cfg)
    assert len(MetadataCatalog.get("own_coco_val").thing_classes) == k
    res = _run(cfg, DetectionOracle("own_coco_val"))
    for task in ("bbox", "segm"):
        assert res[task]["AP"] == pytest.approx(100.0, abs=1e-9), task


def test_coco_class_count_other_than_the_models_is_one_line(demo_datasets_root, own_names):
    k = _num_categories(demo_datasets_root)
    cfg = load_config(os.path.join(REPO, "configs/COCO-InstanceSegmentation/mask_rcnn_R_18_FPN_own.py"),
                      _coco_overrides(demo_datasets_root, k + 1))
    check_datasets(cfg)
    with pytest.raises(ConfigMismatchError, match=rf"model.roi_heads.num_classes={k + 1} but "
                                                  rf"len\(MetadataCatalog.get\('own_coco_train'\).thing_classes\)={k}"):
        check_model_matches_data(cfg)


# ------------------------------------------------------------------------------------ train_net.py runs
def _metrics(out):
    with open(out / "metrics.json") as f:
        return [json.loads(line) for line in f if line.strip()]


# The own APD config at test size: quarter-width R18 student, narrow R18 teacher, no sliding window.
SMALL_DISTILLER = [
    "model.student.backbone.stem_width=16", "model.student.backbone.base_channels=16",
    "model.student.sem_seg_head.channels=32", "model.student.sem_seg_head.aux_channels=16",
    "model.teacher.backbone.depth=18", "model.teacher.backbone.stem_width=16",
    "model.teacher.backbone.base_channels=16", "model.teacher.sem_seg_head.channels=32",
    "model.teacher.sem_seg_head.aux_channels=16", "model.distill_heads.apd.hidden_dim=16",
    "model.distill_heads.apd.embed_dim=16", "model.sliding_window=null", "train.init_checkpoint=",
]


@pytest.mark.slow
def test_apd_trains_and_evaluates_on_a_folder_dataset(sem_seg_data, tmp_path):
    cfg = load_config(os.path.join(REPO, "configs/own/apd_pspnet_r18.py"), sem_seg_data + SMALL_DISTILLER)
    torch.manual_seed(0)
    teacher = tmp_path / "teacher.pth"
    torch.save({"model": instantiate(cfg.model.teacher).state_dict()}, teacher)
    out = tmp_path / "run"
    run_script("train_net.py", ["--config-file", "configs/own/apd_pspnet_r18.py", *sem_seg_data, *SMALL_DISTILLER,
                                *TINY_TRAIN_OVERRIDES, "dataloader.train.mapper.augmentations.crop_size=[32,32]",
                                f"model.teacher_weights={teacher}", f"train.output_dir={out}", "train.max_iter=2",
                                "train.eval_period=2"], cwd=REPO, threads=2)
    metrics = _metrics(out)
    assert [m["iteration"] for m in metrics if "loss_apd" in m] == [0, 1]
    # the teacher scored before step 0, the student at the end, each over the three classes
    (teacher,) = [m for m in metrics if "teacher/sem_seg/mIoU" in m]
    (student,) = [m for m in metrics if "sem_seg/mIoU" in m]
    assert 0.0 <= teacher["teacher/sem_seg/mIoU"] <= 100.0 and 0.0 <= student["sem_seg/mIoU"] <= 100.0
    assert {f"sem_seg/IoU-{c}" for c in CLASSES} <= set(student) and student["iteration"] == 2


@pytest.mark.slow
def test_mask_rcnn_trains_and_evaluates_on_a_coco_json(demo_datasets_root, tmp_path, own_names):
    out = tmp_path / "run"
    run_script("train_net.py", ["--config-file", "configs/COCO-InstanceSegmentation/mask_rcnn_R_18_FPN_own.py",
                                *_coco_overrides(demo_datasets_root, _num_categories(demo_datasets_root)),
                                "train.init_checkpoint=", "dataloader.train.total_batch_size=2",
                                "dataloader.train.num_workers=0",
                                "dataloader.train.mapper.augmentations.0.short_edge_length=[96]",
                                "dataloader.train.mapper.augmentations.0.max_size=160",
                                "dataloader.test.mapper.augmentations.0.short_edge_length=96",
                                "dataloader.test.mapper.augmentations.0.max_size=160",
                                f"train.output_dir={out}", "train.max_iter=2", "train.eval_period=2",
                                "train.log_period=1"],
               cwd=REPO, threads=2)
    metrics = _metrics(out)
    assert [m["iteration"] for m in metrics if "loss_mask" in m] == [0, 1]
    (ev,) = [m for m in metrics if "bbox/AP" in m]
    assert 0.0 <= ev["bbox/AP"] <= 100.0 and 0.0 <= ev["segm/AP"] <= 100.0
