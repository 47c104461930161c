"""Broken dataset files give one error naming the file (not sys.exit, not an anonymous KeyError)."""
import json
import shutil

import pytest
from detectron2.data import DatasetCatalog


@pytest.mark.parametrize("content, message", [
    ({"imgHeight": 4, "imgWidth": 4, "objects": [{"label": "notaclass", "polygon": [[0, 0], [3, 0], [3, 3]]}]},
     r"unknown label\(s\) \['notaclass'\]"),
    ("", r"not valid JSON"),
])
def test_cityscapes_polygon_file_errors_name_the_file(dataset_script, tmp_path, content, message, capsys):
    gt_dir = tmp_path / "gtFine" / "train" / "x"
    gt_dir.mkdir(parents=True)
    json_file = gt_dir / "x_000000_000019_gtFine_polygons.json"
    json_file.write_text(content if isinstance(content, str) else json.dumps(content))
    prep = dataset_script("prepare_cityscapes")
    with pytest.raises(ValueError, match=message) as info:  # cityscapesscripts called sys.exit here
        prep.prepare_cityscapes(str(tmp_path), ["train"])
    assert str(json_file) in str(info.value)
    with pytest.raises(SystemExit, match=r"error: .*polygons\.json"):
        prep.main(["--root", str(tmp_path), "--splits", "train"])


@pytest.mark.parametrize("mutation, message", [
    ("empty", r"not valid JSON"),
    ("unknown_category", r"1 annotation\(s\) \(ids \d+\) have a category_id that is not in 'categories'"),
])
def test_coco_json_errors_name_the_file(demo_datasets_root, tmp_path, register_datasets_at, mutation, message):
    root = tmp_path / "data"
    shutil.copytree(demo_datasets_root / "coco", root / "coco")
    json_file = root / "coco" / "annotations" / "instances_val2017.json"
    if mutation == "empty":
        json_file.write_text("")
    else:
        data = json.loads(json_file.read_text())
        data["annotations"][0]["category_id"] = 9999
        json_file.write_text(json.dumps(data))
    register_datasets_at(root)
    with pytest.raises(ValueError, match=message) as info:
        DatasetCatalog.get("coco_2017_val")
    assert str(json_file) in str(info.value)
