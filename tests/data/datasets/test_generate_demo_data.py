"""The demo data generator: real on-disk formats, loadable through Detectron2's registrations,
deterministic by seed. Data comes from the session fixture ``demo_datasets_root``
(3 train / 2 val images per dataset, seed 0; tests/data/conftest.py)."""
import filecmp
import hashlib
import json
import os

import numpy as np
import pycocotools.mask as mask_util
import pytest
import scipy.io
from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.builtin_meta import ADE20K_SEM_SEG_CATEGORIES, COCO_CATEGORIES


def _array(path):
    return np.asarray(Image.open(path))


def _check_sem_seg_records(records, num, valid_values):
    assert len(records) == num
    for r in records:
        image, label = _array(r["file_name"]), _array(r["sem_seg_file_name"])
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8, r["file_name"]
        assert label.shape == image.shape[:2], r["sem_seg_file_name"]
        assert label.dtype == np.uint8
        assert set(np.unique(label).tolist()) <= valid_values, r["sem_seg_file_name"]
    return records


def test_cityscapes_loads_through_detectron2_builtin(demo_datasets):
    trainids = set(range(19)) | {255}
    for split, num in (("train", 3), ("val", 2)):
        name = f"cityscapes_fine_sem_seg_{split}"
        records = _check_sem_seg_records(DatasetCatalog.get(name), num, trainids)
        for r in records:
            assert (r["height"], r["width"]) == (256, 512)
            assert _array(r["file_name"]).shape == (256, 512, 3)
            assert r["file_name"].endswith("_leftImg8bit.png")
            assert r["sem_seg_file_name"].endswith("_gtFine_labelTrainIds.png")
        meta = MetadataCatalog.get(name)
        assert len(meta.stuff_classes) == 19
        assert meta.evaluator_type == "cityscapes_sem_seg" and meta.ignore_label == 255
    # street scenes: road and sky both appear in every image (trainIds 0 and 10)
    for r in DatasetCatalog.get("cityscapes_fine_sem_seg_train"):
        present = set(np.unique(_array(r["sem_seg_file_name"])).tolist())
        assert {0, 10} <= present, r["sem_seg_file_name"]


