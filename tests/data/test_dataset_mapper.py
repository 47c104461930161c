import copy
import re

import numpy as np
import pytest
import torch
from detectron2.config import LazyConfig, get_cfg, instantiate
from detectron2.data.common import MapDataset
from detectron2.utils.events import EventStorage
from PIL import Image

from apd.data.dataset_mapper import BadSampleError, SemSegDatasetMapper, has_valid_label, to_chw
from apd.data.transforms import IMAGENET_MEAN_RGB, PadToCrop, build_train_augmentations

K = 19
H, W = 24, 32


def _image(seed=0):
    return np.random.RandomState(seed).randint(0, 256, size=(H, W, 3), dtype=np.uint8)


def _label(ids=(0, 3, 18, 255)):
    cols = np.arange(W) // 4
    return np.broadcast_to(np.asarray(ids, dtype=np.uint8)[cols % len(ids)], (H, W)).copy()


def _write_sample(tmp_path, name="a", image=None, label=None):
    image = _image() if image is None else image
    label = _label() if label is None else label
    img_file = tmp_path / f"{name}.png"
    lbl_file = tmp_path / f"{name}_label.png"
    Image.fromarray(image).save(img_file)
    Image.fromarray(label).save(lbl_file)
    return {"file_name": str(img_file), "sem_seg_file_name": str(lbl_file)}


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _mapper(is_train=False, augmentations=(), **kwargs):
    return SemSegDatasetMapper(
        is_train=is_train, augmentations=list(augmentations), num_classes=K, **kwargs
    )


def test_test_mode_returns_file_contents_as_tensors(tmp_path):
    record = _write_sample(tmp_path)
    original = copy.deepcopy(record)
    out = _mapper()(record)
    assert record == original  # the dataset dict is not modified
    assert out["image"].dtype == torch.uint8 and out["image"].shape == (3, H, W)
    assert out["image"].is_contiguous()
    # RGB order, 0–255, unchanged.
    torch.testing.assert_close(out["image"], torch.as_tensor(_image()).permute(2, 0, 1))
    assert out["sem_seg"].dtype == torch.int64
    torch.testing.assert_close(out["sem_seg"], torch.as_tensor(_label()).long())
    assert (out["height"], out["width"], out["file_name"]) == (H, W, record["file_name"])
    assert "sem_seg_file_name" not in out


def test_bgr_format_reverses_channels(tmp_path):
    out = _mapper(image_format="BGR")(_write_sample(tmp_path))
    bgr = torch.as_tensor(_image()[:, :, ::-1].copy()).permute(2, 0, 1)
    torch.testing.assert_close(out["image"], bgr)


def test_train_mode_crops_and_keeps_original_size(tmp_path):
    np.random.seed(0)
    mapper = _mapper(is_train=True, augmentations=build_train_augmentations(crop_size=(40, 16)))
    out = mapper(_write_sample(tmp_path))
    assert out["image"].shape == (3, 40, 16) and out["sem_seg"].shape == (40, 16)
    assert out["sem_seg"].dtype == torch.int64
    assert set(out["sem_seg"].unique().tolist()) <= {0, 3, 18, 255}
    assert (out["height"], out["width"]) == (H, W)  # the evaluator's output size stays the original


def test_padding_uses_mean_colour_and_ignore_label(tmp_path):
    out = _mapper(is_train=True, augmentations=[PadToCrop((H + 2, W))])(_write_sample(tmp_path))
    # Centred: rows 0 and H+1 are padding, mean (123.675, 116.28, 103.53) → (124, 116, 104) as uint8.
    expected = torch.tensor([[124, 124], [116, 116], [104, 104]], dtype=torch.uint8)
    torch.testing.assert_close(out["image"][:, [0, H + 1], 0], expected)
    assert (out["sem_seg"][[0, H + 1]] == 255).all() and (out["sem_seg"][1 : H + 1] != 255).any()
    assert tuple(round(v) for v in IMAGENET_MEAN_RGB) == (124, 116, 104)


def test_label_with_only_ignore_passes(tmp_path):
    record = _write_sample(tmp_path, label=np.full((H, W), 255, dtype=np.uint8))
    out = _mapper(is_train=True)(record)
    assert (out["sem_seg"] == 255).all()


def test_palette_label_keeps_ids(tmp_path):
    label = Image.fromarray(_label(ids=(1, 2)), mode="L").convert("P")
    label.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))  # id 1 red, id 2 green
    record = _write_sample(tmp_path)
    label.save(record["sem_seg_file_name"])
    out = _mapper()(record)
    # Converting to "L" would give grey levels of red/green (76, 150); ids must stay 1 and 2.
    assert set(out["sem_seg"].unique().tolist()) == {1, 2}


