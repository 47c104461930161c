"""benchmarks/coco_demo_seeds.py: the paired statistics of its table (no training)."""
import sys

import pytest


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, "benchmarks")
    import coco_demo_seeds

    return coco_demo_seeds


def test_paired_interval_is_the_t_interval_of_the_differences(bench):
    mean, half = bench.paired_interval([1.0, 2.0, 3.0])  # mean 2, sd 1, n 3: t_{0.975,2} = 4.303
    assert mean == pytest.approx(2.0) and half == pytest.approx(4.303 / 3 ** 0.5)
    assert bench.paired_interval([0.5]) == (0.5, None)


def test_table_pairs_each_method_with_the_student_seed_by_seed(bench):
    results = {
        "student": {1: {"bbox/AP": 10.0, "segm/AP": 8.0}, 2: {"bbox/AP": 12.0, "segm/AP": 9.0}},
        "apd": {1: {"bbox/AP": 11.0, "segm/AP": 8.0}, 2: {"bbox/AP": 12.5, "segm/AP": 8.5}},
        "kd": {1: {"bbox/AP": 9.0, "segm/AP": 7.0}},  # one seed finished: no interval, paired on seed 1 only
    }
    table = bench.summarise(results, ["student", "apd", "kd"], [1, 2])
    box = table.split("mask AP")[0]
    assert "| + dense APD + KD | 2 | 11.75 ± 1.06 | 11.00, 12.50 | +0.75 [" in box and "| 2/2 |" in box
    assert "| + logit KD on the ROI scores | 1 | 9.00 | 9.00 | -1.00 | 0/1 |" in box
    assert "| + dense APD + KD | 2 | 8.25 ± 0.35 | 8.00, 8.50 | -0.25 [" in table.split("mask AP")[1]
