"""SemanticSegDistiller: a frozen teacher segmentor, a trainable student segmentor, distillation terms.

Training (one call, one flat dict of already-weighted losses):
  1. each model normalises the same images with its own pixel mean/std (and RGB↔BGR order);
  2. the teacher runs backbone + ``sem_seg_head.layers`` under ``torch.no_grad()`` in eval mode;
  3. the student runs backbone + ``layers``; its task losses come from its head's ``losses``
     (``loss_sem_seg``, ``loss_aux``);
  4. every distillation term in ``distill_heads`` (APD, logit KD, CWD, ...) maps
     (student outputs, teacher outputs, targets) to unweighted ``loss_*`` terms, which are multiplied by
     ``loss_weights[name]`` (default 1.0).
Inference returns ``self.student(batched_inputs)``: the student's graph only, no teacher compute.
"""
import logging
from dataclasses import replace
from typing import Dict, List, Mapping, Optional

import torch
import torch.nn.functional as F
from detectron2.config import instantiate
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.structures import ImageList
from detectron2.utils.events import get_event_storage
from torch import nn

from .teacher import ChannelSwappedModel, TeacherMixin, needs_channel_swap

__all__ = ["SemanticSegDistiller"]

logger = logging.getLogger(__name__)

def _build_modules(nodes: Optional[Mapping]) -> Dict[str, nn.Module]:
    """Modules from a name → (module | LazyCall node) mapping (d2's instantiate leaves dict values alone)."""
    out = {}
    for name, node in dict(nodes or {}).items():
        module = node if isinstance(node, nn.Module) else instantiate(node)
        if not isinstance(module, nn.Module):
            raise TypeError(f"distill_heads['{name}'] is a {type(module).__name__}, not an nn.Module / LazyCall of one")
        out[str(name)] = module
    return out


def _input_format(model: nn.Module) -> str:
    return getattr(model, "input_format", "RGB")