def test_truncated_image_error_names_file(tmp_path):
    record = _write_sample(tmp_path)
    _truncate(tmp_path / "a.png")
    with pytest.raises(ValueError, match="Cannot read image " + re.escape(record["file_name"])):
        _mapper()(record)


def test_corrupt_label_error_names_file(tmp_path):
    record = _write_sample(tmp_path)
    (tmp_path / "a_label.png").write_bytes(b"not a png at all")
    expected = "Cannot read label " + re.escape(record["sem_seg_file_name"])
    with pytest.raises(ValueError, match=expected):
        _mapper()(record)


def test_label_size_mismatch_names_both_files(tmp_path):
    record = _write_sample(tmp_path, label=np.zeros((H, W + 1), dtype=np.uint8))
    with pytest.raises(ValueError) as info:
        _mapper()(record)
    msg = str(info.value)
    assert record["sem_seg_file_name"] in msg and record["file_name"] in msg
    assert f"{H}×{W + 1}" in msg and f"{H}×{W}" in msg


def test_dataset_dict_size_mismatch_names_file(tmp_path):
    record = dict(_write_sample(tmp_path), height=H, width=W + 5)
    with pytest.raises(ValueError, match=re.escape(record["file_name"]) + ".*" + f"{H}×{W + 5}"):
        _mapper()(record)


def test_out_of_range_label_ids_are_reported(tmp_path):
    record = _write_sample(tmp_path, label=_label(ids=(0, 19, 254, 255)))
    # K = 19: valid ids are 0..18 and 255, so 19 and 254 are bad.
    expected = re.escape(record["sem_seg_file_name"]) + r" has ids \[19, 254\]"
    with pytest.raises(ValueError, match=expected):
        _mapper()(record)


@pytest.mark.parametrize("num_classes,ignore", [(19, 255), (150, 255), (19, 0), (19, 100), (256, 255), (1, 254)])
def test_bad_uint8_ids_are_every_value_neither_class_nor_ignore(num_classes, ignore):
    mapper = SemSegDatasetMapper(is_train=False, augmentations=[], num_classes=num_classes, ignore_value=ignore)
    everything = np.arange(256, dtype=np.uint8).reshape(16, 16)
    expected = [v for v in range(256) if v >= num_classes and v != ignore]
    assert mapper._invalid_ids(everything).tolist() == expected
    for value in range(256):  # each id alone: reported exactly when it is bad
        found = mapper._invalid_ids(np.full((3, 5), value, np.uint8)).tolist()
        assert found == ([value] if value in expected else [])


def test_multichannel_label_is_rejected(tmp_path):
    record = _write_sample(tmp_path)
    Image.fromarray(_image(1)).save(record["sem_seg_file_name"])
    expected = re.escape(record["sem_seg_file_name"]) + " has 3 channels"
    with pytest.raises(ValueError, match=expected):
        _mapper()(record)


def test_skip_bad_samples_returns_none_and_counts(tmp_path):
    bad_image = _write_sample(tmp_path, name="b")
    _truncate(tmp_path / "b.png")
    bad_label = _write_sample(tmp_path, name="c", label=_label(ids=(0, 200)))
    mapper = _mapper(is_train=True, skip_bad_samples=True)
    with EventStorage() as storage:
        assert mapper(bad_image) is None
        assert mapper(bad_label) is None
        assert mapper(_write_sample(tmp_path, name="d")) is not None
    assert mapper.num_skipped == 2
    assert storage.history("data/skipped_samples").latest() == 2
    # Outside an EventStorage the count still increments.
    assert mapper(bad_image) is None and mapper.num_skipped == 3


def test_skip_is_training_only_and_missing_files_always_raise(tmp_path):
    bad = _write_sample(tmp_path, name="b")
    _truncate(tmp_path / "b.png")
    with pytest.raises(BadSampleError, match=re.escape(bad["file_name"])):
        _mapper(is_train=False, skip_bad_samples=True)(bad)
    missing = {"file_name": str(tmp_path / "missing.png")}
    with pytest.raises(FileNotFoundError):
        _mapper(is_train=True, skip_bad_samples=True)(missing)


def test_map_dataset_replaces_skipped_sample(tmp_path):
    bad = _write_sample(tmp_path, name="b")
    _truncate(tmp_path / "b.png")
    good = _write_sample(tmp_path, name="g")
    dataset = MapDataset([bad, good], _mapper(is_train=True, skip_bad_samples=True))
    # Index 0 fails → MapDataset retries another index (detectron2/data/common.py).
    assert dataset[0]["file_name"] == good["file_name"]


def test_has_valid_label_is_the_official_60x60_test():
    crop = torch.full((713, 713), 255, dtype=torch.int64)
    assert not has_valid_label(crop)  # the official truncation sees 254.99998 → 254 here: "valid"
    crop[5:8, 5:8] = 3  # between the 60×60 grid's sample points (every 712/59 ≈ 12.07 px): unseen
    assert not has_valid_label(crop)
    crop[0, 0] = 3  # align_corners=True samples the corner pixel exactly
    assert has_valid_label(crop)
    crop = torch.full((473, 473), 7, dtype=torch.uint8)
    assert has_valid_label(crop) and not has_valid_label(crop, ignore_value=7)


