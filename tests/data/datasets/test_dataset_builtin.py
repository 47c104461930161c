"""apd.data.datasets.check_dataset_root: one-line errors naming the missing path and the fix."""
import os
import shutil

import pytest

from apd.data.datasets import check_dataset_root, register_all

CASES = [
    ("cityscapes_fine_sem_seg_train", "cityscapes/leftImg8bit/train", "run datasets/prepare_cityscapes.py"),
    ("ade20k_sem_seg_val", "ADEChallengeData2016/images/validation", "run datasets/prepare_ade20k.py"),
    ("pascal_context_59_sem_seg_train", "pascal_context/images/train", "run datasets/prepare_pascal_context.py"),
    ("pascal_context_60_sem_seg_val", "pascal_context/images/val", "run datasets/prepare_pascal_context.py"),
    ("coco_2017_train", "coco/train2017", "download COCO 2017 into it"),
]


@pytest.mark.parametrize("name,path,fix", CASES)
def test_missing_root_names_path_and_fix(register_datasets_at, tmp_path, name, path, fix):
    root = tmp_path / "missing"
    register_datasets_at(root)
    with pytest.raises(FileNotFoundError) as info:
        check_dataset_root(name)
    message = str(info.value)
    expected = (f"Dataset '{name}' expects {root / path} (not found). "
                f"Set DETECTRON2_DATASETS or {fix}; see datasets/README.md")
    assert message == expected
    assert "\n" not in message


@pytest.mark.parametrize("name", [c[0] for c in CASES] + ["cityscapes_fine_sem_seg_val", "coco_2017_val"])
def test_generated_data_passes(demo_datasets, name):
    check_dataset_root(name)  # raises if anything is missing


@pytest.mark.parametrize("missing, split, shown", [
    # trainIds are what prepare_cityscapes.py writes for training
    ("*_labelTrainIds.png", "train", r"\*_gtFine_labelTrainIds\.png"),
    # the official evaluation reads *_gtFine_labelIds.png: missing ones would only fail the final
    # evaluation, after the whole training (with train.eval_teacher=False)
    ("*_labelIds.png", "val", r"val/\*/\*_gtFine_labelIds\.png"),
])
def test_cityscapes_without_labels_points_to_prepare_script_before_training(
        register_datasets_at, demo_datasets_root, tmp_path, missing, split, shown):
    shutil.copytree(demo_datasets_root / "cityscapes" / "leftImg8bit", tmp_path / "cityscapes" / "leftImg8bit")
    shutil.copytree(demo_datasets_root / "cityscapes" / "gtFine", tmp_path / "cityscapes" / "gtFine",
                    ignore=shutil.ignore_patterns(missing))
    register_datasets_at(tmp_path)
    with pytest.raises(FileNotFoundError, match=shown + r" \(no such files\)\. .*run datasets/prepare_cityscapes\.py"):
        check_dataset_root(f"cityscapes_fine_sem_seg_{split}")


@pytest.mark.parametrize("which", [0, -1])
def test_cityscapes_image_without_its_label_is_named_first_or_last(
        register_datasets_at, demo_datasets_root, tmp_path, which):
    """Detectron2 asserts on the first image's label only ("Please generate labelTrainIds.png ..."), naming
    no file; a later one failed in the loader. Each missing label is now named before training."""
    shutil.copytree(demo_datasets_root / "cityscapes", tmp_path / "cityscapes")
    labels = sorted((tmp_path / "cityscapes" / "gtFine" / "train").glob("*/*_gtFine_labelTrainIds.png"))
    assert len(labels) >= 2
    labels[which].unlink()
    register_datasets_at(tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        check_dataset_root("cityscapes_fine_sem_seg_train")
    message = str(info.value)
    image = str(labels[which]).replace("gtFine_labelTrainIds", "leftImg8bit").replace("/gtFine/", "/leftImg8bit/")
    assert message.startswith(f"Dataset 'cityscapes_fine_sem_seg_train' expects {labels[which]} (the label of {image}; "
                              f"1 of {len(labels)} images have no labelTrainIds label). ")
    assert "run datasets/prepare_cityscapes.py" in message and "\n" not in message


def test_unregistered_name_is_a_key_error():
    with pytest.raises(KeyError, match="not_a_dataset"):
        check_dataset_root("not_a_dataset")


def test_register_all_skips_registered_names(register_datasets_at, tmp_path):
    register_datasets_at(tmp_path)
    assert register_all(os.fspath(tmp_path / "other")) == []
