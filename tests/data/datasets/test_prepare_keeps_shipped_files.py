"""The preparation scripts never overwrite what a dataset ships; they write what is missing and say
what they kept."""
import glob
import hashlib
import os
import shutil

import numpy as np
from PIL import Image


def _digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _digests(pattern):
    return {p: _digest(p) for p in sorted(glob.glob(pattern, recursive=True))}


def test_cityscapes_shipped_label_ids_stay_byte_identical(dataset_script, demo_datasets_root, tmp_path, capsys):
    shutil.copytree(os.path.join(demo_datasets_root, "cityscapes", "gtFine", "val"), tmp_path / "gtFine" / "val")
    shipped = sorted(glob.glob(str(tmp_path / "gtFine" / "val" / "*" / "*_gtFine_labelIds.png")))
    assert len(shipped) == 2
    # The release's labelIds differ from a redraw of the polygons at object edges: mimic that.
    ids = np.asarray(Image.open(shipped[0])).copy()
    ids[100, :] = 0
    Image.fromarray(ids).save(shipped[0])
    before = _digest(shipped[0])
    os.remove(shipped[1])  # a missing one is written
    prep = dataset_script("prepare_cityscapes")
    prep.main(["--root", str(tmp_path), "--splits", "val"])
    assert _digest(shipped[0]) == before
    assert os.path.exists(shipped[1])
    train_ids = np.asarray(Image.open(shipped[1].replace("labelIds", "labelTrainIds")))
    assert train_ids.shape == (256, 512)
    out = capsys.readouterr().out
    assert "*_gtFine_labelIds.png: wrote 1, kept 1 existing (shipped with the dataset, never overwritten)" in out
    assert "*_gtFine_labelTrainIds.png: wrote 2, kept 0" in out


def test_ade20k_release_annotations_stay_byte_identical(dataset_script, demo_datasets_root, tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    shutil.copytree(os.path.join(demo_datasets_root, "ADEChallengeData2016"), root)
    shutil.rmtree(root / "annotations_detectron2")
    before = _digests(str(root / "annotations" / "**" / "*.png")) | _digests(str(root / "images" / "**" / "*.jpg"))
    assert dataset_script("prepare_ade20k").prepare_ade20k(str(root)) == 5
    after = _digests(str(root / "annotations" / "**" / "*.png")) | _digests(str(root / "images" / "**" / "*.jpg"))
    assert after == before and len(before) == 10


def test_pascal_context_images_already_in_place_are_not_deleted(dataset_script, demo_datasets_root, tmp_path):
    """--images pointing at the output folder with --link: the old code removed each image, then
    linked the path to itself, destroying the only copy."""
    src = os.path.join(demo_datasets_root, "VOCdevkit", "VOC2010")
    dst = tmp_path / "pascal_context"
    in_place = dst / "images" / "val"
    shutil.copytree(os.path.join(src, "JPEGImages"), in_place)
    before = _digests(str(in_place / "2009_*.jpg"))
    assert len(before) == 2
    prep = dataset_script("prepare_pascal_context")
    counts = prep.prepare_pascal_context(src, str(dst), splits=["val"], image_dir=str(in_place), link=True)
    assert counts == {"val": 2}
    assert _digests(str(in_place / "2009_*.jpg")) == before
    assert not any(os.path.islink(p) for p in before)
    # and the same without --link (shutil.copyfile refused a copy onto itself)
    prep.prepare_pascal_context(src, str(dst), splits=["val"], image_dir=str(in_place))
    assert _digests(str(in_place / "2009_*.jpg")) == before
