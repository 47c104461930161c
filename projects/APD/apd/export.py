"""Student export: the student's weights without the distiller, and an image → logits module to trace.

Three pieces, used by ``tools/export_student.py`` and ``tools/visualize.py``:

- :func:`student_config` finds the student's model node inside a config's ``model``: the ``student``
  child of any :class:`~apd.modeling.meta_arch.distiller.Distiller` (segmentation or R-CNN), or ``model``
  itself for a plain (non-distillation) config.
- :func:`extract_student_state` takes a training checkpoint apart: it keeps exactly the student's keys
  (prefix removed), drops the teacher, the distillation heads and the adapters, and names every
  missing or shape-mismatched student key. The result loads strictly into the plain student config.
- :class:`SegmentationExportModel` wraps a :class:`Segmentor` as one tensor function,
  B×3×H×W float image (0–255, channels in the student's ``input_format``) → B×K×H×W logits:
  normalisation, backbone, head ``layers()``, bilinear upsampling to the input size
  (:meth:`Segmentor.predict_logits`, the whole-image inference path). With
  ``onnx_compatible=True`` adaptive average pools run as two matrix products
  (:class:`AdaptiveAvgPool2dAsMatmul`): ONNX has no adaptive pooling and PyTorch's exporter refuses
  PSPNet's 3×3 and 6×6 bins on a 128×256 feature map.
"""
import copy
import logging
import os
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import torch
from omegaconf import DictConfig
from torch import nn

from .config import lazy_target
from .errors import MissingFileError, UserError
from .modeling.meta_arch.distiller import Distiller
from .modeling.meta_arch.segmentor import Segmentor
from .checkpoint.io import read_state_dict
from .checkpoint.keys import STUDENT_PREFIX, compare_state_dicts, strip_prefix

__all__ = [
    "StudentSpec",
    "StudentWeightsError",
    "student_config",
    "extract_student_state",
    "read_student_state",
    "AdaptiveAvgPool2dAsMatmul",
    "adaptive_pool_matrix",
    "onnx_compatible_copy",
    "SegmentationExportModel",
]

logger = logging.getLogger(__name__)

# Top-level modules of a distiller that are not part of the student.
DISTILLER_ONLY_PREFIXES = ("teacher.", "distill_heads.")


class StudentWeightsError(UserError, RuntimeError):
    """A checkpoint does not hold the weights of the configured student."""


@dataclass
class StudentSpec:
    """Where the student sits in a config and in that config's checkpoints.

    Attributes:
        node: the LazyCall node that builds the student alone (``instantiate(node)``).
        prefix: prefix of the student's keys in the training checkpoint ("student." for a distiller,
            "" for a plain model).
        distiller: name of the distiller class, or None for a plain model config.
    """

    node: DictConfig
    prefix: str
    distiller: Optional[str]

    @property
    def target(self) -> object:
        """The callable that builds the student (class or function), without building it."""
        return lazy_target(self.node)


def student_config(model_cfg: DictConfig) -> StudentSpec:
    """The student's model node of a config's ``model`` (see the module docstring).

    Raises:
        TypeError: ``model_cfg`` is not a LazyCall node.
    """
    target = lazy_target(model_cfg)
    if target is None:
        raise TypeError(f"cfg.model is not a LazyCall node (no _target_): {type(model_cfg).__name__}")
    if isinstance(target, type) and issubclass(target, Distiller):
        return StudentSpec(model_cfg.student, STUDENT_PREFIX, target.__name__)
    return StudentSpec(model_cfg, "", None)


def extract_student_state(
    state: Mapping[str, torch.Tensor],
    student: nn.Module,
    prefix: str,
    source: str = "checkpoint",
) -> Dict[str, torch.Tensor]:
    """The student's weights out of a (distiller or student-only) state dict.

    Args:
        state: flat ``{name: tensor}`` (e.g. from :func:`read_state_dict`).
        student: the built student; its ``state_dict()`` keys are the keys returned.
        prefix: the student's key prefix in ``state`` ("student." or ""). When no key carries a
            non-empty prefix, ``state`` is taken to be a student-only checkpoint already.
        source: name of the checkpoint, for error messages.

    Returns:
        ``{key: tensor}`` with exactly the keys of ``student.state_dict()``, in its order.

    Raises:
        StudentWeightsError: student keys missing (``num_batches_tracked`` excepted) or with
            another shape, or keys under the student's prefix that the student does not have;
            every offending key is listed.
    """
    candidate = strip_prefix(state, prefix) if prefix else {}
    if not candidate:  # a student-only checkpoint already
        candidate = {k: v for k, v in state.items() if not k.startswith(DISTILLER_ONLY_PREFIXES)}
    misfit = compare_state_dicts(student.state_dict(), candidate).lines()
    if misfit:
        raise StudentWeightsError("\n  ".join([
            f"'{source}' does not hold the weights of the configured student ({type(student).__name__}):",
            *misfit, "Check --config-file against the config the checkpoint was trained with."]))
    expected = student.state_dict()
    out = {}
    for key, value in expected.items():
        # num_batches_tracked may be absent from old checkpoints: keep the model's own value.
        out[key] = candidate.get(key, value).detach().clone()
    used = {prefix + k for k in candidate} if prefix and any(k.startswith(prefix) for k in state) else set(candidate)
    dropped = sorted({k.split(".", 1)[0] for k in state if k not in used})
    if dropped:
        logger.info(f"Student weights from {source}: dropped non-student modules {dropped}")
    return out


