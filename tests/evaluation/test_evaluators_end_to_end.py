"""Every evaluator a config names, run end to end on generated data in the real on-disk formats.

Each run goes through the config's own test loader and mapper and ``inference_on_dataset`` (what
``train_net.do_test`` calls), with a stand-in model:

- the oracle feeds the ground truth back as its prediction: mIoU / AP must be 100;
- a run with one known error must score the value computed here by hand from the ground truth.

Data: ``demo_datasets`` (tests/conftest.py): datasets/generate_demo_data.py, converted by the
prepare scripts, registered as the project registers them.
"""
import copy
import importlib.util
import json
import logging
import math
import os
import shutil

import numpy as np
import pytest
import torch

from detectron2.config import instantiate
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import inference_on_dataset
from detectron2.structures import BoxMode, Boxes, Instances, polygons_to_bitmask

from apd.evaluation import (
    COCOEvaluator,
    CityscapesSemSegEvaluator,
    SemSegEvaluator,
    format_per_class_table,
    load_sem_seg_gt,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SEM_SEG_CONFIGS = {
    # config -> evaluator class it must name
    "configs/demo/pspnet_r18_demo.py": SemSegEvaluator,
    "configs/cityscapes/pspnet_r18.py": CityscapesSemSegEvaluator,
    "configs/ade20k/pspnet_r18.py": SemSegEvaluator,
    "configs/pascal_context/pspnet_r18.py": SemSegEvaluator,
    "configs/pascal_context/pspnet_r18_60.py": SemSegEvaluator,
}
COCO_CONFIGS = {
    "configs/COCO-InstanceSegmentation/mask_rcnn_R_18_FPN_demo.py": ("bbox", "segm"),
    "configs/COCO-Detection/faster_rcnn_R_18_FPN_1x_demo.py": ("bbox",),
}


def _cfg(path, overrides=()):
    from apd.config import load_config

    cfg = load_config(os.path.join(REPO, path), list(overrides))
    cfg.dataloader.test.num_workers = 0
    return cfg


# ------------------------------------------------------------------------------ semantic segmentation
def _cityscapes_label_ids_file(image_file):
    head, name = os.path.split(image_file)
    head = head.replace(f"{os.sep}leftImg8bit{os.sep}", f"{os.sep}gtFine{os.sep}")
    return os.path.join(head, name.replace("_leftImg8bit.png", "_gtFine_labelIds.png"))


def _id_to_train_id():
    from cityscapesscripts.helpers.labels import labels

    lut = np.full(256, 255, np.int64)
    for label in labels:
        if 0 <= label.id < 256 and not label.ignoreInEval:
            lut[label.id] = label.trainId
    return lut


def _truth_fn(cfg):
    """file_name -> the H×W class ids the config's evaluator scores against (255 = not scored)."""
    target = cfg.dataloader.evaluator._target_
    if target in (CityscapesSemSegEvaluator, "apd.evaluation.CityscapesSemSegEvaluator"):
        lut = _id_to_train_id()
        return lambda f: lut[load_sem_seg_gt(_cityscapes_label_ids_file(f))]
    records = DatasetCatalog.get(cfg.dataloader.test.dataset.names)
    label_of = {r["file_name"]: r["sem_seg_file_name"] for r in records}
    return lambda f: load_sem_seg_gt(label_of[f])


class SemSegStandIn:
    """Returns the ground truth as one-hot scores, with pixels of class ``swap[0]`` relabelled
    ``swap[1]`` when ``swap`` is given."""

    def __init__(self, truth, num_classes, swap=None):
        self.truth, self.num_classes, self.swap = truth, num_classes, swap

    def __call__(self, batched_inputs):
        outputs = []
        for x in batched_inputs:
            gt = self.truth(x["file_name"])
            assert gt.shape == (x["height"], x["width"]), x["file_name"]
            pred = np.where(gt == 255, 0, gt)
            if self.swap is not None:
                pred = np.where(gt == self.swap[0], self.swap[1], pred)
            scores = torch.nn.functional.one_hot(torch.from_numpy(pred).long(), self.num_classes)
            outputs.append({"sem_seg": scores.permute(2, 0, 1).float()})
        return outputs


def _classes_in_truth(cfg, truth):
    pixels = {}
    for r in DatasetCatalog.get(cfg.dataloader.test.dataset.names):
        ids, counts = np.unique(truth(r["file_name"]), return_counts=True)
        for i, c in zip(ids.tolist(), counts.tolist()):
            if i != 255:
                pixels[i] = pixels.get(i, 0) + c
    return pixels


def _num_classes(cfg):
    return len(MetadataCatalog.get(cfg.dataloader.test.dataset.names).stuff_classes)


def _run(cfg, model):
    return inference_on_dataset(model, instantiate(cfg.dataloader.test), instantiate(cfg.dataloader.evaluator))


@pytest.mark.parametrize("path", list(SEM_SEG_CONFIGS))
def test_sem_seg_evaluator_oracle_scores_100_and_one_swapped_class_scores_the_hand_value(path, demo_datasets):
    cfg = _cfg(path)
    evaluator_cls = SEM_SEG_CONFIGS[path]
    assert cfg.dataloader.evaluator._target_ is evaluator_cls
    truth, k = _truth_fn(cfg), _num_classes(cfg)

    res = _run(cfg, SemSegStandIn(truth, k))["sem_seg"]
    assert res["mIoU"] == pytest.approx(100.0, abs=1e-9)

    # Known error: every pixel of the most frequent class a is predicted as a class b absent from
    # the ground truth. a gets IoU 0. Detectron2's protocol leaves b out (no ground truth):
    # mIoU = 100 (n - 1) / n over the n classes present; the Cityscapes protocol counts b as 0:
    # 100 (n - 1) / (n + 1).
    present = _classes_in_truth(cfg, truth)
    n = len(present)
    a = max(present, key=present.get)
    b = next(c for c in range(k) if c not in present)
    res = _run(cfg, SemSegStandIn(truth, k, swap=(a, b)))["sem_seg"]
    names = MetadataCatalog.get(cfg.dataloader.test.dataset.names).stuff_classes
    assert res[f"IoU-{names[a]}"] == 0.0
    if evaluator_cls is CityscapesSemSegEvaluator:
        assert res[f"IoU-{names[b]}"] == 0.0
        assert res["mIoU"] == pytest.approx(100.0 * (n - 1) / (n + 1), abs=1e-6)
    else:
        assert math.isnan(res[f"IoU-{names[b]}"])
        assert res["mIoU"] == pytest.approx(100.0 * (n - 1) / n, abs=1e-6)


def _load_train_net():
    spec = importlib.util.spec_from_file_location("train_net", os.path.join(REPO, "train_net.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_config_switches_to_the_cityscapes_protocol_by_override_and_do_test_prints_the_table(
        demo_datasets, caplog):
    """``dataloader.evaluator._target_=apd.evaluation.CityscapesSemSegEvaluator`` through train_net's
    config loading and do_test: the official mIoU, and the per-class table in the log."""
    cfg = _cfg("configs/demo/pspnet_r18_demo.py",
               ["dataloader.evaluator._target_=apd.evaluation.CityscapesSemSegEvaluator"])
    truth = _truth_fn(cfg)
    present = _classes_in_truth(cfg, truth)
    a = max(present, key=present.get)
    b = next(c for c in range(19) if c not in present)
    train_net = _load_train_net()
    with caplog.at_level(logging.INFO):
        results = train_net.do_test(cfg, SemSegStandIn(truth, 19, swap=(a, b)))
    n = len(present)
    assert set(results["sem_seg"]) >= {"mIoU", "iIoU", "IoU_sup", "iIoU_sup"}
    assert results["sem_seg"]["mIoU"] == pytest.approx(100.0 * (n - 1) / (n + 1), abs=1e-6)
    table = format_per_class_table(results)
    names = MetadataCatalog.get(cfg.dataloader.test.dataset.names).stuff_classes
    assert [c.strip() for c in table.splitlines()[0].strip("|").split("|")] == ["class", "IoU"]
    assert len(table.splitlines()) == 2 + 19
    assert f"| {names[a]}" in table and "Per-class results:" in caplog.text


def test_format_per_class_table_keeps_accuracy_column_for_detectron2_results():
    table = format_per_class_table({"sem_seg": {"mIoU": 50.0, "IoU-road": 40.0, "ACC-road": 60.0,
                                                "IoU-sky": float("nan"), "ACC-sky": float("nan")}})
    lines = table.splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["class", "IoU", "Acc"]
    assert [c.strip() for c in lines[2].strip("|").split("|")] == ["road", "40.00", "60.00"]
    assert "nan" in lines[3]
    assert format_per_class_table({"bbox": {"AP": 1.0}}) == ""


def test_cityscapes_evaluator_refuses_to_start_without_numpy_in1d(monkeypatch, demo_datasets):
    from apd.evaluation import CityscapesEvalUnavailable

    monkeypatch.delattr(np, "in1d", raising=False)
    with pytest.raises(CityscapesEvalUnavailable, match=r"numpy<2\.4.*np\.in1d"):
        CityscapesSemSegEvaluator("cityscapes_fine_sem_seg_val")


def test_cityscapes_evaluator_turns_cityscapesscripts_exit_into_an_error(demo_datasets):
    """A ground-truth image without a prediction: cityscapesscripts calls sys.exit; here it is a
    RuntimeError with its message, and the process lives on."""
    evaluator = CityscapesSemSegEvaluator("cityscapes_fine_sem_seg_val")
    evaluator.reset()
    with pytest.raises(RuntimeError, match="cityscapesscripts stopped the evaluation: .*prediction"):
        evaluator.evaluate()  # nothing processed: no prediction for any ground truth


# ------------------------------------------------------------------------------------------- COCO
class DetectionStandIn:
    """Returns the registered annotations of each image as detections (score 1), minus ``drop``
    (annotation ids), with masks rasterised from the polygons; ``empty=True`` returns nothing."""

    def __init__(self, dataset_name, drop=(), empty=False):
        self.records = {r["image_id"]: r for r in DatasetCatalog.get(dataset_name)}
        self.drop, self.empty = set(drop), empty

    def __call__(self, batched_inputs):
        outputs = []
        for x in batched_inputs:
            h, w = x["height"], x["width"]
            annos = [] if self.empty else [a for a in self.records[x["image_id"]]["annotations"]
                                           if a["id"] not in self.drop and not a.get("iscrowd", 0)]
            inst = Instances((h, w))
            boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in annos]
            inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4).float())
            inst.scores = torch.ones(len(annos))
            inst.pred_classes = torch.tensor([a["category_id"] for a in annos], dtype=torch.int64)
            masks = [polygons_to_bitmask(a["segmentation"], h, w) for a in annos]
            inst.pred_masks = torch.from_numpy(np.stack(masks) if masks else np.zeros((0, h, w), bool))
            outputs.append({"instances": inst})
        return outputs


