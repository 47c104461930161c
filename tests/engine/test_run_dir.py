"""apd.engine.run_dir: a run folder's life (refuse to mix runs, move an old run aside, metrics on resume)."""
import json
import os

import pytest

from apd.engine.run_dir import (
    check_output_dir,
    keep_run_config,
    move_previous_run,
    periodic_checkpoints,
    read_run_config,
    restore_run_config,
    truncate_metrics,
)


def test_check_output_dir_refuses_a_folder_with_checkpoints(tmp_path):
    check_output_dir(str(tmp_path / "new"), resume=False, overwrite=False)  # missing folder: fine
    (tmp_path / "log.txt").write_text("x")
    check_output_dir(str(tmp_path), resume=False, overwrite=False)  # no checkpoint: fine
    (tmp_path / "model_0000999.pth").write_bytes(b"0")
    with pytest.raises(FileExistsError, match="--resume"):
        check_output_dir(str(tmp_path), resume=False, overwrite=False)
    check_output_dir(str(tmp_path), resume=True, overwrite=False)
    check_output_dir(str(tmp_path), resume=False, overwrite=True)


def test_move_previous_run_moves_the_old_runs_files_only(tmp_path):
    assert move_previous_run(str(tmp_path / "missing")) is None
    assert move_previous_run(str(tmp_path)) is None  # empty: nothing to move, no folder created
    assert os.listdir(tmp_path) == []
    files = {"model_0000001.pth": b"a", "last_checkpoint": b"model_0000001.pth", "metrics.json": b"{}\n",
             "log.txt": b"log", "config.yaml": b"cfg"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "inference").mkdir()
    (tmp_path / "inference" / "x.json").write_text("1")
    (tmp_path / "events.out.tfevents.1.host.0").write_bytes(b"e")
    (tmp_path / "notes.md").write_text("not the run's")  # e.g. output_dir=. : only run files move
    first = move_previous_run(str(tmp_path), now=0.0)
    assert first == str(tmp_path / "previous_19700101-000000")
    assert sorted(os.listdir(tmp_path)) == ["notes.md", "previous_19700101-000000"]
    assert sorted(os.listdir(first)) == sorted([*files, "inference", "events.out.tfevents.1.host.0"])
    assert {n: (tmp_path / "previous_19700101-000000" / n).read_bytes() for n in files} == files
    assert (tmp_path / "previous_19700101-000000" / "inference" / "x.json").read_text() == "1"
    # A second overwrite in the same second: a new folder, the first one is left where it is.
    (tmp_path / "model_final.pth").write_bytes(b"b")
    second = move_previous_run(str(tmp_path), now=0.0)
    assert second == str(tmp_path / "previous_19700101-000000_1")
    assert sorted(os.listdir(tmp_path)) == ["notes.md", "previous_19700101-000000", "previous_19700101-000000_1"]
    assert os.listdir(second) == ["model_final.pth"]
    check_output_dir(str(tmp_path), resume=False, overwrite=False)  # nothing of a run left at the top


def _write_metrics(path, records):
    with open(path, "w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")


def _train(it):
    return {"iteration": it, "total_loss": float(it)}


def test_truncate_metrics_keeps_each_iteration_before_the_resume_once(tmp_path):
    assert truncate_metrics(str(tmp_path), 3) == 0  # no file
    path = tmp_path / "metrics.json"
    _write_metrics(path, [_train(0), _train(1), _train(2), _train(3), _train(4)])
    with open(path, "a") as f:
        f.write('{"iteration": 5, "total_lo')  # a line cut by SIGKILL
    appender = open(path, "a")  # what Detectron2's JSONWriter holds while train_net.py truncates
    try:
        assert truncate_metrics(str(tmp_path), 3) == 3
        appender.write(json.dumps(_train(3)) + "\n")
    finally:
        appender.close()
    # The writer's records land in the file (an atomic rewrite would have sent them to a deleted inode).
    assert [json.loads(line)["iteration"] for line in path.read_text().splitlines()] == [0, 1, 2, 3]
    assert truncate_metrics(str(tmp_path), 4) == 0  # nothing from 4 on: untouched
    assert truncate_metrics(str(tmp_path), 0) == 4 and path.read_text() == ""  # resume without checkpoint
    assert sorted(os.listdir(tmp_path)) == ["metrics.json"]  # no temp files left


def test_truncate_metrics_keeps_the_final_evaluation_of_the_run_being_resumed(tmp_path):
    # A finished 3-iteration run: Detectron2 logs its final evaluation at iteration 3 (= max_iter).
    path = tmp_path / "metrics.json"
    final_eval = {"iteration": 3, "sem_seg/mIoU": 12.5}
    _write_metrics(path, [_train(0), _train(1), _train(2), final_eval])
    assert truncate_metrics(str(tmp_path), 3) == 0
    # A run killed after an evaluation at iteration 3 that its checkpoint (iteration 1) precedes.
    _write_metrics(path, [_train(0), _train(1), _train(2), {**_train(3), "sem_seg/mIoU": 1.0}])
    assert truncate_metrics(str(tmp_path), 2) == 2


