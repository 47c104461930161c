"""PASCAL-Context: our registrations and datasets/prepare_pascal_context.py."""
import os

import numpy as np
import pytest
import scipy.io
from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog

from apd.data.datasets import (
    PASCAL_CONTEXT_59_CLASSES,
    PASCAL_CONTEXT_59_SOURCE_IDS,
    PASCAL_CONTEXT_60_CLASSES,
    register_pascal_context,
)


def _array(path):
    return np.asarray(Image.open(path))


def test_class_lists():
    assert len(PASCAL_CONTEXT_59_CLASSES) == 59 and len(set(PASCAL_CONTEXT_59_CLASSES)) == 59
    assert PASCAL_CONTEXT_60_CLASSES == ("background",) + PASCAL_CONTEXT_59_CLASSES
    # the release's labels.txt is alphabetical, so ids and names are sorted alike
    assert list(PASCAL_CONTEXT_59_CLASSES) == sorted(PASCAL_CONTEXT_59_CLASSES)
    assert dict(zip(PASCAL_CONTEXT_59_CLASSES, PASCAL_CONTEXT_59_SOURCE_IDS))["person"] == 284


@pytest.mark.parametrize("n,classes", [(59, PASCAL_CONTEXT_59_CLASSES), (60, PASCAL_CONTEXT_60_CLASSES)])
def test_registrations_load_generated_data(demo_datasets, n, classes):
    valid = set(range(59)) | {255} if n == 59 else set(range(60))
    for split, num in (("train", 3), ("val", 2)):
        name = f"pascal_context_{n}_sem_seg_{split}"
        meta = MetadataCatalog.get(name)
        assert list(meta.stuff_classes) == list(classes)
        assert meta.evaluator_type == "sem_seg" and meta.ignore_label == 255
        records = DatasetCatalog.get(name)
        assert len(records) == num
        for r in records:
            image, label = _array(r["file_name"]), _array(r["sem_seg_file_name"])
            assert image.shape[:2] == label.shape and image.shape[2] == 3
            assert set(np.unique(label).tolist()) <= valid, r["sem_seg_file_name"]
            assert os.path.basename(r["file_name"])[:-4] == os.path.basename(r["sem_seg_file_name"])[:-4]


def test_pc59_is_pc60_without_background(demo_datasets):
    for r59, r60 in zip(DatasetCatalog.get("pascal_context_59_sem_seg_train"),
                        DatasetCatalog.get("pascal_context_60_sem_seg_train")):
        pc59 = _array(r59["sem_seg_file_name"]).astype(np.int64)
        pc60 = _array(r60["sem_seg_file_name"]).astype(np.int64)
        np.testing.assert_array_equal(pc59, np.where(pc60 == 0, 255, pc60 - 1))
        assert (pc60 == 0).any() and (pc60 > 0).any()  # the demo has background and classes


def test_register_is_idempotent(register_datasets_at, tmp_path):
    register_datasets_at(tmp_path)  # all names registered under tmp_path
    assert register_pascal_context(str(tmp_path / "elsewhere")) == []
    assert MetadataCatalog.get("pascal_context_59_sem_seg_val").image_root == \
        os.path.join(str(tmp_path), "pascal_context", "images", "val")


def test_full_labels_map_to_pc60_and_pc59(dataset_script):
    prep = dataset_script("prepare_pascal_context")
    # 0 unlabeled and 1 (not among the 59) -> background; 2 aeroplane (first class),
    # 284 person (37th class), 458 wood (59th class).
    full = np.array([[0, 1, 2], [284, 458, 459]], np.uint16)
    expected60 = np.array([[0, 0, 1], [37, 59, 0]], np.uint8)
    np.testing.assert_array_equal(prep.full_to_pc60(full), expected60)
    expected59 = np.array([[255, 255, 0], [36, 58, 255]], np.uint8)
    np.testing.assert_array_equal(prep.pc60_to_pc59(expected60), expected59)
    with pytest.raises(ValueError, match=r"x\.mat: LabelMap values must be in \[0, 459\], got \[0, 460\]"):
        prep.full_to_pc60(np.array([[0, 460]], np.uint16), source="x.mat")


def _write_release(src, ids_by_split, label_map):
    for folder in ("JPEGImages", "trainval", os.path.join("ImageSets", "Main")):
        os.makedirs(os.path.join(src, folder), exist_ok=True)
    for split, ids in ids_by_split.items():
        with open(os.path.join(src, "ImageSets", "Main", f"{split}.txt"), "w") as f:
            f.write("\n".join(ids) + "\n")
        for image_id in ids:
            Image.fromarray(np.zeros(label_map.shape + (3,), np.uint8)).save(
                os.path.join(src, "JPEGImages", f"{image_id}.jpg"))
            scipy.io.savemat(os.path.join(src, "trainval", f"{image_id}.mat"), {"LabelMap": label_map})


def test_prepare_from_a_hand_made_release(dataset_script, tmp_path):
    src, dst = tmp_path / "VOC2010", tmp_path / "pascal_context"
    # sky (360, class 47 of 60) above bag (9, class 2 of 60) and an unlisted id (3)
    label_map = np.array([[360, 360], [9, 3]], np.uint16)
    _write_release(str(src), {"train": ["2008_000002"], "val": ["2008_000003", "2008_000007"]}, label_map)
    counts = dataset_script("prepare_pascal_context").prepare_pascal_context(str(src), str(dst))
    assert counts == {"train": 1, "val": 2}  # split files from ImageSets/Main (no SegmentationContext)
    pc60 = _array(dst / "annotations_detectron2" / "pc60" / "val" / "2008_000007.png")
    pc59 = _array(dst / "annotations_detectron2" / "pc59" / "val" / "2008_000007.png")
    np.testing.assert_array_equal(pc60, np.array([[47, 47], [2, 0]], np.uint8))
    np.testing.assert_array_equal(pc59, np.array([[46, 46], [1, 255]], np.uint8))
    assert (dst / "images" / "train" / "2008_000002.jpg").is_file()


def test_prepare_errors_name_the_file(dataset_script, tmp_path):
    prep = dataset_script("prepare_pascal_context")
    src = tmp_path / "VOC2010"
    _write_release(str(src), {"train": ["a"]}, np.zeros((2, 2), np.uint16))
    scipy.io.savemat(str(src / "trainval" / "a.mat"), {"Other": np.zeros((2, 2), np.uint16)})
    with pytest.raises(ValueError, match=r"a\.mat has no 'LabelMap'"):
        prep.prepare_pascal_context(str(src), str(tmp_path / "out"), splits=["train"])
    with pytest.raises(FileNotFoundError, match=r"Main/val\.txt"):
        prep.prepare_pascal_context(str(src), str(tmp_path / "out"), splits=["val"])
    (src / "labels.txt").write_text("1: accordion\n2: airplane\n")
    with pytest.raises(ValueError, match=r"id 2 is 'airplane', expected 'aeroplane'"):
        prep.prepare_pascal_context(str(src), str(tmp_path / "out"), splits=["train"])
    with pytest.raises(SystemExit, match=r"error: .*JPEGImages.* not found"):
        prep.main(["--src", str(tmp_path / "nowhere"), "--dst", str(tmp_path / "out")])