def _ap_with_one_missed(records):
    """AP (COCO, 101 recall points r = 0, 0.01, ..., 1) when one object of a category c with N ≥ 2
    objects is missed and everything else is found exactly with one score: precision is 1 up to the
    final recall (N−1)/N and 0 beyond, so AP_c = #{r ≤ (N−1)/N}/101; the other categories score 1;
    AP averages over the categories with ground truth. Returns (annotation id to drop, AP in %)."""
    per_cat = {}
    for r in records:
        for a in r["annotations"]:
            per_cat.setdefault(a["category_id"], []).append(a["id"])
    c = max(per_cat, key=lambda c: len(per_cat[c]))
    n = len(per_cat[c])
    assert n >= 2
    recall_points = np.linspace(0.0, 1.0, 101)  # pycocotools' recThrs
    ap_c = float(np.sum(recall_points <= (n - 1) / n)) / 101
    return per_cat[c][0], 100.0 * (len(per_cat) - 1 + ap_c) / len(per_cat)


@pytest.mark.parametrize("path", list(COCO_CONFIGS))
def test_coco_evaluator_oracle_scores_100_and_one_missed_object_scores_the_hand_value(path, demo_datasets):
    cfg = _cfg(path)
    assert cfg.dataloader.evaluator._target_ is COCOEvaluator
    name = cfg.dataloader.test.dataset.names
    res = _run(cfg, DetectionStandIn(name))
    assert set(res) == set(COCO_CONFIGS[path])
    for task in COCO_CONFIGS[path]:
        for key in ("AP", "AP50", "AP75"):
            assert res[task][key] == pytest.approx(100.0, abs=1e-9), (task, key)

    drop, expected = _ap_with_one_missed(DatasetCatalog.get(name))
    res = _run(cfg, DetectionStandIn(name, drop=[drop]))
    for task in COCO_CONFIGS[path]:
        assert res[task]["AP"] == pytest.approx(expected, abs=1e-6), task


