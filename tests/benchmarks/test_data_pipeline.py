"""Smoke test of benchmarks/data_pipeline.py: every item runs at toy sizes and reports what the tables need.
No assertion depends on speed."""
import os

import pytest

from helpers import load_script

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def bench():
    return load_script(os.path.join(REPO, "benchmarks", "data_pipeline.py"), "bench_data_pipeline")


def test_every_item_runs_at_toy_sizes_and_the_memory_check_passes(bench, tmp_path):
    out = bench.main(["--small", "--items", "cityscapes,coco,loader,memory", "--samples", "1", "--repeats", "1",
                      "--workers", "1", "--loader-samples", "2", "--memory-records", "300",
                      "--memory-samples", "5,40", "--output", str(tmp_path)])
    assert out["cityscapes"]["decode floor (cv2)"]["ratio_to_floor"] == 1.0
    assert set(out["cityscapes"]) == {"decode floor (cv2)", "SemSegDatasetMapper (configs)",
                                      "SemSegDatasetMapper, augmentations one at a time",
                                      "official pipeline (from the recipe)"}
    assert out["clock"] == "wall" and len(out["load_average"]) == 3
    assert set(out["coco"]) == {"decode floor (cv2)", "Detectron2 DatasetMapper", "DetectionDatasetMapper"}
    assert out["loader"]["1 worker(s)"]["median_images_per_s"] > 0
    memory = out["memory"]
    assert memory["dataset_type"] == "DatasetFromList" and memory["records"] == 300
    assert [row["samples"] for row in memory["rows"]] == [5, 40] and len(memory["rows"][0]["worker_private_mib"]) == 2
    assert memory["flat"]
    assert "| decode floor (cv2) |" in (tmp_path / "table.md").read_text()


def test_cpu_clock_times_the_segmentation_tables(bench):
    out = bench.main(["--small", "--items", "ade20k", "--samples", "1", "--repeats", "1", "--clock", "cpu"])
    assert out["clock"] == "cpu" and out["ade20k"]["decode floor (cv2)"]["ratio_to_floor"] == 1.0
    assert all(row["median_ms"] > 0 for row in out["ade20k"].values())


def test_unknown_item_is_refused(bench):
    with pytest.raises(SystemExit):
        bench.main(["--items", "cityscapes,gpu"])
