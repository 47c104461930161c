"""A run folder's life: refuse to mix runs, move an old run aside, keep metrics.json one line per record.

``train_net.py`` calls, on the main process:

- :func:`check_output_dir` before anything is written: a folder in use by a running run is refused
  (:func:`check_output_dir_free`), and a new run into a folder holding another run's checkpoints is
  refused unless ``--resume`` or ``--overwrite``;
- :func:`lock_output_dir` once every check passed: the run owns the folder until its process ends (an
  ``flock`` on ``<output_dir>/.run.lock``, which the OS releases when the process dies, however it dies);
- :func:`move_previous_run` for ``--overwrite``: what the old run wrote (checkpoints,
  ``last_checkpoint``, metrics.json, events, logs, config.yaml) moves into
  ``<output_dir>/previous_<UTC time>/``, so a later ``--resume`` cannot resume the old run and nothing is
  deleted;
- :func:`truncate_metrics` once the start iteration is known: Detectron2's ``JSONWriter`` appends, so a
  run killed after iteration k and resumed from a checkpoint of iteration s − 1 < k would log
  iterations s..k twice; the records from iteration s on are cut first (one in-place ``truncate``);
- :func:`keep_run_config` around ``default_setup`` for ``--eval-only``.
"""
import contextlib
import datetime
import fcntl
import json
import logging
import os
import re
import shutil
import socket
import time
from typing import Iterator, List, Optional

from ..checkpoint.atomic import atomic_write_bytes
from ..errors import UserError

__all__ = [
    "LOCK_NAME", "OutputDirInUseError", "RunDirError", "check_output_dir", "check_output_dir_free", "keep_run_config",
    "lock_output_dir", "move_previous_run", "periodic_checkpoints", "truncate_metrics", "unlock_output_dir",
]

logger = logging.getLogger(__name__)

_CHECKPOINT_MARKERS = ("last_checkpoint", "model_final.pth")
PREVIOUS_PREFIX = "previous_"
_PERIODIC = re.compile(r"^model_(\d{7})\.pth$")


class RunDirError(UserError, FileExistsError):
    """``train.output_dir`` holds another run's checkpoints (and neither --resume nor --overwrite)."""


def _checkpoints(output_dir: str) -> List[str]:
    return [f for f in sorted(os.listdir(output_dir)) if f in _CHECKPOINT_MARKERS or
            (f.startswith("model_") and f.endswith(".pth"))]


LOCK_NAME = ".run.lock"
_held = {}  # realpath of an output folder -> the open lock file descriptor this process holds


def _release_in_forked_child() -> None:
    # A forked child (a data loader worker) shares the lock's open file description; were it to keep the
    # descriptor, the folder would stay locked after the run is killed until the worker notices (seconds).
    # Closing the child's copy leaves the parent's lock in place (flock(2): released when all are closed).
    for fd in _held.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_release_in_forked_child)


class OutputDirInUseError(UserError, FileExistsError):
    """Another running process holds the output folder's lock."""


def _in_use_error(output_dir: str, fd: int) -> OutputDirInUseError:
    os.lseek(fd, 0, os.SEEK_SET)
    holder = os.read(fd, 512).decode("utf-8", "replace").strip() or "a process that has not written its id yet"
    return OutputDirInUseError(
        f"Output folder '{output_dir}' is in use by another run ({holder}). Wait for it to end or stop it "
        f"(a stopped or killed run frees the folder at once), or choose another train.output_dir.")


def check_output_dir_free(output_dir: str) -> None:
    """Refuse a folder that a running run owns (:func:`lock_output_dir`); writes nothing.

    Raises:
        OutputDirInUseError: names the folder and the owner (pid, host, start time).
    """
    path = os.path.join(output_dir or "", LOCK_NAME)
    if not output_dir or not os.path.isfile(path) or os.path.realpath(output_dir) in _held:
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _in_use_error(output_dir, fd) from None
    finally:
        os.close(fd)  # closing the descriptor drops the probe's shared lock


