"""The frozen teacher: strict weight loading, freezing, and keeping it out of student checkpoints.

docs/METHOD.md §7.1: the official code loads the teacher with ``strict=False`` after DDP wrapping, so a key
mismatch silently distils a random network. Here every teacher load is strict: missing, unexpected and
shape-mismatched keys are all reported in one error, before any training step.
"""
import logging
import os
from typing import Dict, Optional

import torch
from torch import nn

from ...checkpoint import io as checkpoint_io
from ...checkpoint.keys import compare_state_dicts, format_keys
from ...errors import MissingFileError, UserError

logger = logging.getLogger(__name__)

__all__ = [
    "ChannelSwappedModel",
    "needs_channel_swap",
    "TeacherWeightsError",
    "read_state_dict",
    "load_teacher_weights",
    "freeze",
    "TeacherMixin",
]

# Keys that are bookkeeping, not weights: their absence from a checkpoint is harmless.
_BENIGN_MISSING_SUFFIXES = ("num_batches_tracked",)
# Old Detectron2 checkpoints still store these buffers; Detectron2 itself ignores them.
_BENIGN_UNEXPECTED_SUBSTRINGS = ("anchor_generator.cell_anchors",)


class TeacherWeightsError(UserError, RuntimeError):
    """The teacher checkpoint does not match the teacher architecture (or cannot be read)."""


