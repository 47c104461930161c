"""benchmarks/coco_demo_seeds.py: the paired statistics of its table (no training)."""
import sys

import pytest


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, "benchmarks")
    import coco_demo_seeds

    return coco_demo_seeds


def test_table_pairs_each_method_with_the_student_and_kd_seed_by_seed(bench):
    results = {
        "student": {1: {"bbox/AP": 10.0, "segm/AP": 8.0}, 2: {"bbox/AP": 12.0, "segm/AP": 9.0}},
        "apd": {1: {"bbox/AP": 11.0, "segm/AP": 8.0}, 2: {"bbox/AP": 12.5, "segm/AP": 8.5}},
        "kd": {1: {"bbox/AP": 9.0, "segm/AP": 7.0}},  # one seed finished: no interval, paired on seed 1 only
    }
    table = bench.summarise(results, ["student", "apd", "kd"], [1, 2])
    box, mask = table.split("mask AP")
    # differences 1.0, 0.5: mean 0.75, sd 0.354, t_{0.975,1} = 12.706 → half-width 3.18
    assert "| + dense APD + KD | 2 | 11.75 ± 1.06 | 11.00, 12.50 | +0.75 [-2.43, +3.93] (2/2) | +2.00 (1/1) | — |" in box
    assert "| + logit KD on the ROI scores | 1 | 9.00 | 9.00 | -1.00 (0/1) | — | — |" in box
    assert "| Student alone | 2 | 11.00 ± 1.41 | 10.00, 12.00 | — | +1.00 (1/1) | — |" in box
    assert "| + dense APD + KD | 2 | 8.25 ± 0.35 | 8.00, 8.50 | -0.25 [" in mask


def test_an_interval_that_excludes_zero_is_marked(bench):
    results = {"student": {s: {"bbox/AP": 10.0, "segm/AP": 8.0} for s in (1, 2, 3)},
               "apd": {s: {"bbox/AP": 11.0 + 0.1 * s, "segm/AP": 8.0} for s in (1, 2, 3)},
               "fpnmimic": {s: {"bbox/AP": 11.0, "segm/AP": 8.0} for s in (1, 2, 3)}}
    box = bench.summarise(results, ["student", "apd", "fpnmimic"], [1, 2, 3]).split("mask AP")[0]
    # vs the student: +1.1, +1.2, +1.3; vs FPN imitation: +0.1, +0.2, +0.3 (t_{0.975,2} · 0.1 / √3 = 0.25)
    assert "| **+1.20 [+0.95, +1.45] (3/3)** | — | +0.20 [-0.05, +0.45] (3/3) |" in box
