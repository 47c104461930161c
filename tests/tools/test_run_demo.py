"""tools/run_demo.py: its task tables point at real configs, and it reads the final score of a run."""
import json
import os
import subprocess
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
    assert set(spec["default_runs"].split(",")) <= set(spec["runs"])


def test_seg_demo_generates_at_least_100_val_images_and_uses_the_committed_pretrained_weights():
    from detectron2.config import LazyConfig

    spec = run_demo.TASKS["seg"]
    assert spec["num_val"] >= 100 and spec["gen_args"][spec["gen_args"].index("--num-val") + 1] == str(spec["num_val"])
    assert "teacher" not in spec["default_runs"].split(",")  # the demo teacher is committed
    student = LazyConfig.load(spec["runs"]["student"][0])
    apd = LazyConfig.load(spec["runs"]["apd"][0])
    # the ImageNet stand-in, through the key a real config uses for ImageNet weights
    assert student.train.init_checkpoint == "checkpoints/demo/standin_r18_quarter.pth"
    assert apd.train.init_checkpoint == "checkpoints/demo/standin_r18_quarter_student.pth"
    assert apd.model.teacher_weights == spec["teacher_weights"]
    for path in (student.train.init_checkpoint, apd.train.init_checkpoint, spec["teacher_weights"]):
        assert os.path.isfile(path), path


def test_data_ready_counts_the_val_images(tmp_path):
    val = tmp_path / "cityscapes" / "gtFine" / "val" / "lindau"
    val.mkdir(parents=True)
    assert not run_demo.data_ready(str(tmp_path), "seg")
    n = run_demo.TASKS["seg"]["num_val"]
    for i in range(n - 1):
        (val / f"x{i}_gtFine_labelTrainIds.png").write_bytes(b"")
    (val / "x_gtFine_polygons.json").write_text("{}")
    assert not run_demo.data_ready(str(tmp_path), "seg")  # an older, smaller demo set is regenerated
    (val / "last_gtFine_labelTrainIds.png").write_bytes(b"")
    assert run_demo.data_ready(str(tmp_path), "seg")


def test_progress_reads_iterations_and_evaluation_from_whole_log_lines(tmp_path):
    log = tmp_path / "stdout.log"
    log.write_text("[d2] config dump ...\n[d2.utils.events]:  eta: 0:01:00  iter: 9  total_loss: 2.0\n"
                   "[d2.evaluation.evaluator]: Inference done 11/128. Dataloading: 0.0 s/iter\n[d2] iter: 19  tot")
    it, ev, pos = run_demo._progress(str(log), 0)
    assert (it, ev) == (9, (11, 128))  # the unfinished last line is read next time
    with open(log, "a") as f:
        f.write("al_loss: 1.0\n")
    it, ev, pos2 = run_demo._progress(str(log), pos)
    assert (it, ev) == (19, None) and pos2 == os.path.getsize(log)


def test_train_with_progress_keeps_the_logs_in_the_run_folder_and_reports_failures(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.txt").write_text("iter: 99  an earlier run\n")  # stale until the new run replaces it
    script = ("import os, sys, time; out = sys.argv[1]; os.replace(os.path.join(out, 'log.txt'), out + '_old.txt'); "
              "print('lots of config'); f = open(os.path.join(out, 'log.txt'), 'w'); "
              "f.write('iter: 1  loss\\n'); f.flush(); time.sleep(0.2); f.write('iter: 3  loss\\n')")
    wall = run_demo.train_with_progress([sys.executable, "-c", script, str(run)], str(run), dict(os.environ), 4,
                                        "student", poll_s=0.05)
    assert wall >= 0 and "lots of config" in (run / "stdout.log").read_text()
    assert not os.path.exists(run_demo.console_log(str(run)))
    assert "lots of config" not in capsys.readouterr().out  # the console gets the bar, not the log
    bad = [sys.executable, "-c", "import sys; print('the reason'); sys.exit(3)"]
    with pytest.raises(subprocess.CalledProcessError):
        run_demo.train_with_progress(bad, str(tmp_path / "bad"), dict(os.environ), 4, "kd", poll_s=0.05)
    assert "the reason" in capsys.readouterr().err


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
