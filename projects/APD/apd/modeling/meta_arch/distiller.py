"""Distiller: the task-independent half of every distiller (segmentation and R-CNN).

A distiller holds a trainable ``student`` (a complete model that runs alone at inference), a frozen
``teacher`` and named distillation terms ``distill_heads``. This base owns everything that does not
depend on the task:

- the strict, frozen teacher (:class:`~.teacher.TeacherMixin`): loaded at build, kept in eval mode, run
  under ``no_grad``, left out of checkpoints (student-only checkpoints);
- the teacher's preprocessing (:meth:`Distiller.normalized_images`, written once: the teacher's own
  pixel mean/std, RGB↔BGR reversal when the two input formats differ);
- the loop over the terms (:meth:`Distiller.distillation_losses`): every term maps (student outputs,
  teacher outputs, targets) to unweighted ``loss_*`` values, each multiplied by ``loss_weights[key]``
  (default 1.0) and by the warm-up factor;
- the checks of the terms when the model is built, through the term protocol
  (:mod:`apd.modeling.distill.protocol`) and nothing else: each term is a ``DistillationTerm``, reads only
  inputs the task distiller provides (:attr:`Distiller.provided_inputs`), was configured for the channels,
  levels and classes of the built student and teacher (:meth:`Distiller.model_features`), and no two terms
  produce one key; ``loss_weights`` names only keys the terms declare;
- inference: ``self.student(batched_inputs)``, the student's graph only.

A task distiller implements :meth:`Distiller.forward_train` (the student's task losses and what the terms
read, as :class:`TrainingOutputs`; segmentation: ``SegHeadOutputs`` + label maps; R-CNN: FPN features, ROI
outputs, class maps), :meth:`Distiller.model_features` and :attr:`Distiller.provided_inputs`.

Warm-up (``warmup_iters`` = W > 0): every distillation weight except the terms' ``second_optimizer_keys``
is multiplied by ``min(1, (iter + 1) / W)``, ``iter`` being Detectron2's event-storage iteration; W = 0
(default) is the official recipe (full weight from the first step). A second-optimiser key is never
warmed up: it trains only the term's ``second_optimizer_parameters()``, which their own Adam steps (Adam's step does not depend on a constant loss scale), and it never reaches the
student. Its ``loss_weights`` entry still applies.
"""
import logging
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Sequence

import torch
from detectron2.config import instantiate
from detectron2.structures import ImageList
from detectron2.utils.events import get_event_storage
from torch import nn

from ...errors import ConfigKeyError, ConfigValueError
from ..distill.protocol import FeatureShapes, check_expected_features, check_term_declaration
from .teacher import ChannelSwappedModel, TeacherMixin, needs_channel_swap

__all__ = ["Distiller", "TrainingOutputs", "build_terms", "warmup_factor", "current_iteration"]

logger = logging.getLogger(__name__)


@dataclass
class TrainingOutputs:
    """What :meth:`Distiller.forward_train` returns for one training batch.

    Attributes:
        task_losses: the student's own losses (weighted by the student's model, not by ``loss_weights``).
        student: the student's outputs the terms read (``SegHeadOutputs``, ``DetectionOutputs``).
        teacher: the teacher's, same type, computed without gradient.
        targets: the ground truth in the terms' form (B×H×W label map, ``DetectionTargets``).
    """

    task_losses: Dict[str, torch.Tensor]
    student: Any
    teacher: Any
    targets: Any


def build_terms(nodes: Optional[Mapping]) -> Dict[str, nn.Module]:
    """Modules from a name → (module | LazyCall node) mapping (d2's instantiate leaves dict values alone)."""
    out = {}
    for name, node in dict(nodes or {}).items():
        module = node if isinstance(node, nn.Module) else instantiate(node)
        if not isinstance(module, nn.Module):
            raise ConfigValueError(f"distill_heads['{name}'] is a {type(module).__name__}, not an nn.Module / LazyCall of one")
        out[str(name)] = module
    return out


def current_iteration() -> Optional[int]:
    """Detectron2's training iteration (event storage), or None outside a trainer."""
    try:
        return int(get_event_storage().iter)
    except AssertionError:  # no EventStorage: tests, benchmarks, scripts
        return None


