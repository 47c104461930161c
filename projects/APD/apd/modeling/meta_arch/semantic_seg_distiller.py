"""SemanticSegDistiller: a frozen teacher segmentor, a trainable student segmentor, distillation terms.

Training (one call, one flat dict of already-weighted losses; the shared steps are
:class:`~.distiller.Distiller`'s):
  1. each model normalises the same images with its own pixel mean/std (and RGB↔BGR order);
  2. the teacher runs backbone + ``sem_seg_head.layers`` under ``torch.no_grad()`` in eval mode;
  3. the student runs backbone + ``layers``; its task losses come from its head's ``losses``
     (``loss_sem_seg``, ``loss_aux``);
  4. every distillation term in ``distill_heads`` (APD, logit KD, CWD, ...) maps
     (student outputs, teacher outputs, targets) to unweighted ``loss_*`` terms, which are multiplied by
     ``loss_weights[name]`` (default 1.0) and the warm-up factor (``warmup_iters``).
Inference returns ``self.student(batched_inputs)``: the student's graph only, no teacher compute.
"""
import logging
from dataclasses import replace
from typing import List

import torch
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.structures import ImageList
from detectron2.utils.events import get_event_storage

from ...errors import ConfigMismatchError, ConfigValueError
from ..distill.protocol import HEAD_OUTPUTS, FeatureShape, FeatureShapes
from ..losses import resize_to
from .distiller import Distiller, TrainingOutputs

__all__ = ["SemanticSegDistiller"]

logger = logging.getLogger(__name__)


@META_ARCH_REGISTRY.register()
class SemanticSegDistiller(Distiller):
    """Distils a teacher segmentor into a student segmentor (both with the ``layers()``/``losses()`` heads).

    Args:
        student: a segmentor (``apd.modeling.meta_arch.Segmentor`` or d2 ``SemanticSegmentor``) whose
            ``sem_seg_head`` implements ``layers()``/``losses()`` (see docs/ARCHITECTURE.md).
        teacher: same kind of model, any architecture with the same number of classes.
        teacher_weights, distill_heads, loss_weights, save_teacher, warmup_iters: see
            :class:`~.distiller.Distiller`. ``distill_heads`` are terms on ``SegHeadOutputs``
            (``APDHead``, ``LogitKDHead``, ...); ``loss_weights`` e.g.
            ``{"loss_kd": 10, "loss_apd": 10, "loss_pa": 10}``, unknown keys are an error at build.
    """

    provided_inputs = frozenset({HEAD_OUTPUTS})

    def check_compatible(self) -> None:
        s_head, t_head = self.student.sem_seg_head, self.teacher.sem_seg_head
        for name, head in (("student", s_head), ("teacher", t_head)):
            if not hasattr(head, "layers") or not hasattr(head, "losses"):
                raise ConfigValueError(
                    f"The {name}'s sem_seg_head ({type(head).__name__}) has no layers()/losses(); use a head "
                    "from apd.modeling.heads (PSPHead, ASPPHead, FPNSegHead)."
                )
        ks, kt = getattr(s_head, "num_classes", None), getattr(t_head, "num_classes", None)
        if ks != kt:
            raise ConfigMismatchError(f"Student predicts {ks} classes but the teacher predicts {kt}: they must match.")

    @property
    def num_classes(self) -> int:
        return self.student.sem_seg_head.num_classes

    def model_features(self, model) -> FeatureShapes:
        """``"feature"``: the head's ``SegHeadOutputs.feature`` (B×C×h×w, C = its ``feature_channels``);
        ``"classes"``: K."""
        head = model.sem_seg_head
        return {"feature": FeatureShape(getattr(head, "feature_channels", None)),
                "classes": FeatureShape(head.num_classes, "K=C")}

    def forward_train(self, batched_inputs: List[dict]) -> TrainingOutputs:
        # Each network pads as its own pre-processing does (Detectron2's SemanticSegmentor: the backbone's
        # size_divisibility and padding_constraints); the labels are padded like the student's images.
        student, teacher = self.student.backbone, self.teacher.backbone
        s_images = self.normalized_images(self.student, batched_inputs, student.size_divisibility,
                                          student.padding_constraints)
        ignore = self.student.sem_seg_head.ignore_value
        targets = ImageList.from_tensors(
            [x["sem_seg"].to(self.device) for x in batched_inputs], student.size_divisibility, pad_value=ignore,
            padding_constraints=student.padding_constraints,
        ).tensor

        with torch.no_grad():
            t_images = self.normalized_images(self.teacher, batched_inputs, teacher.size_divisibility,
                                              teacher.padding_constraints)
            t_out = self.teacher.sem_seg_head.layers(teacher(t_images.tensor))

        s_out = self.student.sem_seg_head.layers(student(s_images.tensor))
        losses = dict(self.student.sem_seg_head.losses(s_out, targets))

        if t_out.feature.shape[-2:] != s_out.feature.shape[-2:]:
            # Different output strides: observe the teacher on the student's grid (the one resize rule).
            t_out = replace(t_out, feature=resize_to(t_out.feature, s_out.feature.shape[-2:]))
        self._log_agreement(s_out.logits, t_out.logits)
        return TrainingOutputs(losses, s_out, t_out, targets)

    @torch.no_grad()
    def _log_agreement(self, s_logits: torch.Tensor, t_logits: torch.Tensor) -> None:
        try:
            storage = get_event_storage()
        except AssertionError:  # called outside a trainer (tests, benchmarks)
            return
        t_logits = resize_to(t_logits, s_logits.shape[-2:])
        agree = (s_logits.argmax(1) == t_logits.argmax(1)).float().mean()
        storage.put_scalar("distill/teacher_student_agreement", float(agree))
        storage.put_scalar("distill/weight_scale", self.distill_scale())
