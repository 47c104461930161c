"""A DetectionCheckpointer whose files are written atomically.

A run killed while saving must leave the previous checkpoint (and the ``last_checkpoint`` tag) loadable:
each file is written to a temporary name in the same folder, flushed, and moved into place with
``os.replace``, which is atomic on POSIX file systems.
"""
import os
import tempfile

import torch
from detectron2.checkpoint import DetectionCheckpointer

__all__ = ["AtomicCheckpointer", "atomic_torch_save", "atomic_write_bytes", "atomic_write_text"]


def _atomic_write(path: str, write_fn, mode: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
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
    """:class:`DetectionCheckpointer` with atomic ``save`` and ``tag_last_checkpoint``."""

    def save(self, name: str, **kwargs) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {save_file}")
        atomic_torch_save(data, save_file)
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        atomic_write_text(os.path.join(self.save_dir, "last_checkpoint"), last_filename_basename)
