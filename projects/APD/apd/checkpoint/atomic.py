"""A DetectionCheckpointer whose files are written atomically, never poisoned, and read safely.

A run killed while saving must leave the previous checkpoint (and the ``last_checkpoint`` tag) loadable:
each file is written to a temporary name in the same folder, flushed, and moved into place with
``os.replace``, which is atomic on POSIX file systems.

A checkpoint with a NaN/inf parameter, buffer (BN running statistics) or optimiser state is never written
nor tagged as the last one: :meth:`AtomicCheckpointer.save` raises
:class:`~apd.checkpoint.io.NonFiniteCheckpointError` naming the tensors, so ``--resume`` restarts from the
last finite checkpoint. Every load (``train.init_checkpoint``, ``--resume``, ``--eval-only``) reads the
file through :func:`apd.checkpoint.io.load_checkpoint`: restricted unpickling for ``.pkl``,
``weights_only=True`` and an archive CRC check for ``.pth``, NaN/inf refused.

Detectron2 loads non-strictly and only logs the keys that do not fit, so an init checkpoint with the wrong
names used to train from random weights without a word. Here:

- a distiller (a model with a ``student`` child) given a checkpoint of student keys without the
  ``student.`` prefix (an ImageNet backbone converted for the student config, ``backbone.*``, or a
  student-only checkpoint) loads them into ``model.student``; model-zoo files that need Detectron2's
  name-matching heuristics are matched against the student alone (with ``save_teacher=True`` the
  distiller's state dict holds the teacher's identical names, and Detectron2 gave up as ambiguous);
- a plain model (no ``student`` child) given a checkpoint every key of which carries the ``student.``
  prefix (a distiller's student-only file, e.g. a stand-in backbone) loads them without it; a distiller's
  full checkpoint (teacher or term tensors beside the student's) is not cut down here
  (``tools/export_student.py`` does that, strictly);
- a checkpoint none of whose tensors fits a model key (name and shape), or more than half of whose
  tensors fit none, is refused with one line (:class:`~apd.checkpoint.io.CheckpointError`) before anything
  is loaded.
"""
import os
import tempfile
import zipfile
from typing import Any, Dict
from urllib.parse import urlparse

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.checkpoint.c2_model_loading import align_and_update_state_dicts
from detectron2.utils import comm
from torch import nn

from ..errors import MissingFileError
from .io import CheckpointError, check_finite, load_checkpoint
from .keys import STUDENT_PREFIX, format_keys, strip_prefix, without_ddp_prefix

__all__ = ["AtomicCheckpointer", "atomic_torch_save", "atomic_write_bytes", "atomic_write_text"]