@META_ARCH_REGISTRY.register()
class SemanticSegDistiller(TeacherMixin, nn.Module):
    """Distils a teacher segmentor into a student segmentor (both with the ``layers()``/``losses()`` heads).

    Args:
        student: a segmentor (``apd.modeling.meta_arch.Segmentor`` or d2 ``SemanticSegmentor``) whose
            ``sem_seg_head`` implements ``layers()``/``losses()`` (see docs/ARCHITECTURE.md).
        teacher: same kind of model, any architecture with the same number of classes.
        teacher_weights: checkpoint of the teacher, loaded strictly now. None builds the model without
            weights (for inspection and ``--eval-only`` of the student); training then refuses to start.
        distill_heads: name → distillation term module (``APDHead``, ``LogitKDHead``, ...).
        loss_weights: loss key → weight, e.g. ``{"loss_kd": 10, "loss_apd": 10, "loss_pa": 10}``.
            Keys that no term produces are an error (caught at the first training step).
        save_teacher: also write the teacher into checkpoints (off: student checkpoints stay small).
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
    ):
        super().__init__()
        self.student = student
        self.teacher = teacher
        self.distill_heads = nn.ModuleDict(_build_modules(distill_heads))
        self.loss_weights = {str(k): float(v) for k, v in dict(loss_weights or {}).items()}
        self._check_compatible()
        self._setup_teacher(teacher_weights, save_teacher)
        self._checked_loss_keys = False

    # ------------------------------------------------------------------ checks
    def _check_compatible(self) -> None:
        s_head, t_head = self.student.sem_seg_head, self.teacher.sem_seg_head
        for name, head in (("student", s_head), ("teacher", t_head)):
            if not hasattr(head, "layers") or not hasattr(head, "losses"):
                raise TypeError(
                    f"The {name}'s sem_seg_head ({type(head).__name__}) has no layers()/losses(); use a head "
                    "from apd.modeling.heads (PSPHead, ASPPHead, FPNSegHead)."
                )
        ks, kt = getattr(s_head, "num_classes", None), getattr(t_head, "num_classes", None)
        if ks != kt:
            raise ValueError(f"Student predicts {ks} classes but the teacher predicts {kt}: they must match.")
        needs_channel_swap(_input_format(self.student), _input_format(self.teacher))  # raises if impossible

    def _check_loss_keys(self, produced: List[str]) -> None:
        unknown = sorted(set(self.loss_weights) - set(produced))
        if unknown:
            raise KeyError(
                f"model.loss_weights has keys no distillation term produces: {unknown}. "
                f"Terms produce: {sorted(produced)}."
            )
        self._checked_loss_keys = True

    def teacher_for_student_inputs(self) -> nn.Module:
        """The teacher as a model reading the student's inputs (to evaluate it on the student's loader)."""
        if needs_channel_swap(_input_format(self.student), _input_format(self.teacher)):
            return ChannelSwappedModel(self.teacher)
        return self.teacher

    # ------------------------------------------------------------- properties
    @property
    def device(self) -> torch.device:
        return self.student.pixel_mean.device

    @property
    def num_classes(self) -> int:
        return self.student.sem_seg_head.num_classes

    # ---------------------------------------------------------------- forward
    def _images(self, model: nn.Module, batched_inputs: List[dict], size_divisibility: int) -> ImageList:
        swap = needs_channel_swap(_input_format(self.student), _input_format(model))
        images = []
        for x in batched_inputs:
            img = x["image"].to(self.device)
            if swap:
                img = img.flip(0)
            images.append((img - model.pixel_mean) / model.pixel_std)
        return ImageList.from_tensors(images, size_divisibility)

    def forward(self, batched_inputs: List[dict]):
        if not self.training:
            return self.student(batched_inputs)
        self.check_teacher_ready()

        size_div = max(
            self.student.backbone.size_divisibility, self.teacher.backbone.size_divisibility
        )
        s_images = self._images(self.student, batched_inputs, size_div)
        ignore = self.student.sem_seg_head.ignore_value
        targets = ImageList.from_tensors(
            [x["sem_seg"].to(self.device) for x in batched_inputs], size_div, pad_value=ignore
        ).tensor

        with torch.no_grad():
            t_images = self._images(self.teacher, batched_inputs, size_div)
            t_out = self.teacher.sem_seg_head.layers(self.teacher.backbone(t_images.tensor))

        s_out = self.student.sem_seg_head.layers(self.student.backbone(s_images.tensor))
        losses = dict(self.student.sem_seg_head.losses(s_out, targets))

        if t_out.feature.shape[-2:] != s_out.feature.shape[-2:]:
            # Different output strides: observe the teacher on the student's grid.
            t_out = replace(
                t_out,
                feature=F.interpolate(
                    t_out.feature, size=s_out.feature.shape[-2:], mode="bilinear", align_corners=False
                ),
            )
        terms: Dict[str, torch.Tensor] = {}
        for name, head in self.distill_heads.items():
            for key, value in head(s_out, t_out, targets).items():
                if key in terms or key in losses:
                    raise KeyError(f"Loss key '{key}' produced twice (distillation term '{name}')")
                terms[key] = value
        if not self._checked_loss_keys:
            self._check_loss_keys(list(terms))
        for key, value in terms.items():
            losses[key] = value * self.loss_weights.get(key, 1.0)

        self._log_agreement(s_out.logits, t_out.logits)
        return losses

    @torch.no_grad()
    def _log_agreement(self, s_logits: torch.Tensor, t_logits: torch.Tensor) -> None:
        try:
            storage = get_event_storage()
        except AssertionError:  # called outside a trainer (tests, benchmarks)
            return
        if t_logits.shape[-2:] != s_logits.shape[-2:]:
            t_logits = F.interpolate(t_logits, size=s_logits.shape[-2:], mode="bilinear", align_corners=False)
        agree = (s_logits.argmax(1) == t_logits.argmax(1)).float().mean()
        storage.put_scalar("distill/teacher_student_agreement", float(agree))
