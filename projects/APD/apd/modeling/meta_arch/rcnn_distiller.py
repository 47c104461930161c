"""RCNNDistiller: distillation for Detectron2's R-CNNs (Faster / Mask R-CNN with FPN).

The task half of :class:`~.distiller.Distiller` (which owns the frozen teacher, its preprocessing, the
loop over the terms, the weights, the warm-up and student-only inference / checkpoints). Per training
batch it computes what the terms ask for (:mod:`apd.modeling.distill.detection_inputs`):

- always: the student's Detectron2 losses (``loss_rpn_cls``, ``loss_rpn_loc``, ``loss_cls``,
  ``loss_box_reg``, ``loss_mask`` / ``loss_keypoint``) and both models' FPN features
  (:data:`~apd.modeling.distill.protocol.FPN_FEATURES`);
- when a term reads :data:`~apd.modeling.distill.protocol.CLASS_MAPS`: per-image ground-truth class maps
  (masks or filled boxes, background = K, padding ignored; :mod:`apd.modeling.distill.class_maps`);
- when a term reads :data:`~apd.modeling.distill.protocol.ROIS`: both models' box-head outputs and scores
  on the *student's* sampled proposals, and the ROIs' ``gt_classes`` (docs/METHOD.md §6).

The student's ROI heads run through their public ``forward`` (exactly what a plain ``GeneralizedRCNN``
runs); the box branch's input boxes, features and scores are read with forward hooks on its
``box_pooler`` and ``box_predictor`` modules, and the sampled ROIs' ``gt_classes`` from the proposals that
``StandardROIHeads.forward`` returns in training (:func:`run_roi_heads`).

The terms are any :class:`~apd.modeling.distill.protocol.DistillationTerm` reading these inputs (the FPN
and ROI terms of :mod:`apd.modeling.distill`); their channels, levels and classes are checked against
:meth:`RCNNDistiller.model_features` when the model is built.

Checkpoints: the student's keys start with :data:`apd.checkpoint.keys.STUDENT_PREFIX`, the terms'
``distill_heads.<name>.*``.

Shape letters: B images, R sampled ROIs over the batch, K foreground classes (background = K).
"""
import logging
from typing import Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN
from detectron2.modeling.roi_heads import StandardROIHeads
from detectron2.modeling.roi_heads.cascade_rcnn import CascadeROIHeads
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import get_event_storage

from ...errors import ConfigMismatchError, ConfigValueError
from ..distill.class_maps import CLASS_MAP_SOURCES, batch_class_maps
from ..distill.detection_inputs import DetectionOutputs, DetectionTargets
from ..distill.protocol import CLASS_MAPS, FPN_FEATURES, ROIS, FeatureShape, FeatureShapes
from .distiller import Distiller, TrainingOutputs, current_iteration

logger = logging.getLogger(__name__)

__all__ = ["RCNNDistiller", "SampledROIs", "run_roi_heads"]


def _has_one_box_branch(roi_heads: nn.Module) -> bool:
    # Cascade heads subclass StandardROIHeads but hold one box head per stage.
    return isinstance(roi_heads, StandardROIHeads) and not isinstance(roi_heads, CascadeROIHeads)


def _box_head_channels(roi_heads: StandardROIHeads) -> int:
    """Channels of the flattened box-head output (what enters the box predictor)."""
    shape = roi_heads.box_head.output_shape
    return int(shape.channels * (shape.height or 1) * (shape.width or 1))


def _box_branch(roi_heads: StandardROIHeads, features: Dict[str, torch.Tensor], boxes: List[Boxes]):
    """(R×C box-head output, box predictor outputs) on ``boxes``, as ``StandardROIHeads`` computes them."""
    pooled = roi_heads.box_pooler([features[f] for f in roi_heads.box_in_features], boxes)
    roi_features = roi_heads.box_head(pooled).flatten(1)
    return roi_features, roi_heads.box_predictor(roi_features)


class SampledROIs:
    """What a ``StandardROIHeads`` box branch saw in one training forward (:func:`run_roi_heads`).

    Attributes:
        boxes: per image, the ``Boxes`` the box head pooled (the sampled proposals).
        labels: R int64 ``gt_classes`` of those ROIs (K = background).
        image_ids: R int64 image index of each ROI.
        features: R×C box-head output (the box predictor's input, flattened), with gradient.
        scores: R×(K+1) box-classifier scores, with gradient.
    """

    def __init__(self, boxes: List[Boxes], labels: torch.Tensor, features: torch.Tensor, scores: torch.Tensor):
        self.boxes, self.labels, self.features, self.scores = boxes, labels, features, scores
        self.image_ids = torch.cat([torch.full((len(b),), i, dtype=torch.long, device=labels.device)
                                    for i, b in enumerate(boxes)])


