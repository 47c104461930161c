"""What ``--resume`` refuses: a checkpoint of another model, and a distiller run whose teacher changed.

Detectron2's checkpointer loads non-strictly: after a model change (say ``sem_seg_head.channels``) it
logs "skip loading" and the run crashed later in the optimiser step with a raw size mismatch. A
distiller resumed with another ``model.teacher_weights`` distilled from the new teacher silently,
although its adapters were trained against the old one.

- :func:`check_resume_checkpoint`: the checkpoint's model tensors must be exactly the model's (keys and
  shapes), before anything is loaded.
- :func:`check_weights`: ``--eval-only`` without weights, a checkpoint path that does not exist, before
  anything is built or written.
- :class:`TeacherFingerprint`: a checkpointable that writes a SHA-256 of the teacher's tensors into
  every checkpoint (``teacher_fingerprint``) and refuses to resume when the teacher built now differs.
  Checkpoints written before it existed carry none and are resumed as before.
"""
import hashlib
import os
from typing import Dict, Optional

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ..errors import ConfigValueError, MissingFileError

from ..checkpoint.io import CheckpointError, load_checkpoint, unwrap_state_dict
from ..checkpoint.keys import compare_state_dicts, format_keys

__all__ = ["ResumeMismatchError", "TeacherFingerprint", "check_resume_checkpoint", "check_weights", "fingerprint"]


class ResumeMismatchError(CheckpointError):
    """``--resume`` of a checkpoint that does not belong to the configured run."""


def check_resume_checkpoint(model: nn.Module, path: str, teacher: Optional["TeacherFingerprint"] = None) -> None:
    """Refuse to resume ``path`` into ``model`` unless its model tensors have exactly the model's keys
    and shapes (``num_batches_tracked`` may be absent), and, with ``teacher``, unless the checkpoint's
    ``teacher_fingerprint`` (when it has one) is that teacher's. Reads the file only: call it before
    anything of the run is built or written.

    Raises:
        ResumeMismatchError: one line naming the missing, unexpected and reshaped tensors, or both
            teachers.
    """
    model = model.module if hasattr(model, "module") else model
    checkpoint = load_checkpoint(path)
    if teacher is not None and isinstance(checkpoint, dict) and "teacher_fingerprint" in checkpoint:
        teacher.load_state_dict(checkpoint["teacher_fingerprint"])
    state = unwrap_state_dict(checkpoint, path)
    misfit = compare_state_dicts(model.state_dict(), state)
    missing, unexpected, mismatched = misfit.missing, misfit.unexpected, misfit.mismatched
    if missing or unexpected or mismatched:
        parts = [f"{what} ({len(keys)}): {format_keys(keys, 5)}" for what, keys in (
            ("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)) if keys]
        raise ResumeMismatchError(
            f"--resume: '{path}' holds another model than the config builds: {'; '.join(parts)}. Resume with "
            "the config and overrides the run started with, or start a new run (another train.output_dir, "
            "or --overwrite).")


def fingerprint(module: nn.Module) -> str:
    """SHA-256 (hex) of ``module.state_dict()``: every key, dtype, shape and byte, in key order."""
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class TeacherFingerprint:
    """Checkpointable (``checkpointer.add_checkpointable("teacher_fingerprint", ...)``) holding the
    fingerprint of the teacher this run distils from.

    Args:
        teacher: the built, loaded teacher.
        source: where its weights came from (``model.teacher_weights``), for the message.
    """

    def __init__(self, teacher: nn.Module, source: Optional[str]):
        self.sha256 = fingerprint(teacher)
        self.source = str(source)

    def state_dict(self) -> Dict[str, str]:
        return {"sha256": self.sha256, "file": self.source}

    def load_state_dict(self, state: Dict[str, str]) -> None:
        """Raises:
            ResumeMismatchError: the checkpoint was trained against another teacher."""
        if state.get("sha256") != self.sha256:
            raise ResumeMismatchError(
                f"--resume: this run distilled from the teacher in '{state.get('file')}' (sha256 "
                f"{str(state.get('sha256'))[:12]}…), but model.teacher_weights='{self.source}' holds another "
                f"teacher (sha256 {self.sha256[:12]}…); its adapters were trained against the first one. Resume "
                "with the original teacher file, or start a new run to distil from this one.")


def check_weights(cfg: DictConfig, *, eval_only: bool, resume: bool = False, need_teacher: bool = True) -> None:
    """Refuse weights that cannot be what the user meant, before anything is built or written.

    Raises:
        ConfigValueError: ``eval_only`` and ``train.init_checkpoint`` is empty (a random model would be
            scored).
        MissingFileError: ``train.init_checkpoint`` (when it will be loaded: not when ``resume`` finds a
            checkpoint in ``train.output_dir``) or ``model.teacher_weights`` (when ``need_teacher``) is a
            local path that does not exist.
    """
    init = OmegaConf.select(cfg, "train.init_checkpoint", default="") or ""
    if eval_only and not init:
        raise ConfigValueError(
            "--eval-only needs weights: train.init_checkpoint is empty, so a randomly initialised model would "
            "be scored. Pass train.init_checkpoint=PATH (a training checkpoint or an exported model).")
    output_dir = OmegaConf.select(cfg, "train.output_dir", default="") or ""
    resuming = resume and not eval_only and os.path.isfile(os.path.join(output_dir, "last_checkpoint"))
    if init and not resuming and "://" not in init and not os.path.isfile(init):
        hint = "" if eval_only else (
            " For ImageNet weights convert them with tools/convert_torchvision_backbone.py (see MODEL_ZOO.md); "
            "to train from random weights pass train.init_checkpoint=\"\".")
        raise MissingFileError(f"Checkpoint not found: '{init}' (config key train.init_checkpoint).{hint}")
    teacher = OmegaConf.select(cfg, "model.teacher_weights", default=None)
    if need_teacher and isinstance(teacher, str) and teacher and "://" not in teacher and not os.path.isfile(teacher):
        raise MissingFileError(
            f"Teacher weights not found: '{teacher}' (config key model.teacher_weights). Train the teacher first "
            "or convert a published checkpoint (see MODEL_ZOO.md).")
