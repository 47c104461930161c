"""datasets/prepare_ade20k.py: release labels (0 = other, 1..150) -> Detectron2's (0..149, 255)."""
import os

import numpy as np
import pytest
from PIL import Image


def test_values_shift_by_one_and_other_becomes_ignore(dataset_script):
    prep = dataset_script("prepare_ade20k")
    raw = np.array([[0, 1, 2], [149, 150, 0]], np.uint8)
    # 0 -> 255 (ignore), v -> v - 1
    expected = np.array([[255, 0, 1], [148, 149, 255]], np.uint8)
    np.testing.assert_array_equal(prep.to_detectron2_labels(raw), expected)


def test_out_of_range_label_names_the_file(dataset_script):
    prep = dataset_script("prepare_ade20k")
    with pytest.raises(ValueError, match=r"bad\.png: label value 151 > 150"):
        prep.to_detectron2_labels(np.array([[151]], np.uint8), source="bad.png")


def test_demo_conversion_matches_the_rule(demo_datasets_root):
    base = os.path.join(demo_datasets_root, "ADEChallengeData2016")
    for split in ("training", "validation"):
        names = sorted(os.listdir(os.path.join(base, "annotations", split)))
        assert names == sorted(os.listdir(os.path.join(base, "annotations_detectron2", split)))
        for f in names:
            raw = np.asarray(Image.open(os.path.join(base, "annotations", split, f))).astype(np.int64)
            out = np.asarray(Image.open(os.path.join(base, "annotations_detectron2", split, f)))
            np.testing.assert_array_equal(out, np.where(raw == 0, 255, raw - 1))


def test_missing_annotations_are_named(dataset_script, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"annotations/training"):
        dataset_script("prepare_ade20k").prepare_ade20k(str(tmp_path))
