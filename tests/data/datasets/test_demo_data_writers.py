"""The demo data's format writers (datasets/demo_data/{cityscapes,ade20k,pascal_context,coco}.py) on a
hand-made scene and a flat image: no scene generator, no renderer."""
import importlib
import json
import os

import numpy as np
import pytest
import scipy.io
from PIL import Image

H, W = 40, 60


@pytest.fixture(scope="module")
def demo_data(dataset_script):
    dataset_script("generate_demo_data")  # puts datasets/ on sys.path for its demo_data package
    return lambda name: importlib.import_module(f"demo_data.{name}")


def _scene(demo_data, labels):
    """A background rectangle and a 20×10 box on top of it, labelled ``labels``; its object map."""
    Shape, rasterize = demo_data("shapes").Shape, demo_data("shapes").rasterize
    shapes = [Shape(labels[0], "flat", [[[0, 0], [W - 1, 0], [W - 1, H - 1], [0, H - 1]]], 0),
              Shape(labels[1], "flat", [[[10, 5], [29, 5], [29, 14], [10, 14]]], 1)]
    return shapes, rasterize(shapes, H, W)


def _image():
    return np.full((H, W, 3), (200, 100, 50), np.uint8)


def test_cityscapes_sample_files(demo_data, tmp_path):
    shapes, objmap = _scene(demo_data, ("road", "car"))
    demo_data("cityscapes").write_sample(str(tmp_path), str(tmp_path), "x_000000_000019", _image(), shapes, objmap)
    image = np.asarray(Image.open(tmp_path / "x_000000_000019_leftImg8bit.png"))
    assert image.shape == (H, W, 3) and (image == (200, 100, 50)).all()  # RGB order kept
    polygons = json.loads((tmp_path / "x_000000_000019_gtFine_polygons.json").read_text())
    assert (polygons["imgHeight"], polygons["imgWidth"]) == (H, W)
    assert [o["label"] for o in polygons["objects"]] == ["road", "car"]
    assert polygons["objects"][1]["polygon"] == [[10, 5], [29, 5], [29, 14], [10, 14]]
    instances = np.asarray(Image.open(tmp_path / "x_000000_000019_gtFine_instanceIds.png"))
    label_ids = np.asarray(Image.open(tmp_path / "x_000000_000019_gtFine_labelIds.png"))
    # road (labelId 7) has no instances; car (26) is instance 0 of its class: 26000
    assert set(np.unique(instances).tolist()) == {7, 26000}
    assert instances[10, 20] == 26000 and instances[30, 50] == 7
    assert label_ids[10, 20] == 26 and label_ids[30, 50] == 7


def test_ade20k_and_pascal_context_sample_label_maps(demo_data, tmp_path):
    shapes, objmap = _scene(demo_data, (3, 150))
    demo_data("ade20k").write_sample(str(tmp_path), str(tmp_path), "ADE_train_00000001", _image(), shapes, objmap)
    labels = np.asarray(Image.open(tmp_path / "ADE_train_00000001.png"))
    assert labels.dtype == np.uint8 and labels[10, 20] == 150 and labels[30, 50] == 3
    assert Image.open(tmp_path / "ADE_train_00000001.jpg").size == (W, H)

    shapes, objmap = _scene(demo_data, (19, 459))  # source ids of the 459-category release: uint16
    demo_data("pascal_context").write_sample(str(tmp_path), str(tmp_path), "2008_000001", _image(), shapes, objmap)
    label_map = scipy.io.loadmat(tmp_path / "2008_000001.mat")["LabelMap"]
    assert label_map.dtype == np.uint16 and label_map.shape == (H, W)
    assert label_map[10, 20] == 459 and label_map[30, 50] == 19


def test_coco_sample_annotations(demo_data, tmp_path):
    coco = demo_data("coco")
    shapes, objmap = _scene(demo_data, (None, 3))  # unlabelled background, a car
    annotations = []
    record = coco.write_sample(str(tmp_path), 7, _image(), shapes, objmap, annotations, first_id=1)
    assert record == {"license": 1, "file_name": "000000000007.jpg", "height": H, "width": W, "id": 7}
    assert os.path.isfile(tmp_path / "000000000007.jpg")
    (ann,) = annotations  # the background has no label: no annotation
    assert ann["category_id"] == 3 and ann["image_id"] == 7 and ann["iscrowd"] == 0 and ann["id"] == 100
    assert ann["bbox"] == [10.0, 5.0, 20.0, 10.0] and ann["area"] == 200.0
    xs, ys = ann["segmentation"][0][0::2], ann["segmentation"][0][1::2]
    assert (min(xs), max(xs), min(ys), max(ys)) == (10.5, 29.5, 5.5, 14.5)  # pixel centres
    # below min_area the instance is left out
    small = []
    coco.write_sample(str(tmp_path), 8, _image(), shapes, objmap, small, 1, min_area=201)
    assert small == []
    path = tmp_path / "instances.json"
    coco.write_annotations(str(path), [record], annotations, coco.categories())
    data = json.loads(path.read_text())
    assert len(data["categories"]) == 80 and data["annotations"] == annotations