def warmup_factor(iteration: Optional[int], warmup_iters: int) -> float:
    """``min(1, (iteration + 1) / warmup_iters)``; 1 when ``warmup_iters`` is 0 or there is no iteration."""
    if warmup_iters <= 0 or iteration is None:
        return 1.0
    return min(1.0, (int(iteration) + 1) / float(warmup_iters))


def _input_format(model: nn.Module) -> Optional[str]:
    return getattr(model, "input_format", "RGB")


class Distiller(TeacherMixin, nn.Module):
    """Base of the distillers (see the module docstring). Subclasses implement :meth:`forward_train`.

    Args:
        student: the trainable model; ``student(batched_inputs)`` in eval mode is the inference.
        teacher: the teacher model (same task and classes).
        teacher_weights: the teacher's checkpoint, loaded strictly now. None builds the model without
            teacher weights (inspection, ``--eval-only`` of the student); training then refuses to start.
        distill_heads: name → distillation term (a ``DistillationTerm`` or a LazyCall node of one), checked
            against the built student and teacher now (``TermCompatibilityError`` naming the term).
        loss_weights: loss key → weight (default 1.0 for keys not given). A key that no term produces is
            an error when the model is built.
        save_teacher: also write the teacher into ``state_dict()`` (off: student-only checkpoints).
        warmup_iters: linear warm-up of the distillation weights over this many iterations (0: none).
    """

    def __init__(
        self,
        *,
        student: nn.Module,
        teacher: nn.Module,
        teacher_weights: Optional[str],
        distill_heads: Optional[Mapping[str, nn.Module]] = None,
        loss_weights: Optional[Mapping[str, float]] = None,
        save_teacher: bool = False,
        warmup_iters: int = 0,
    ):
        super().__init__()
        self.student = student
        self.teacher = teacher
        self.distill_heads = nn.ModuleDict(build_terms(distill_heads))
        self.loss_weights = {str(k): float(v) for k, v in dict(loss_weights or {}).items()}
        if int(warmup_iters) < 0:
            raise ConfigValueError(f"warmup_iters must be >= 0, got {warmup_iters}")
        self.warmup_iters = int(warmup_iters)
        self.check_compatible()
        needs_channel_swap(_input_format(student), _input_format(teacher))  # raises if impossible
        self._check_terms()
        self._setup_teacher(teacher_weights, save_teacher)

    # ------------------------------------------------------------------ for subclasses
    #: The inputs (``apd.modeling.distill.protocol.INPUTS``) this distiller hands to its terms.
    provided_inputs: FrozenSet[str] = frozenset()

    def check_compatible(self) -> None:
        """Raise if student and teacher cannot work together (called at build, before the terms' checks)."""

    def model_features(self, model: nn.Module) -> FeatureShapes:
        """The features of the built ``model`` (student or teacher) that terms may read, by name
        (``apd.modeling.distill.protocol``), for the terms' ``expected_features`` check."""
        raise NotImplementedError

    def forward_train(self, batched_inputs: List[dict]) -> TrainingOutputs:
        """The student's task losses and what the terms read, for one training batch."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the terms' declarations
    def uses(self, input_name: str) -> bool:
        """Whether some term reads ``input_name`` (``apd.modeling.distill.protocol.INPUTS``)."""
        return any(input_name in term.inputs for term in self.distill_heads.values())

    def declared_loss_keys(self) -> List[str]:
        """Every key the terms declare, in term order."""
        return [key for term in self.distill_heads.values() for key in term.loss_keys]

    def second_optimizer_keys(self) -> FrozenSet[str]:
        """The keys that train only a term's second-optimiser parameters (never warmed up)."""
        return frozenset(key for term in self.distill_heads.values() for key in term.second_optimizer_keys)

    def _check_terms(self) -> None:
        """The build-time checks of the terms (module docstring)."""
        shapes = {"student": self.model_features(self.student), "teacher": self.model_features(self.teacher)}
        owner: Dict[str, str] = {}
        for name, term in self.distill_heads.items():
            check_term_declaration(name, term, self.provided_inputs, type(self).__name__)
            check_expected_features(name, term, shapes)
            for key in term.loss_keys:
                if key in owner:
                    raise ConfigKeyError(f"Loss key '{key}' is produced by two distillation terms ('{owner[key]}' and '{name}')")
                owner[key] = name
        unknown = sorted(set(self.loss_weights) - set(owner))
        if unknown:
            raise ConfigKeyError(
                f"model.loss_weights has keys no distillation term produces: {unknown}. "
                f"Terms produce: {sorted(owner)}."
            )

    # ------------------------------------------------------------------ weights and warm-up
    def distill_scale(self) -> float:
        """The warm-up factor of the current training iteration (1 without warm-up)."""
        return warmup_factor(current_iteration(), self.warmup_iters)

    def weigh(self, terms: Mapping[str, torch.Tensor], scale: Optional[float] = None) -> Dict[str, torch.Tensor]:
        """``terms[key] · loss_weights[key]`` (1.0 if absent), times the warm-up factor except for the
        terms' ``second_optimizer_keys``."""
        scale = self.distill_scale() if scale is None else scale
        unscaled = self.second_optimizer_keys()
        out = {}
        for key, value in terms.items():
            weight = self.loss_weights.get(key, 1.0)
            if key not in unscaled:
                weight = weight * scale
            out[key] = value * weight
        return out

    def distillation_losses(self, student_out, teacher_out, targets, taken: Sequence[str] = ()) -> Dict[str, torch.Tensor]:
        """Every term on (student outputs, teacher outputs, targets), weighted (see :meth:`weigh`).

        ``taken``: keys already used (the task losses); a term producing one of them, or other keys than
        its ``loss_keys``, is an error."""
        terms: Dict[str, torch.Tensor] = {}
        for name, head in self.distill_heads.items():
            produced = head(student_out, teacher_out, targets)
            if set(produced) != set(head.loss_keys):
                raise KeyError(f"Distillation term '{name}' returned {sorted(produced)} but declares "
                               f"loss_keys {sorted(head.loss_keys)}")
            for key, value in produced.items():
                if key in taken:
                    raise ConfigKeyError(f"Loss key '{key}' produced twice (distillation term '{name}')")
                terms[key] = value
        return self.weigh(terms)

    # ------------------------------------------------------------------ preprocessing
    @property
    def device(self) -> torch.device:
        return self.student.pixel_mean.device

    def channel_swap(self, model: nn.Module) -> bool:
        """Whether ``model`` reads the student's images with reversed channels."""
        return needs_channel_swap(_input_format(self.student), _input_format(model))

    def normalized_images(
        self,
        model: nn.Module,
        batched_inputs: List[dict],
        size_divisibility: int,
        padding_constraints: Optional[Dict] = None,
    ) -> ImageList:
        """The batch's images as ``model`` expects them: channels in its input format, normalised by its
        pixel mean/std, padded to ``size_divisibility`` (the teacher's preprocessing, written once)."""
        swap = self.channel_swap(model)
        images = []
        for x in batched_inputs:
            img = x["image"].to(self.device)
            if swap:
                img = img.flip(0)
            images.append((img - model.pixel_mean) / model.pixel_std)
        return ImageList.from_tensors(images, size_divisibility, padding_constraints=padding_constraints)

    def teacher_for_student_inputs(self) -> nn.Module:
        """The teacher as a model reading the student's inputs (to evaluate it on the student's loader)."""
        if self.channel_swap(self.teacher):
            return ChannelSwappedModel(self.teacher)
        return self.teacher

    # ------------------------------------------------------------------ forward
    def forward(self, batched_inputs: List[dict]):
        """Training: one flat dict of the student's task losses and the weighted distillation terms.
        Inference: the student's output (the teacher does not run)."""
        if not self.training:
            return self.student(batched_inputs)
        self.check_teacher_ready()
        out = self.forward_train(batched_inputs)
        losses = dict(out.task_losses)
        losses.update(self.distillation_losses(out.student, out.teacher, out.targets, taken=list(losses)))
        return losses
