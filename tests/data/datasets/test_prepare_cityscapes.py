"""datasets/prepare_cityscapes.py: label images exactly as cityscapesscripts draws them."""
import glob
import json
import os
import shutil

import numpy as np
import pytest
from cityscapesscripts.helpers.labels import id2label
from cityscapesscripts.preparation.json2labelImg import json2labelImg
from PIL import Image


def _array(path):
    return np.asarray(Image.open(path))


def test_prepared_labels_match_a_direct_cityscapesscripts_call(demo_datasets_root, tmp_path):
    json_file = sorted(glob.glob(os.path.join(demo_datasets_root, "cityscapes", "gtFine", "val", "*",
                                              "*_gtFine_polygons.json")))[0]
    for suffix, encoding in (("labelTrainIds", "trainIds"), ("labelIds", "ids")):
        direct = tmp_path / f"{suffix}.png"
        json2labelImg(json_file, str(direct), encoding)
        prepared = json_file.replace("polygons.json", f"{suffix}.png")
        np.testing.assert_array_equal(_array(prepared), _array(direct))
    train_ids = _array(json_file.replace("polygons.json", "labelTrainIds.png"))
    label_ids = _array(json_file.replace("polygons.json", "labelIds.png"))
    assert set(np.unique(train_ids).tolist()) <= set(range(19)) | {255}
    # trainIds are the official mapping of the label ids (cityscapesscripts' labels.py)
    lut = np.array([id2label[i].trainId if i in id2label else 255 for i in range(256)], np.int64)
    lut[lut < 0] = 255
    np.testing.assert_array_equal(lut[label_ids], train_ids)


def test_hand_made_polygons_give_expected_ids(dataset_script, tmp_path):
    # 8x6 image: "road" covers rows 3..5 (labelId 7, trainId 0), a "car" covers columns 0..2 of
    # rows 0..2 (26, 13), an "ego vehicle" covers columns 6..7 of rows 0..1 (1, 255); the rest
    # (columns 3..5 of rows 0..2, columns 6..7 of row 2) is unlabeled (0, 255).
    gt_dir = tmp_path / "gtFine" / "train" / "testcity"
    gt_dir.mkdir(parents=True)
    annotation = {"imgHeight": 6, "imgWidth": 8, "objects": [
        {"label": "road", "polygon": [[0, 3], [7, 3], [7, 5], [0, 5]]},
        {"label": "car", "polygon": [[0, 0], [2, 0], [2, 2], [0, 2]]},
        {"label": "ego vehicle", "polygon": [[6, 0], [7, 0], [7, 1], [6, 1]]},
    ]}
    (gt_dir / "testcity_000000_000019_gtFine_polygons.json").write_text(json.dumps(annotation))
    n = dataset_script("prepare_cityscapes").prepare_cityscapes(str(tmp_path), splits=["train"])
    assert n == 1
    train_ids = _array(gt_dir / "testcity_000000_000019_gtFine_labelTrainIds.png")
    label_ids = _array(gt_dir / "testcity_000000_000019_gtFine_labelIds.png")
    assert train_ids.shape == (6, 8)
    assert (train_ids[3:, :] == 0).all() and (label_ids[3:, :] == 7).all()
    assert (train_ids[:3, :3] == 13).all() and (label_ids[:3, :3] == 26).all()
    assert (train_ids[:3, 3:6] == 255).all() and (label_ids[:3, 3:6] == 0).all()
    assert (label_ids[:2, 6:] == 1).all() and (train_ids[:2, 6:] == 255).all()
    assert (label_ids[2, 6:] == 0).all() and (train_ids[2, 6:] == 255).all()


def test_skip_existing_keeps_label_files(dataset_script, demo_datasets_root, tmp_path):
    src = os.path.join(demo_datasets_root, "cityscapes", "gtFine", "val")
    shutil.copytree(src, tmp_path / "gtFine" / "val")
    label = sorted(glob.glob(str(tmp_path / "gtFine" / "val" / "*" / "*_labelTrainIds.png")))[0]
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(label)  # a stale file
    prep = dataset_script("prepare_cityscapes")
    prep.prepare_cityscapes(str(tmp_path), splits=["val"], skip_existing=True)
    assert _array(label).shape == (2, 2)
    prep.prepare_cityscapes(str(tmp_path), splits=["val"])
    assert _array(label).shape == (256, 512)


def test_missing_split_folder_is_named(dataset_script, tmp_path):
    prep = dataset_script("prepare_cityscapes")
    with pytest.raises(FileNotFoundError, match=r"gtFine/train"):
        prep.prepare_cityscapes(str(tmp_path), splits=["train"])
    with pytest.raises(SystemExit, match=r"error: .*gtFine/val.* not found"):
        prep.main(["--root", str(tmp_path), "--splits", "val"])
