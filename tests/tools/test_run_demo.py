"""tools/run_demo.py: its task tables point at real configs, and it reads the final score of a run."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
import run_demo  # noqa: E402


@pytest.mark.parametrize("task", sorted(run_demo.TASKS))
def test_task_tables_are_complete(task):
    spec = run_demo.TASKS[task]
    assert set(spec["runs"]) == set(spec["labels"]) >= {"teacher", "student", "kd", "apd"}
    for name, (config, needs_teacher) in spec["runs"].items():
        assert os.path.isfile(config), config
        assert needs_teacher == (name not in ("teacher", "student"))
    assert spec["dataset"] in ("cityscapes", "coco")


def test_final_metrics_reads_the_last_entry_with_the_task_metric(tmp_path):
    rows = [{"iteration": 99, "total_loss": 1.0}, {"iteration": 100, "bbox/AP": 3.0, "segm/AP": 2.0},
            {"iteration": 200, "bbox/AP": 7.5, "segm/AP": 6.0}, {"iteration": 201, "total_loss": 0.5}]
    (tmp_path / "metrics.json").write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken")
    last = run_demo.final_metrics(str(tmp_path), "bbox/AP")
    assert last["iteration"] == 200 and last["bbox/AP"] == 7.5
    assert run_demo.final_metrics(str(tmp_path), "sem_seg/mIoU") is None
    assert run_demo.final_metrics(str(tmp_path / "missing")) is None


def test_unknown_run_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "coco" / "annotations").mkdir(parents=True)  # data "present": nothing is generated
    with pytest.raises(SystemExit) as e:
        run_demo.main(["--task", "coco", "--data-root", str(tmp_path), "--output", str(tmp_path / "out"),
                       "--runs", "student,bogus"])
    assert e.value.code == 2 and "bogus" in capsys.readouterr().err