def run_roi_heads(roi_heads: StandardROIHeads, images, features: Dict[str, torch.Tensor], proposals: List[Instances],
                  targets: List[Instances]) -> Tuple[Dict[str, torch.Tensor], SampledROIs]:
    """``roi_heads(images, features, proposals, targets)`` in training, unchanged (the losses are a plain
    ``GeneralizedRCNN``'s), plus what its box branch saw: forward hooks on the public ``box_pooler`` and
    ``box_predictor`` modules record the pooled boxes, the box-head output and the scores; the ``gt_classes``
    come from the sampled proposals ``StandardROIHeads.forward`` returns in training.

    Returns:
        (the ROI heads' losses, :class:`SampledROIs`).

    Raises:
        RuntimeError: the box branch did not run exactly once, or the returned proposals do not match the
            pooled boxes (a Detectron2 whose ``StandardROIHeads`` works otherwise).
    """
    seen: Dict[str, list] = {"boxes": [], "outputs": []}

    def on_pool(module, args):
        seen["boxes"].append(list(args[1]))

    def on_predict(module, args, output):
        seen["outputs"].append((args[0].flatten(1), output[0]))

    handles = [roi_heads.box_pooler.register_forward_pre_hook(on_pool),
               roi_heads.box_predictor.register_forward_hook(on_predict)]
    try:
        sampled, losses = roi_heads(images, features, proposals, targets)
    finally:
        for handle in handles:
            handle.remove()
    if len(seen["boxes"]) != 1 or len(seen["outputs"]) != 1:
        raise RuntimeError(f"{type(roi_heads).__name__}: expected one box branch call per training forward, saw "
                           f"{len(seen['boxes'])} pooling and {len(seen['outputs'])} prediction calls")
    boxes = seen["boxes"][0]
    roi_features, scores = seen["outputs"][0]
    if len(sampled) != len(boxes) or any(not p.has("gt_classes") or len(p) != len(b) for p, b in zip(sampled, boxes)):
        raise RuntimeError(f"{type(roi_heads).__name__}.forward did not return the sampled proposals (with "
                           "gt_classes) it pooled in training")
    labels = torch.cat([p.gt_classes for p in sampled])
    return dict(losses), SampledROIs(boxes, labels, roi_features, scores)


