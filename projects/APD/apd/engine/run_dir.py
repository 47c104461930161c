"""A run folder's life: refuse to mix runs, move an old run aside, keep metrics.json one line per record.

``train_net.py`` calls, on the main process:

- :func:`check_output_dir` before anything is written: a new run into a folder holding another run's
  checkpoints is refused unless ``--resume`` or ``--overwrite``;
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
import json
import logging
import os
import re
import shutil
import time
from typing import Iterator, List, Optional

from ..checkpoint.atomic import atomic_write_bytes

__all__ = [
    "check_output_dir", "keep_run_config", "move_previous_run", "periodic_checkpoints", "truncate_metrics",
]

logger = logging.getLogger(__name__)

_CHECKPOINT_MARKERS = ("last_checkpoint", "model_final.pth")
PREVIOUS_PREFIX = "previous_"
_PERIODIC = re.compile(r"^model_(\d{7})\.pth$")


def _checkpoints(output_dir: str) -> List[str]:
    return [f for f in sorted(os.listdir(output_dir)) if f in _CHECKPOINT_MARKERS or
            (f.startswith("model_") and f.endswith(".pth"))]


def check_output_dir(output_dir: str, *, resume: bool, overwrite: bool) -> None:
    """Refuse to start a new run into a folder that holds another run's checkpoints.

    Raises:
        FileExistsError: ``output_dir`` has checkpoints and neither ``resume`` nor ``overwrite`` is set.
    """
    if resume or overwrite or not output_dir or not os.path.isdir(output_dir):
        return
    found = _checkpoints(output_dir)
    if found:
        raise FileExistsError(
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