@pytest.mark.parametrize("path", list(COCO_CONFIGS))
def test_coco_evaluator_scores_zero_detections_as_0_with_every_task(path, demo_datasets):
    cfg = _cfg(path)
    res = _run(cfg, DetectionStandIn(cfg.dataloader.test.dataset.names, empty=True))
    assert set(res) == set(COCO_CONFIGS[path])  # segm present for Mask R-CNN configs
    for task in COCO_CONFIGS[path]:
        assert res[task]["AP"] == 0.0 and res[task]["AP50"] == 0.0 and res[task]["AP75"] == 0.0


def test_coco_evaluator_refuses_segm_without_masks(demo_datasets):
    cfg = _cfg("configs/COCO-InstanceSegmentation/mask_rcnn_R_18_FPN_demo.py")
    stand_in = DetectionStandIn(cfg.dataloader.test.dataset.names)

    def boxes_only(batched_inputs):
        outputs = stand_in(batched_inputs)
        for o in outputs:
            o["instances"].remove("pred_masks")
        return outputs

    with pytest.raises(ValueError, match="evaluates 'segm' but the predictions have no masks"):
        _run(cfg, boxes_only)


@pytest.fixture
def coco_with_unusable_annotations(demo_datasets_root, tmp_path, register_datasets_at):
    """The demo COCO val json with, in one image: a 2-point polygon (id P), a box of width −5 (id W),
    a zero-height box (id Z), a NaN box (id N), a box right of the image (id O) and an object with
    one good and one 2-point polygon (id T). Returns (json file, {letter: id})."""
    root = tmp_path / "data"
    shutil.copytree(demo_datasets_root / "coco", root / "coco")
    json_file = root / "coco" / "annotations" / "instances_val2017.json"
    data = json.loads(json_file.read_text())
    annos = data["annotations"]
    first_image = annos[0]["image_id"]
    mine = [a for a in annos if a["image_id"] == first_image]
    assert len(mine) >= 3
    ids = {}
    extra = []
    width = next(im["width"] for im in data["images"] if im["id"] == first_image)
    for letter, base in zip("PWZNOTA", [mine[i % len(mine)] for i in range(7)]):
        a = copy.deepcopy(base) if letter in "WZNOTA" else base
        if letter != "P":
            a["id"] = max(x["id"] for x in annos + extra) + 1
            extra.append(a)
        ids[letter] = a["id"]
        x, y, w, h = a["bbox"]
        if letter == "P":
            a["segmentation"] = [[x, y, x + w, y + h]]
        elif letter == "W":
            a["bbox"] = [x + w, y, -5.0, h]
        elif letter == "Z":
            a["bbox"] = [x, y, w, 0.0]
        elif letter == "N":
            a["bbox"] = [x, float("nan"), w, h]
        elif letter == "O":
            a["bbox"] = [width + 1.0, y, w, h]
        elif letter == "T":
            a["segmentation"] = a["segmentation"][:1] + [[x, y, x + 1, y + 1]]
        elif letter == "A":  # zero area: three identical points, then three collinear ones
            a["segmentation"] = [[x, y, x, y, x, y], [x, y, x + 2, y + 2, x + 4, y + 4]]
    annos.extend(extra)
    json_file.write_text(json.dumps(data))
    register_datasets_at(root)
    return str(json_file), ids