@META_ARCH_REGISTRY.register()
class RCNNDistiller(Distiller):
    """Distils a frozen GeneralizedRCNN teacher into a GeneralizedRCNN student.

    Args:
        student: a built ``GeneralizedRCNN`` (FPN backbone for the FPN terms; a non-cascade
            ``StandardROIHeads`` for the ROI terms). Inference = ``student(batched_inputs)``.
        teacher: a built ``GeneralizedRCNN`` with the same classes (own pixel mean/std and input format;
            RGB↔BGR are converted).
        teacher_weights, distill_heads, loss_weights, save_teacher, warmup_iters: see
            :class:`~.distiller.Distiller`. ``distill_heads`` are terms reading the inputs of
            :attr:`provided_inputs` (module docstring).
        class_map_from: "auto" (instance masks when the data has ``gt_masks``, else boxes), "masks" or
            "boxes": the source of the class maps of the dense terms.
    """

    provided_inputs = frozenset({FPN_FEATURES, CLASS_MAPS, ROIS})

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
        class_map_from: str = "auto",
    ):
        if class_map_from not in CLASS_MAP_SOURCES:
            raise ValueError(f"class_map_from must be one of {CLASS_MAP_SOURCES}, got {class_map_from!r}")
        super().__init__(student=student, teacher=teacher, teacher_weights=teacher_weights,
                         distill_heads=distill_heads, loss_weights=loss_weights, save_teacher=save_teacher,
                         warmup_iters=warmup_iters)
        self.class_map_from = class_map_from

    # ----------------------------------------------------------------------------------- checks
    @property
    def num_classes(self) -> int:
        return int(self.student.roi_heads.num_classes)

    def check_compatible(self) -> None:
        for who, model in (("student", self.student), ("teacher", self.teacher)):
            if not isinstance(model, GeneralizedRCNN):
                raise ConfigValueError(f"RCNNDistiller needs a GeneralizedRCNN {who}; got {type(model).__name__}.")
        if not self.distill_heads:
            raise ConfigMismatchError(
                "RCNNDistiller has nothing to distil (distill_heads is empty). Train the plain "
                "GeneralizedRCNN config for a student-only baseline."
            )
        k_s, k_t = self.student.roi_heads.num_classes, self.teacher.roi_heads.num_classes
        if k_s != k_t:
            raise ConfigMismatchError(f"Student detects {k_s} classes but the teacher {k_t}: they must match.")

    def model_features(self, model: GeneralizedRCNN) -> FeatureShapes:
        """The backbone's levels (``"p2"`` …, B×C×h×w), ``"classes"`` (K foreground) and, for a
        non-cascade ``StandardROIHeads``, ``"roi_features"`` (R×C box-head output) and ``"roi_scores"``
        (R×(K+1))."""
        features = {name: FeatureShape(shape.channels) for name, shape in model.backbone.output_shape().items()}
        k = int(model.roi_heads.num_classes)
        features["classes"] = FeatureShape(k, "K=C")
        if _has_one_box_branch(model.roi_heads):
            features["roi_features"] = FeatureShape(_box_head_channels(model.roi_heads), "R×C")
            features["roi_scores"] = FeatureShape(k + 1, "R×C")
        return features

    # -------------------------------------------------------------------------------- forward
    def forward_train(self, batched_inputs: List[Dict[str, torch.Tensor]]) -> TrainingOutputs:
        if "instances" not in batched_inputs[0]:
            raise ValueError("RCNNDistiller training needs 'instances' (ground truth) in batched_inputs.")
        student, teacher = self.student, self.teacher
        images = student.preprocess_image(batched_inputs)
        gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
        features = student.backbone(images.tensor)
        if student.proposal_generator is not None:
            proposals, losses = student.proposal_generator(images, features, gt_instances)
        else:
            proposals = [x["proposals"].to(self.device) for x in batched_inputs]
            losses = {}
        losses = dict(losses)

        s_out = DetectionOutputs(features=features)
        targets = DetectionTargets(num_classes=self.num_classes)
        if self.uses(ROIS):
            detector_losses, rois = run_roi_heads(student.roi_heads, images, features, proposals, gt_instances)
            s_out.roi_features, s_out.roi_scores = rois.features, rois.scores
            targets.roi_labels, targets.roi_image_ids = rois.labels, rois.image_ids
        else:
            rois = None
            _, detector_losses = student.roi_heads(images, features, proposals, gt_instances)
        losses.update(detector_losses)

        with torch.no_grad():
            t_images = self.normalized_images(
                teacher, batched_inputs, teacher.backbone.size_divisibility, teacher.backbone.padding_constraints
            )
            # Both models see the same (unpadded) image sizes, so boxes need no rescaling.
            assert t_images.image_sizes == images.image_sizes, (t_images.image_sizes, images.image_sizes)
            t_features = teacher.backbone(t_images.tensor)
            t_out = DetectionOutputs(features=t_features)
            if rois is not None:
                t_roi, (t_scores, _) = _box_branch(teacher.roi_heads, t_features, rois.boxes)
                t_out.roi_features, t_out.roi_scores = t_roi, t_scores
            if self.uses(CLASS_MAPS):
                targets.class_maps = batch_class_maps(
                    gt_instances, images.tensor.shape[-2:], self.num_classes, self.class_map_from
                )

        if student.vis_period > 0:
            storage = get_event_storage()
            if storage.iter % student.vis_period == 0:
                student.visualize_training(batched_inputs, proposals)
        self._log_diagnostics(s_out, t_out, targets, len(batched_inputs))
        return TrainingOutputs(losses, s_out, t_out, targets)

    @torch.no_grad()
    def _log_diagnostics(self, s_out: DetectionOutputs, t_out: DetectionOutputs, targets: DetectionTargets, num_images: int):
        """Non-loss scalars: warm-up factor, classes per image, teacher ROI accuracy and agreement."""
        if current_iteration() is None:
            return
        storage = get_event_storage()
        k = self.num_classes
        storage.put_scalar("distill/weight_scale", self.distill_scale())
        if targets.class_maps is not None:
            maps = targets.class_maps
            present = torch.zeros(maps.shape[0], k + 1, dtype=torch.bool, device=maps.device)
            valid = maps >= 0
            rows = torch.arange(maps.shape[0], device=maps.device)[:, None, None].expand_as(maps)
            present[rows[valid], maps[valid]] = True
            storage.put_scalar("distill/classes_per_image", present.sum().item() / max(num_images, 1))
        labels = targets.roi_labels
        if labels is None or len(labels) == 0:
            return
        foreground = labels < k
        storage.put_scalar("distill/fg_rois_per_image", foreground.sum().item() / max(num_images, 1))
        teacher_pred = t_out.roi_scores.argmax(dim=1)
        # A teacher whose ROI accuracy is near the background fraction is not loaded properly.
        storage.put_scalar("distill/teacher_roi_accuracy", (teacher_pred == labels).float().mean().item())
        if t_out.roi_scores.shape[1] == s_out.roi_scores.shape[1]:
            agreement = (teacher_pred == s_out.roi_scores.argmax(dim=1)).float().mean().item()
            storage.put_scalar("distill/teacher_student_agreement", agreement)