def read_student_state(path: str, student: nn.Module, prefix: str) -> Dict[str, torch.Tensor]:
    """:func:`extract_student_state` of the checkpoint file ``path`` (.pth, .pkl, d2 or plain)."""
    if "://" not in path and not os.path.isfile(path):
        raise MissingFileError(f"Student checkpoint not found: '{path}'")
    return extract_student_state(read_state_dict(path), student, prefix, source=path)


# ------------------------------------------------------------------------------------- export
def adaptive_pool_matrix(length: int, bins: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """bins×length averaging matrix of ``adaptive_avg_pool1d`` on ``length`` inputs.

    Row i averages inputs ``floor(i·L/b) ≤ j < ceil((i+1)·L/b)``, PyTorch's adaptive pooling windows
    (e.g. L=5, b=3: windows [0,2), [1,4), [3,5) → rows (½,½,0,0,0), (0,⅓,⅓,⅓,0), (0,0,0,½,½)).
    """
    if length < 1 or bins < 1:
        raise ValueError(f"adaptive_pool_matrix: length and bins must be >= 1, got {length}, {bins}")
    rows = torch.zeros(bins, length, dtype=dtype, device=device)
    for i in range(bins):
        start = (i * length) // bins
        end = -((-(i + 1) * length) // bins)  # ceil
        rows[i, start:end] = 1.0 / (end - start)
    return rows


def _pair(size) -> Tuple[Optional[int], Optional[int]]:
    if isinstance(size, (tuple, list)):
        return (size[0], size[1])
    return (size, size)


class AdaptiveAvgPool2dAsMatmul(nn.Module):
    """``nn.AdaptiveAvgPool2d(output_size)`` computed as ``P_h · x · P_wᵀ``.

    Same windows as PyTorch (:func:`adaptive_pool_matrix`), so the result equals
    ``F.adaptive_avg_pool2d`` up to float summation order. The matrices depend on the input size;
    in a traced graph (TorchScript, ONNX) they are constants for the traced size.
    """

    def __init__(self, output_size: Union[int, Sequence[Optional[int]]]):
        super().__init__()
        self.output_size = _pair(output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = int(x.shape[-2]), int(x.shape[-1])
        out_h = height if self.output_size[0] is None else int(self.output_size[0])
        out_w = width if self.output_size[1] is None else int(self.output_size[1])
        rows = adaptive_pool_matrix(height, out_h, x.dtype, x.device)
        cols = adaptive_pool_matrix(width, out_w, x.dtype, x.device)
        return torch.matmul(torch.matmul(rows, x), cols.t())

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


def onnx_compatible_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` with every ``nn.AdaptiveAvgPool2d`` replaced by
    :class:`AdaptiveAvgPool2dAsMatmul` (``module`` itself is not changed)."""
    module = copy.deepcopy(module)
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.AdaptiveAvgPool2d):
                setattr(parent, name, AdaptiveAvgPool2dAsMatmul(child.output_size))
    return module


class SegmentationExportModel(nn.Module):
    """A segmentation student as ``forward(image: B×3×H×W float) -> B×K×H×W logits``.

    ``image`` is what the dataset mapper gives the model: 0–255 values, channels in
    ``student.input_format``. The graph is exactly the student's whole-image inference
    (:meth:`Segmentor.predict_logits` after ``(image − pixel_mean) / pixel_std``), so its output
    equals ``student([{"image": image[i]}])[i]["sem_seg"]`` when the student has no sliding window
    (a sliding-window/flip protocol averages such logits over crops, outside the graph).
    Always in eval mode (BatchNorm uses running statistics, dropout is off).

    Args:
        student: a :class:`Segmentor` (not modified: the module is deep-copied when
            ``onnx_compatible``).
        onnx_compatible: replace adaptive average pools by matrix products (see module docstring).
    """

    def __init__(self, student: nn.Module, *, onnx_compatible: bool = False):
        super().__init__()
        if not isinstance(student, Segmentor):
            raise TypeError(
                f"SegmentationExportModel needs an apd Segmentor student, got {type(student).__name__}; "
                "only the checkpoint export supports other students (e.g. GeneralizedRCNN)."
            )
        self.student = onnx_compatible_copy(student) if onnx_compatible else student
        self.input_format = student.input_format
        self.num_classes = int(student.sem_seg_head.num_classes)
        self.eval()

    def train(self, mode: bool = True):
        return super().train(False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be B×3×H×W, got shape {tuple(image.shape)}")
        x = (image.float() - self.student.pixel_mean) / self.student.pixel_std
        return self.student.predict_logits(x)