def test_unusable_coco_annotations_are_dropped_alike_for_training_and_evaluation(
        coco_with_unusable_annotations, caplog):
    json_file, ids = coco_with_unusable_annotations
    with caplog.at_level(logging.WARNING, logger="apd"):
        records = DatasetCatalog.get("coco_2017_val")
    kept = {a["id"]: a for r in records for a in r["annotations"]}
    for letter in "PWZNOA":
        assert ids[letter] not in kept, letter
    assert ids["T"] in kept and len(kept[ids["T"]]["segmentation"]) == 1
    assert all(a["bbox"][2] > 0 and a["bbox"][3] > 0 for a in kept.values())  # nothing mirrored
    warning = next(r.getMessage() for r in caplog.records if "unusable" in r.getMessage())
    assert json_file in warning and "dropped 6 unusable annotation(s)" in warning
    assert "lies outside the" in warning
    assert f"id {ids['A']}: no polygon with ≥ 3 points and an area > 0 (points: 3, 3)" in warning
    for letter in "PWZNOA":
        assert f"id {ids[letter]}:" in warning

    # Evaluation: the same objects leave the ground truth (pycocotools raised a TypeError on the
    # 2-point polygon), so the oracle built from the training records scores 100.
    cfg = _cfg("configs/COCO-InstanceSegmentation/mask_rcnn_R_18_FPN_demo.py")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="apd"):
        res = _run(cfg, DetectionStandIn("coco_2017_val"))
    assert res["bbox"]["AP"] == pytest.approx(100.0) and res["segm"]["AP"] == pytest.approx(100.0)
    assert any("from the evaluation ground truth" in r.getMessage() and json_file in r.getMessage()
               for r in caplog.records)


def test_image_left_without_usable_annotations_counts_as_empty(demo_datasets_root, tmp_path,
                                                                register_datasets_at, caplog):
    from detectron2.data import get_detection_dataset_dicts

    root = tmp_path / "data"
    shutil.copytree(demo_datasets_root / "coco", root / "coco")
    json_file = root / "coco" / "annotations" / "instances_train2017.json"
    data = json.loads(json_file.read_text())
    image_id = data["images"][0]["id"]
    for a in data["annotations"]:
        if a["image_id"] == image_id:
            a["bbox"][2] = 0.0
    json_file.write_text(json.dumps(data))
    register_datasets_at(root)
    with caplog.at_level(logging.WARNING, logger="apd"):
        dicts = get_detection_dataset_dicts("coco_2017_train", filter_empty=True)
    assert image_id not in {d["image_id"] for d in dicts}
    assert len(dicts) == len(data["images"]) - 1
    assert "1 image(s) are left without usable annotations" in caplog.text