def read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Read the teacher checkpoint ``path`` into a flat ``{name: tensor}`` dict.

    Reading is :func:`apd.checkpoint.io.read_state_dict` (the project's one checkpoint reader):
    Detectron2 model-zoo ``.pkl`` files through a restricted unpickler, ``.pth``/``.pt`` with
    ``weights_only=True`` after a CRC check of the archive; NaN/inf tensors are refused; the state dict is
    taken from the first of ``model``, ``state_dict``, ``model_state_dict``, ``model_state`` that holds
    one, and a ``module.`` prefix (DDP) is stripped.

    Raises:
        FileNotFoundError: no file at ``path``.
        TeacherWeightsError: empty ``path``, or an unsafe, damaged, poisoned or non-state-dict file.
    """
    if not path:
        raise TeacherWeightsError(
            "No teacher weights given (config key `model.teacher_weights` is empty). Distilling from a "
            "randomly initialised teacher is refused; train or convert a teacher first (see MODEL_ZOO.md)."
        )
    from detectron2.utils.file_io import PathManager

    local = PathManager.get_local_path(path)
    if not os.path.exists(local):
        raise MissingFileError(
            f"Teacher weights not found: '{path}' (config key `model.teacher_weights`). "
            "Train the teacher first or convert a published checkpoint (see MODEL_ZOO.md)."
        )
    try:
        return checkpoint_io.read_state_dict(local)
    except checkpoint_io.CheckpointError as e:
        raise TeacherWeightsError(f"Teacher weights (`model.teacher_weights`): {e}") from None


def load_teacher_weights(model: nn.Module, path: str) -> None:
    """Load ``path`` into ``model`` strictly (after ``module.`` prefix normalisation).

    Raises:
        FileNotFoundError: the file does not exist.
        TeacherWeightsError: unreadable file, or any missing / unexpected / shape-mismatched key
            (all of them listed in the message).
    """
    state = read_state_dict(path)
    misfit = compare_state_dicts(model.state_dict(), state, _BENIGN_UNEXPECTED_SUBSTRINGS).lines()
    if misfit:
        raise TeacherWeightsError("\n  ".join([f"Teacher weights '{path}' do not match the teacher architecture:",
                                               *misfit, "Check `model.teacher` against the config the teacher "
                                               "was trained with."]))
    expected = model.state_dict()
    # Strict load: every key of the model gets a value; benign missing ones (num_batches_tracked) keep
    # the model's own, benign unexpected ones (old anchor buffers) are dropped.
    model.load_state_dict({k: state.get(k, v) for k, v in expected.items()}, strict=True)
    logger.info(f"Loaded teacher weights from {path} ({len(expected)} tensors, strict)")


def freeze(model: nn.Module) -> nn.Module:
    """Put ``model`` in eval mode and stop all its parameters from requiring gradients."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class TeacherMixin:
    """Shared teacher handling for distillers (an ``nn.Module`` with a ``teacher`` child).

    - ``_setup_teacher`` loads the weights strictly (when given) and freezes the teacher.
    - ``train()`` never takes the teacher out of eval mode (BN statistics and dropout stay frozen).
    - ``state_dict()`` leaves the teacher out unless ``save_teacher`` is set, and loading a checkpoint
      without teacher keys does not report them as missing.
    """

    teacher: nn.Module
    save_teacher: bool = False
    teacher_loaded: bool = False

    def _setup_teacher(self, teacher_weights: Optional[str], save_teacher: bool) -> None:
        self.save_teacher = save_teacher
        if teacher_weights in ("None", "none"):  # `model.teacher_weights=None` on the command line
            teacher_weights = None
        self.teacher_weights = teacher_weights
        if teacher_weights:
            load_teacher_weights(self.teacher, teacher_weights)
            self.teacher_loaded = True
        freeze(self.teacher)
        self._register_state_dict_hook(_drop_teacher_from_state_dict)
        self.register_load_state_dict_pre_hook(_note_teacher_keys_in_checkpoint)
        self.register_load_state_dict_post_hook(_ignore_missing_teacher_keys)

    def check_teacher_ready(self) -> None:
        """Raise unless real teacher weights were loaded (refuse to distil a random teacher)."""
        if not self.teacher_loaded and not self.save_teacher_loaded_from_checkpoint:
            raise TeacherWeightsError(
                "The teacher has no weights: set `model.teacher_weights` to the teacher checkpoint. "
                "Distilling from a randomly initialised teacher is refused."
            )

    # Set when a checkpoint that includes the teacher (save_teacher=True) was loaded.
    save_teacher_loaded_from_checkpoint: bool = False

    def train(self, mode: bool = True):
        super().train(mode)  # type: ignore[misc]
        self.teacher.eval()
        return self



_SWAPPABLE_FORMATS = {"RGB", "BGR"}


def needs_channel_swap(student_format: Optional[str], teacher_format: Optional[str]) -> bool:
    """Whether the teacher must see the student's images with reversed channels (RGB <-> BGR).

    Raises:
        ValueError: the two formats cannot be converted into each other.
    """
    if student_format is None or teacher_format is None or student_format == teacher_format:
        return False
    if {student_format, teacher_format} == _SWAPPABLE_FORMATS:
        return True
    raise ValueError(
        f"Cannot feed the teacher (input_format='{teacher_format}') with images in the student's "
        f"input_format '{student_format}': only RGB<->BGR conversion is supported."
    )


class ChannelSwappedModel(nn.Module):
    """Runs ``model`` on Detectron2 inputs whose ``image`` channels are reversed (RGB <-> BGR)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batched_inputs):
        return self.model([{**x, "image": x["image"].flip(0)} for x in batched_inputs])


def _drop_teacher_from_state_dict(module, state_dict, prefix, local_metadata):
    if getattr(module, "save_teacher", False):
        return state_dict
    for k in [k for k in state_dict if k.startswith(prefix + "teacher.")]:
        del state_dict[k]
    return state_dict


def _note_teacher_keys_in_checkpoint(module, state_dict, prefix, *args):
    # Seen before any child fills in defaults (FrozenBatchNorm2d adds running stats of old checkpoints).
    module._checkpoint_has_teacher = any(k.startswith(prefix + "teacher.") for k in state_dict)


def _ignore_missing_teacher_keys(module, incompatible_keys):
    missing = incompatible_keys.missing_keys
    teacher_missing = [k for k in missing if k.startswith("teacher.") or ".teacher." in k]
    if getattr(module, "_checkpoint_has_teacher", False):
        # The checkpoint carried the teacher (save_teacher=True), so it must carry all of it
        # (Detectron2's checkpointer loads non-strictly and drops shape-mismatched keys).
        partial = [k for k in teacher_missing if not k.endswith(_BENIGN_MISSING_SUFFIXES)]
        if partial:
            raise TeacherWeightsError(
                f"The checkpoint holds teacher weights (save_teacher=True) but lacks, or has wrong "
                f"shapes for, {len(partial)} teacher keys: {format_keys(partial)}"
            )
        module.save_teacher_loaded_from_checkpoint = True
    for k in teacher_missing:
        missing.remove(k)