def test_cityscapes_instance_ids_agree_with_label_ids(demo_datasets):
    # d2's Cityscapes instance loader/evaluator read instanceIds: id*1000+k for classes with
    # instances (person 24, car 26, ...), the plain label id otherwise.
    gt_dir = os.path.join(demo_datasets, "cityscapes", "gtFine", "train")
    seen_instances = False
    for city in sorted(os.listdir(gt_dir)):
        for f in sorted(os.listdir(os.path.join(gt_dir, city))):
            if not f.endswith("_instanceIds.png"):
                continue
            inst = _array(os.path.join(gt_dir, city, f))
            ids = _array(os.path.join(gt_dir, city, f.replace("instanceIds", "labelIds")))
            assert inst.dtype == np.uint16
            np.testing.assert_array_equal(np.where(inst >= 1000, inst // 1000, inst), ids)
            big = inst[inst >= 1000] // 1000
            assert set(big.tolist()) <= {24, 25, 26, 27, 28, 29, 30, 31, 32, 33}
            seen_instances |= big.size > 0
    assert seen_instances


def test_ade20k_loads_through_detectron2_builtin(demo_datasets):
    for split, num in (("train", 3), ("val", 2)):
        name = f"ade20k_sem_seg_{split}"
        _check_sem_seg_records(DatasetCatalog.get(name), num, set(range(150)) | {255})
        meta = MetadataCatalog.get(name)
        assert list(meta.stuff_classes) == list(ADE20K_SEM_SEG_CATEGORIES) and len(meta.stuff_classes) == 150
    # raw release format: 0 = other, 1..150 = classes, same file names as the images
    raw_dir = os.path.join(demo_datasets, "ADEChallengeData2016", "annotations", "training")
    files = sorted(os.listdir(raw_dir))
    assert files == ["ADE_train_00000001.png", "ADE_train_00000002.png", "ADE_train_00000003.png"]
    for f in files:
        assert _array(os.path.join(raw_dir, f)).max() <= 150


def test_pascal_context_release_files_are_in_the_official_format(demo_datasets_root):
    src = os.path.join(demo_datasets_root, "VOCdevkit", "VOC2010")
    with open(os.path.join(src, "ImageSets", "SegmentationContext", "train.txt")) as f:
        ids = f.read().split()
    assert len(ids) == 3
    for image_id in ids:
        label_map = scipy.io.loadmat(os.path.join(src, "trainval", f"{image_id}.mat"))["LabelMap"]
        image = _array(os.path.join(src, "JPEGImages", f"{image_id}.jpg"))
        assert label_map.dtype == np.uint16 and label_map.shape == image.shape[:2]
        assert 0 <= label_map.min() and label_map.max() <= 459


def test_coco_loads_through_detectron2_builtin(demo_datasets):
    with open(os.path.join(demo_datasets, "coco", "annotations", "instances_train2017.json")) as f:
        raw = json.load(f)
    # all 80 categories with their real ids, like the real file
    assert [(c["id"], c["name"]) for c in raw["categories"]] == \
        [(c["id"], c["name"]) for c in COCO_CATEGORIES if c["isthing"]]
    records = DatasetCatalog.get("coco_2017_train")
    meta = MetadataCatalog.get("coco_2017_train")
    assert len(meta.thing_classes) == 80 and meta.thing_classes[0] == "person"
    assert len(records) == 3
    per_image = {}
    for a in raw["annotations"]:
        per_image.setdefault(a["image_id"], []).append(a)
    id_map = meta.thing_dataset_id_to_contiguous_id
    total = 0
    for r in records:
        image = _array(r["file_name"])
        assert image.shape == (r["height"], r["width"], 3)
        anns = per_image.get(r["image_id"], [])
        assert len(r["annotations"]) == len(anns)
        for obj, a in zip(r["annotations"], anns):
            assert obj["category_id"] == id_map[a["category_id"]]
            assert obj["iscrowd"] == 0
            x, y, w, h = obj["bbox"]
            assert 0 <= x and 0 <= y and x + w <= r["width"] and y + h <= r["height"]
            polys = obj["segmentation"]
            assert polys and all(len(p) >= 6 and len(p) % 2 == 0 for p in polys)
            # the polygons cover (almost) the annotated area
            rle = mask_util.merge(mask_util.frPyObjects(polys, r["height"], r["width"]))
            assert abs(float(mask_util.area(rle)) - a["area"]) <= 0.35 * a["area"], a
        total += len(anns)
    assert total > 0


def _tree_files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_generator_is_deterministic_by_seed(dataset_script, tmp_path):
    gen = dataset_script("generate_demo_data")
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        gen.generate(str(tmp_path / name), seed=seed, num_train=1, num_val=1)
    files = _tree_files(tmp_path / "a")
    assert files == _tree_files(tmp_path / "b")
    labels = [f for f in files if f.endswith((".png", ".json")) and "leftImg8bit" not in f]
    assert len(labels) > 10
    for f in files:
        if f.endswith(".mat"):  # the MAT header holds a creation time; compare the arrays
            a, b = (scipy.io.loadmat(tmp_path / n / f)["LabelMap"] for n in "ab")
            np.testing.assert_array_equal(a, b)
        else:
            assert filecmp.cmp(tmp_path / "a" / f, tmp_path / "b" / f, shallow=False), f
    # another seed gives other scenes
    differing = [f for f in labels if not filecmp.cmp(tmp_path / "a" / f, tmp_path / "c" / f, shallow=False)]
    assert len(differing) == len(labels)


def test_generator_rejects_unknown_dataset_names(dataset_script, tmp_path):
    with pytest.raises(ValueError, match="cityscape"):
        dataset_script("generate_demo_data").generate(str(tmp_path), datasets=["cityscape"])


def _tree_sha256(root):
    """One SHA-256 over every file's relative path and content (a .mat file: its LabelMap array, since the
    MAT header holds a creation time)."""
    digest = hashlib.sha256()
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = os.path.join(folder, name)
            if name.endswith(".mat"):
                data = np.ascontiguousarray(scipy.io.loadmat(path)["LabelMap"]).tobytes()
            else:
                with open(path, "rb") as f:
                    data = f.read()
            digest.update(os.path.relpath(path, root).encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


# The hash of the four datasets at seed 0, 1 train / 1 val image each, as the single-file generator wrote
# them before it was split into datasets/demo_data/ (same Python environment: PNG / JPEG encoders included).
SEED0_SHA256 = "6a397ebc4e1cf7d98d84138a56c116600f7e04be351f004b08966f866c67041c"


def test_seed_0_writes_the_same_bytes_as_before(dataset_script, tmp_path):
    dataset_script("generate_demo_data").generate(str(tmp_path), seed=0, num_train=1, num_val=1)
    assert _tree_sha256(tmp_path) == SEED0_SHA256