@pytest.mark.parametrize("channels,dtype", [(3, np.uint8), (4, np.uint8), (1, np.uint8), (3, np.float32), (5, np.uint8)])
def test_to_chw_is_the_transpose(channels, dtype):
    image = np.random.RandomState(channels).randint(0, 256, (7, 9, channels)).astype(dtype)
    out = to_chw(image)
    assert out.flags.c_contiguous and out.dtype == dtype
    np.testing.assert_array_equal(out, image.transpose(2, 0, 1))


def test_crops_without_a_valid_label_are_redrawn_in_training_only(tmp_path):
    unlabelled = _write_sample(tmp_path, name="u", label=np.full((H, W), 255, dtype=np.uint8))
    labelled = _write_sample(tmp_path, name="l")
    mapper = _mapper(is_train=True, redraw_crops_without_label=True)
    assert mapper(unlabelled) is None and mapper.num_redrawn == 1 and mapper.num_skipped == 0
    assert mapper(labelled) is not None and mapper.num_redrawn == 1
    assert _mapper(is_train=True)(unlabelled) is not None  # off: trained on, as before
    assert _mapper(is_train=False, redraw_crops_without_label=True)(unlabelled) is not None
    # Detectron2's MapDataset draws another record in its place.
    dataset = MapDataset([unlabelled, labelled], mapper)
    assert dataset[0]["file_name"] == labelled["file_name"]


def test_the_mapper_has_no_yacs_path():
    # Built from LazyConfig nodes only: keyword arguments, no Detectron2 yacs CfgNode as first argument.
    with pytest.raises(TypeError):
        SemSegDatasetMapper(get_cfg(), is_train=True)


@pytest.mark.parametrize(
    "name, num_classes, crop, batch, base_size",
    [
        ("cityscapes", 19, 713, 8, 2048),
        ("ade20k", 150, 473, 8, 512),
        ("pascal_context", 59, 473, 12, 512),
    ],
)
def test_segmentation_data_configs_instantiate(tmp_path, name, num_classes, crop, batch, base_size):
    cfg = LazyConfig.load(f"configs/common/data/{name}.py")
    assert set(cfg.keys()) == {"dataloader"}
    assert set(cfg.dataloader.keys()) == {"train", "test", "evaluator"}
    assert cfg.dataloader.train.total_batch_size == batch
    assert cfg.dataloader.evaluator.dataset_name == cfg.dataloader.test.dataset.names
    train_mapper = instantiate(cfg.dataloader.train.mapper)
    test_mapper = instantiate(cfg.dataloader.test.mapper)
    assert train_mapper.is_train and not test_mapper.is_train
    assert train_mapper.num_classes == test_mapper.num_classes == num_classes
    assert train_mapper.ignore_value == test_mapper.ignore_value == 255
    rotate = train_mapper.augmentations.augs[1]
    assert rotate.seg_pad == 255  # interpolated from the mapper's ignore_value
    pad = [a for a in train_mapper.augmentations.augs if isinstance(a, PadToCrop)]
    assert len(pad) == 1 and pad[0].center  # the official centred padding
    assert train_mapper.redraw_crops_without_label and not test_mapper.redraw_crops_without_label
    (resize,) = test_mapper.augmentations.augs
    assert resize.long_edge_length == base_size
    # A small image is padded, then cropped to the recipe's crop.
    np.random.seed(0)
    out = train_mapper(_write_sample(tmp_path, label=_label(ids=(0, 1, 255))))
    assert out["image"].shape == (3, crop, crop) and out["sem_seg"].shape == (crop, crop)
    # Leaf override of the class count reaches the test mapper through interpolation.
    cfg.dataloader.train.mapper.num_classes = 60
    assert instantiate(cfg.dataloader.test.mapper).num_classes == 60


def test_coco_data_config_reexports_detectron2():
    cfg = LazyConfig.load("configs/common/data/coco.py")
    assert set(cfg.dataloader.keys()) == {"train", "test", "evaluator"}
    assert cfg.dataloader.train.dataset.names == "coco_2017_train"
    assert cfg.dataloader.test.dataset.names == "coco_2017_val"


def test_constants_config():
    constants = LazyConfig.load("configs/common/data/constants.py").constants
    assert list(constants.imagenet_rgb256_mean) == list(IMAGENET_MEAN_RGB)
    assert list(constants.imagenet_bgr256_mean) == list(IMAGENET_MEAN_RGB)[::-1]
    assert list(constants.cityscapes_crop_size) == [713, 713]