def test_periodic_checkpoints_sorted_by_iteration(tmp_path):
    for name in ("model_0000010.pth", "model_0000002.pth", "model_final.pth", "model_abc.pth", "last_checkpoint"):
        (tmp_path / name).write_bytes(b"0")
    assert periodic_checkpoints(str(tmp_path)) == [str(tmp_path / "model_0000002.pth"),
                                                   str(tmp_path / "model_0000010.pth")]


def test_keep_run_config_restores_the_runs_config_and_keeps_the_new_one_aside(tmp_path):
    (tmp_path / "config.yaml").write_text("train: run\n")
    with keep_run_config(str(tmp_path)):
        (tmp_path / "config.yaml").write_text("train: eval\n")  # what default_setup does
    assert (tmp_path / "config.yaml").read_text() == "train: run\n"
    assert (tmp_path / "config_eval.yaml").read_text() == "train: eval\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "config_eval.yaml"]  # no temp files


def test_restore_run_config_puts_back_the_runs_config_after_a_refused_resume(tmp_path):
    assert read_run_config(str(tmp_path)) is None
    restore_run_config(str(tmp_path), None)  # nothing to put back: nothing written
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "config.yaml").write_text("train: run\n")
    original = read_run_config(str(tmp_path))
    (tmp_path / "config.yaml").write_text("train: other model\n")  # what default_setup does on --resume
    restore_run_config(str(tmp_path), original)
    assert (tmp_path / "config.yaml").read_text() == "train: run\n"
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]  # no temp files


def test_keep_run_config_is_a_no_op_without_a_previous_config_or_change(tmp_path):
    with keep_run_config(str(tmp_path)):
        (tmp_path / "config.yaml").write_text("train: first\n")
    assert (tmp_path / "config.yaml").read_text() == "train: first\n"
    assert not (tmp_path / "config_eval.yaml").exists()
    with keep_run_config(str(tmp_path)):
        pass
    assert not (tmp_path / "config_eval.yaml").exists()


def test_keep_run_config_restores_even_when_the_block_fails(tmp_path):
    (tmp_path / "config.yaml").write_text("train: run\n")
    with pytest.raises(RuntimeError):
        with keep_run_config(str(tmp_path)):
            (tmp_path / "config.yaml").write_text("train: eval\n")
            raise RuntimeError("boom")
    assert (tmp_path / "config.yaml").read_text() == "train: run\n"



_HOLD = """
import sys, time
from apd.engine.run_dir import lock_output_dir
lock_output_dir(sys.argv[1])
print("locked", flush=True)
time.sleep(600)
"""


def test_a_folder_locked_by_a_live_process_is_refused_and_freed_when_it_is_killed(tmp_path):
    import signal
    import socket
    import subprocess
    import sys

    from apd.engine.run_dir import LOCK_NAME, OutputDirInUseError, check_output_dir_free, lock_output_dir, unlock_output_dir

    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert (out / LOCK_NAME).read_text().startswith(f"pid {holder.pid} on {socket.gethostname()} since ")
        before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir()}
        with pytest.raises(OutputDirInUseError, match=f"'{out}' is in use by another run \\(pid {holder.pid} on "):
            check_output_dir_free(str(out))
        with pytest.raises(OutputDirInUseError, match=f"pid {holder.pid}"):  # check_output_dir too
            check_output_dir(str(out), resume=True, overwrite=False)
        with pytest.raises(OutputDirInUseError, match=f"pid {holder.pid}"):
            lock_output_dir(str(out))
        assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir()} == before  # nothing written
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # SIGKILL left the lock file but no lock: the folder is free at once.
    check_output_dir_free(str(out))
    lock_output_dir(str(out))
    try:
        assert (out / LOCK_NAME).read_text().startswith(f"pid {os.getpid()} on ")
    finally:
        unlock_output_dir(str(out))


_HOLD_WITH_FORKED_WORKER = """
import os, sys, time
from apd.engine.run_dir import lock_output_dir
lock_output_dir(sys.argv[1])
worker = os.fork()  # as a data loader worker is forked from the training process
if worker == 0:
    time.sleep(600)
    os._exit(0)
print(worker, flush=True)
time.sleep(600)
"""


def test_a_killed_run_frees_its_folder_while_its_forked_workers_still_run(tmp_path):
    import signal
    import subprocess
    import sys

    from apd.engine.run_dir import OutputDirInUseError, check_output_dir_free

    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_WITH_FORKED_WORKER, str(out)], stdout=subprocess.PIPE,
                              text=True)
    worker = int(holder.stdout.readline())
    try:
        with pytest.raises(OutputDirInUseError):  # the parent still holds the folder
            check_output_dir_free(str(out))
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        os.kill(worker, 0)  # the worker is alive (raises if not) ...
        check_output_dir_free(str(out))  # ... and the folder is free
    finally:
        with __import__("contextlib").suppress(ProcessLookupError):
            os.kill(worker, signal.SIGKILL)