def _umask() -> int:
    """The process's file-creation mask, read without changing it where Linux allows (``os.umask`` can only
    be read by setting it, which would race with files other threads create meanwhile)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write(path: str, write_fn, mode: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        # mkstemp creates the file 0600; give it the permissions open() would (0666 less the umask), so a
        # checkpoint is readable by whoever could read one written without the rename.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_torch_save(obj, path: str) -> None:
    """``torch.save(obj, path)`` through a temporary file + rename."""
    _atomic_write(path, lambda f: torch.save(obj, f), "wb")


def atomic_write_text(path: str, text: str) -> None:
    _atomic_write(path, lambda f: f.write(text), "w")


def atomic_write_bytes(path: str, data: bytes) -> None:
    _atomic_write(path, lambda f: f.write(data), "wb")


class AtomicCheckpointer(DetectionCheckpointer):
    """:class:`DetectionCheckpointer` with atomic ``save`` and ``tag_last_checkpoint``, a NaN/inf check
    before every save and safe, verified reads (see the module docstring)."""

    def save(self, name: str, **kwargs) -> None:
        if not self.save_dir:
            return
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        # On every process (not only the one that writes), so that all of them stop together.
        last = self._last_tag()
        check_finite(data, save_file, action="Refusing to write checkpoint", note=(
            f"; last_checkpoint still names {last}" if last else "; no checkpoint was written"))
        if not self.save_to_disk:
            return
        self.logger.info(f"Saving checkpoint to {save_file}")
        atomic_torch_save(data, save_file)
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        atomic_write_text(os.path.join(self.save_dir, "last_checkpoint"), last_filename_basename)

    def _last_tag(self) -> str:
        try:
            with open(os.path.join(self.save_dir, "last_checkpoint")) as f:
                return f.read().strip()
        except OSError:
            return ""

    def load(self, path: str, *args, **kwargs) -> Dict[str, Any]:
        # fvcore asserts `os.path.isfile` (an AssertionError with a traceback); name the problem instead.
        # Only where the file must exist: in multi-process runs another rank may legitimately lack it.
        if path and "://" not in path and comm.is_main_process():
            local = urlparse(path)._replace(query="").geturl()
            if os.path.isdir(local):
                raise CheckpointError(f"Checkpoint '{path}' is a directory, not a checkpoint file")
            if not os.path.exists(local):
                raise MissingFileError(f"Checkpoint not found: '{path}'")
        self._loading = path
        try:
            return super().load(path, *args, **kwargs)
        finally:
            self._loading = None

    _loading = None

    def _load_model(self, checkpoint: Dict[str, Any]):
        source = self._loading or "checkpoint"
        student = getattr(self.model, "student", None)
        target = student if isinstance(student, nn.Module) else None
        if checkpoint.get("matching_heuristics", False):
            # Detectron2's name matching, done here so that a distiller matches against its student only.
            self._convert_ndarray_to_tensor(checkpoint["model"])
            reference = (target or self.model).state_dict()
            aligned = align_and_update_state_dicts(
                reference, checkpoint["model"], c2_conversion=checkpoint.get("__author__") == "Caffe2")
            checkpoint["model"] = {(STUDENT_PREFIX if target is not None else "") + k: v for k, v in aligned.items()}
            checkpoint["matching_heuristics"] = False
        elif target is not None:
            checkpoint["model"] = self._onto_student(checkpoint["model"], source)
        else:
            checkpoint["model"] = self._off_student(checkpoint["model"], source)
        self._check_fits(checkpoint["model"], source)
        # What the load left out (missing keys, shape mismatches), for callers that need every tensor.
        self.incompatible = super()._load_model(checkpoint)
        return self.incompatible

    incompatible = None

    def _onto_student(self, state: Dict[str, Any], source: str) -> Dict[str, Any]:
        """``state`` with student keys saved without the ``student.`` prefix moved under it."""
        state = without_ddp_prefix(state)
        if any(k.startswith(STUDENT_PREFIX) for k in state):
            return state  # a distiller's own checkpoint
        names = set(self.model.state_dict())
        moved = [k for k in state if k not in names and STUDENT_PREFIX + k in names]
        if not moved:
            return state
        self.logger.info(f"'{source}' holds {len(moved)} student tensors without the '{STUDENT_PREFIX}' prefix "
                         f"(e.g. {moved[0]}): loading them into model.student")
        moved_set = set(moved)
        return {(STUDENT_PREFIX + k if k in moved_set else k): v for k, v in state.items()}

    def _off_student(self, state: Dict[str, Any], source: str) -> Dict[str, Any]:
        """``state`` without the ``student.`` prefix when every key carries it and the (plain) model's keys
        do not: a distiller's student-only file (a stand-in backbone) for the student alone."""
        if not state or not all(k.startswith(STUDENT_PREFIX) for k in state) or any(
                k.startswith(STUDENT_PREFIX) for k in self.model.state_dict()):
            return state
        self.logger.info(f"'{source}' holds only '{STUDENT_PREFIX}'-prefixed tensors ({len(state)}): loading them "
                         f"without the prefix into the plain {type(self.model).__name__}")
        return strip_prefix(state, STUDENT_PREFIX)

    def _check_fits(self, state: Dict[str, Any], source: str) -> None:
        """Refuse a checkpoint none of whose tensors fits the model, or most of whose tensors fit nothing."""
        if not state:
            raise CheckpointError(f"Checkpoint '{source}' holds no model tensors")
        state = without_ddp_prefix(state)
        slots = {**dict(self.model.named_parameters()), **dict(self.model.named_buffers())}
        misfits = [k for k, v in state.items()
                   if k not in slots or tuple(getattr(v, "shape", ())) != tuple(slots[k].shape)]
        if 2 * len(misfits) > len(state):
            distiller_file = any(k.startswith(STUDENT_PREFIX) for k in state) and not any(
                k.startswith(STUDENT_PREFIX) for k in slots)
            hint = (" (a distiller's checkpoint for the plain student: tools/export_student.py)"
                    if distiller_file else "")
            raise CheckpointError(
                f"Checkpoint '{source}' does not fit {type(self.model).__name__}: {len(misfits)} of its "
                f"{len(state)} tensors match no model key and shape (e.g. {format_keys(misfits, 4)}); the "
                f"model's keys look like {format_keys(list(slots), 3)}. Convert it with tools/convert_*.py "
                f"(with --prefix student. for a distiller) or check train.init_checkpoint{hint}")

    def _load_file(self, filename: str) -> Dict[str, Any]:
        """Detectron2's file formats, read through :func:`apd.checkpoint.io.load_checkpoint`."""
        if filename.endswith(".pkl") and zipfile.is_zipfile(filename):  # a torch.save file named .pkl
            data = self._torch_load(filename)
            return data if "model" in data else {"model": data}
        if filename.endswith(".pkl"):
            data = self._torch_load(filename)  # restricted unpickling: load_checkpoint tells .pkl by its name
            if "model" in data and "__author__" in data:  # Detectron2 model zoo
                self.logger.info(f"Reading a file from '{data['__author__']}'")
                return data
            # Caffe2 / Detectron1 model zoo (detection models keep their weights under "blobs")
            blobs = data.get("blobs", data)
            blobs = {k: v for k, v in blobs.items() if not k.endswith("_momentum")}
            return {"model": blobs, "__author__": "Caffe2", "matching_heuristics": True}
        if filename.endswith(".pyth"):  # pycls
            data = load_checkpoint(filename)
            if not isinstance(data, dict) or "model_state" not in data:
                raise CheckpointError(
                    f"Cannot load .pyth file '{filename}': pycls checkpoints must contain 'model_state'")
            state = {k: v for k, v in data["model_state"].items() if not k.endswith("num_batches_tracked")}
            return {"model": state, "__author__": "pycls", "matching_heuristics": True}
        return super()._load_file(filename)  # calls self._torch_load for .pth and the rest

    def _torch_load(self, f: str) -> Dict[str, Any]:
        """:func:`~apd.checkpoint.io.load_checkpoint` of ``f``, which must hold a dict."""
        data = load_checkpoint(f)
        if not isinstance(data, dict):
            raise CheckpointError(f"Checkpoint '{f}' holds a {type(data).__name__}, not a dict")
        return data
