"""The COCO mapper: Detectron2's DatasetMapper output, the project's reader, bad samples named or skipped."""
import os

import numpy as np
import pytest
from detectron2.config import LazyConfig, instantiate
from detectron2.data import DatasetMapper
from detectron2.data import transforms as T
from detectron2.data.common import MapDataset
from PIL import Image

from apd.data.detection_mapper import DetectionDatasetMapper
from apd.data.image_io import BadSampleError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _record(tmp_path, name="a.jpg", seed=0):
    rng = np.random.RandomState(seed)
    small = rng.randint(0, 256, (12, 16, 3)).astype(np.uint8)
    Image.fromarray(small).resize((64, 48), Image.BICUBIC).save(tmp_path / name, quality=90)
    return {
        "file_name": str(tmp_path / name), "image_id": seed, "height": 48, "width": 64,
        "annotations": [{"bbox": [4, 6, 30, 20], "bbox_mode": 1, "category_id": 3, "iscrowd": 0,
                         "segmentation": [[4, 6, 34, 6, 34, 26, 4, 26]]}],
    }


def _truncate(path):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])


def _mappers(**kwargs):
    args = dict(is_train=True, augmentations=[T.ResizeShortestEdge(32, 64), T.RandomFlip()],
                image_format="BGR", use_instance_mask=True)
    return DetectionDatasetMapper(**args, **kwargs), DatasetMapper(**args)


def test_same_output_as_detectron2s_mapper(tmp_path):
    ours, theirs = _mappers()
    record = _record(tmp_path)
    for seed in range(4):  # flips drawn and not drawn
        np.random.seed(seed)
        a = ours(dict(record))
        np.random.seed(seed)
        b = theirs(dict(record))
        assert (a["image"] == b["image"]).all()
        assert (a["instances"].gt_boxes.tensor == b["instances"].gt_boxes.tensor).all()
        assert (a["instances"].gt_classes == b["instances"].gt_classes).all()
        assert [p.tolist() for p in a["instances"].gt_masks.polygons[0]] == \
               [p.tolist() for p in b["instances"].gt_masks.polygons[0]]


def test_truncated_jpeg_is_named_and_skipped_when_asked(tmp_path):
    good, bad = _record(tmp_path, "good.jpg", 0), _record(tmp_path, "bad.jpg", 1)
    _truncate(bad["file_name"])
    strict, _ = _mappers()
    with pytest.raises(BadSampleError, match=f"Cannot read image {bad['file_name']}: "):
        strict(dict(bad))
    skipping, _ = _mappers(skip_bad_samples=True)
    assert skipping(dict(bad)) is None and skipping.num_skipped == 1
    # Detectron2's MapDataset draws another record in place of the skipped one.
    out = MapDataset([bad, good], skipping)[0]
    assert out["file_name"] == good["file_name"] and skipping.num_skipped == 2
    # At test time a bad image always raises: a substitute would be evaluated in its place.
    test_mapper = DetectionDatasetMapper(is_train=False, augmentations=[], image_format="BGR",
                                         skip_bad_samples=True)
    with pytest.raises(BadSampleError, match="bad.jpg"):
        test_mapper(dict(bad))


def test_size_mismatch_is_a_bad_sample(tmp_path):
    record = dict(_record(tmp_path), height=50)
    mapper, _ = _mappers(skip_bad_samples=True)
    assert mapper(record) is None and mapper.num_skipped == 1


def test_coco_configs_take_skip_bad_samples(tmp_path):
    cfg = LazyConfig.load(os.path.join(REPO, "configs/COCO-InstanceSegmentation/mask_rcnn_R_18_FPN_demo.py"))
    cfg.dataloader.train.mapper.skip_bad_samples = True
    mapper = instantiate(cfg.dataloader.train.mapper)
    record = _record(tmp_path)
    _truncate(record["file_name"])
    assert isinstance(mapper, DetectionDatasetMapper) and mapper(record) is None