def lock_output_dir(output_dir: str) -> None:
    """Own ``output_dir`` until this process ends: create it and take an exclusive ``flock`` on
    ``<output_dir>/.run.lock``, which then holds ``pid <pid> on <host> since <UTC time>``.

    The lock belongs to the open file, which stays open for the life of this process; processes forked
    from it (data loader workers) close their copy at once, so only this process holds the folder. The OS
    releases the lock when this process exits, also after a crash or SIGKILL, so a killed run frees the
    folder at once, even while its loader workers are still winding down. Locking a folder this process
    already holds does nothing.

    Raises:
        OutputDirInUseError: another process holds the lock (nothing is written then).
    """
    if not output_dir or os.path.realpath(output_dir) in _held:
        return
    os.makedirs(output_dir, exist_ok=True)
    fd = os.open(os.path.join(output_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        error = _in_use_error(output_dir, fd)
        os.close(fd)
        raise error from None
    since = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {since}\n".encode(), 0)
    _held[os.path.realpath(output_dir)] = fd


def unlock_output_dir(output_dir: str) -> None:
    """Give up the lock :func:`lock_output_dir` took in this process (the lock file stays)."""
    fd = _held.pop(os.path.realpath(output_dir), None)
    if fd is not None:
        os.close(fd)


def check_output_dir(output_dir: str, *, resume: bool, overwrite: bool) -> None:
    """Refuse a folder in use by a running run (:func:`check_output_dir_free`), and refuse to start a
    new run into a folder that holds another run's checkpoints.

    Raises:
        OutputDirInUseError: another running process owns the folder.
        RunDirError: ``output_dir`` has checkpoints and neither ``resume`` nor ``overwrite`` is set.
    """
    check_output_dir_free(output_dir)
    if resume or overwrite or not output_dir or not os.path.isdir(output_dir):
        return
    found = _checkpoints(output_dir)
    if found:
        raise RunDirError(
            f"Output directory '{output_dir}' already holds checkpoints of another run ({', '.join(found[:5])}). "
            "Use --resume to continue it, choose another train.output_dir, or pass --overwrite to replace them."
        )


# What a run writes into its folder (Detectron2's checkpointer, writers, default_setup, evaluators; our
# atomic writes' temporaries). Only these move: an output_dir pointed at a folder with other files
# (say ".") keeps them.
_RUN_FILES = re.compile(
    r"^(model_.*\.pth|last_checkpoint|metrics\.json|events\.out\.tfevents\..*|log\.txt.*|config(_eval)?\.yaml"
    r"|inference|\..*\.tmp)$")


def move_previous_run(output_dir: str, now: Optional[float] = None) -> Optional[str]:
    """Move what a previous run wrote into ``output_dir`` into a new
    ``<output_dir>/previous_<YYYYmmdd-HHMMSS>/`` (UTC; ``_1``, ``_2``… appended if taken).

    Moved: checkpoints (``model_*.pth``, ``last_checkpoint``), ``metrics.json``, TensorBoard events,
    ``log.txt*``, ``config.yaml``/``config_eval.yaml``, ``inference/`` and hidden ``*.tmp`` files. Other
    entries, earlier ``previous_*`` folders among them, stay where they are.

    Args:
        output_dir: the run folder (may not exist). now: seconds since the epoch (default: the clock).

    Returns:
        The new folder's path, or None when there was nothing to move.
    """
    if not output_dir or not os.path.isdir(output_dir):
        return None
    entries = [e for e in sorted(os.listdir(output_dir)) if _RUN_FILES.match(e)]
    if not entries:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    dest, n = os.path.join(output_dir, PREVIOUS_PREFIX + stamp), 0
    while os.path.exists(dest):
        n += 1
        dest = os.path.join(output_dir, f"{PREVIOUS_PREFIX}{stamp}_{n}")
    os.makedirs(dest)
    for e in entries:
        shutil.move(os.path.join(output_dir, e), os.path.join(dest, e))
    return dest


def _resumed_run_keeps(record, start_iter: int) -> bool:
    it = record.get("iteration") if isinstance(record, dict) else None
    if not isinstance(it, int):
        return False
    # Detectron2 logs a finished run's final evaluation at iteration = max_iter (after_train), i.e. at
    # the resumed run's start iteration: that evaluation of the checkpoint being resumed is kept.
    return it < start_iter or (it == start_iter and "total_loss" not in record)


def truncate_metrics(output_dir: str, start_iter: int, name: str = "metrics.json") -> int:
    """Cut ``<output_dir>/<name>`` before its first record that a run starting at ``start_iter`` logs again.

    That is the first record with ``iteration > start_iter``, or ``== start_iter`` with training scalars
    (``total_loss``), or that is not a JSON object with an integer ``iteration`` (a line cut by a kill).
    Records are in the order they were logged, so what is cut is the tail a killed run logged after its
    last checkpoint. The file is cut in place with one ``truncate`` call: a crash leaves the old or the
    new length, and Detectron2's ``JSONWriter``, which already holds the file open for appending, keeps
    writing to it (a rewrite under a new inode would send its records to a deleted file).

    Returns:
        The number of lines cut (0 when the file does not exist or nothing is cut).
    """
    path = os.path.join(output_dir or "", name)
    if not output_dir or not os.path.isfile(path):
        return 0
    with open(path, "rb+") as f:
        data = f.read()
        offset, cut = 0, None
        lines = data.split(b"\n")
        for i, line in enumerate(lines):
            if line.strip():
                try:
                    keep = _resumed_run_keeps(json.loads(line), start_iter)
                except ValueError:
                    keep = False
                if not keep:
                    cut = offset
                    dropped = sum(1 for rest in lines[i:] if rest.strip())
                    break
            offset += len(line) + 1
        if cut is None:
            return 0
        f.truncate(cut)
        f.flush()
        os.fsync(f.fileno())
    return dropped


def periodic_checkpoints(output_dir: str, prefix: str = "model") -> List[str]:
    """Paths of ``<prefix>_<7 digits>.pth`` files in ``output_dir``, oldest iteration first."""
    if not output_dir or not os.path.isdir(output_dir):
        return []
    pattern = _PERIODIC if prefix == "model" else re.compile(rf"^{re.escape(prefix)}_(\d{{7}})\.pth$")
    found = [(int(m.group(1)), f) for f in os.listdir(output_dir) if (m := pattern.match(f))]
    return [os.path.join(output_dir, f) for _, f in sorted(found)]


def read_run_config(output_dir: str, name: str = "config.yaml") -> Optional[bytes]:
    """The bytes of ``<output_dir>/<name>``, or None when there is none (what :func:`restore_run_config` puts back)."""
    path = os.path.join(output_dir or "", name)
    if output_dir and os.path.isfile(path):
        with open(path, "rb") as f:
            return f.read()
    return None


def restore_run_config(output_dir: str, original: Optional[bytes], name: str = "config.yaml") -> None:
    """Put a run's ``config.yaml`` back (atomically) after a refused ``--resume``.

    Detectron2's ``default_setup`` writes the new config before the model exists; a ``--resume`` refused
    later (another model, another teacher: apd.engine.resume) must leave the run's folder as it was.
    No-op when ``original`` is None or the file is unchanged.
    """
    path = os.path.join(output_dir or "", name)
    if original is None or read_run_config(output_dir, name) == original:
        return
    atomic_write_bytes(path, original)
    logger.info(f"Refused --resume: put the run's {name} in {output_dir} back")


@contextlib.contextmanager
def keep_run_config(output_dir: str, name: str = "config.yaml", moved_to: str = "config_eval.yaml") -> Iterator[None]:
    """Keep a training run's ``config.yaml`` when something inside the block rewrites it.

    ``--eval-only`` into a training folder goes through Detectron2's ``default_setup``, which writes the
    evaluation's config over the run's. On leaving the block, a changed ``<output_dir>/<name>`` is
    moved to ``<moved_to>`` and the run's own file is put back (both writes atomic). No-op when the
    folder has no ``<name>`` yet.
    """
    path = os.path.join(output_dir or "", name)
    original = None
    if output_dir and os.path.isfile(path):
        with open(path, "rb") as f:
            original = f.read()
    try:
        yield
    finally:
        if original is not None and os.path.isfile(path):
            with open(path, "rb") as f:
                written = f.read()
            if written != original:
                atomic_write_bytes(os.path.join(output_dir, moved_to), written)
                atomic_write_bytes(path, original)
                logger.info(f"Kept the run's {name} in {output_dir}; this evaluation's config is {moved_to}")
