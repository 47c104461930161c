"""RCNNDistiller: distillation for Detectron2's R-CNNs (Faster / Mask R-CNN with FPN).

The task half of :class:`~.distiller.Distiller` (which owns the frozen teacher, its preprocessing, the
loop over the terms, the weights, the warm-up and student-only inference / checkpoints). Per training
batch it computes what the terms ask for (:mod:`apd.modeling.distill.detection_inputs`):

- always: the student's Detectron2 losses (``loss_rpn_cls``, ``loss_rpn_loc``, ``loss_cls``,
  ``loss_box_reg``, ``loss_mask`` / ``loss_keypoint``) and both models' FPN features;
- terms with ``uses_class_maps``: per-image ground-truth class maps (masks or filled boxes,
  background = K, padding ignored; :mod:`apd.modeling.distill.class_maps`);
- terms with ``uses_rois``: both models' box-head outputs and scores on the *student's* sampled
  proposals, and the ROIs' ``gt_classes`` (docs/METHOD.md §6).

Terms: :class:`~apd.modeling.distill.fpn_terms.FPNAPDHead` (dense APD, docs/METHOD.md §6b),
:class:`~apd.modeling.distill.fpn_terms.FPNImitationHead`, :class:`~apd.modeling.distill.roi_terms.ROIAPDHead`
(ROI-level APD ablation) and :class:`~apd.modeling.distill.roi_terms.ROILogitKDHead` (logit KD).

Checkpoints: the student's keys are ``student.*``, the terms' ``distill_heads.<name>.*``. Checkpoints of
the former RCNNDistiller, whose student modules sat at the top level (``backbone.*``,
``proposal_generator.*``, ``roi_heads.*``) with the ROI APD adapters under ``apd_head.*``, are renamed
when loaded (:func:`upgrade_legacy_rcnn_keys`).

Shape letters: B images, R sampled ROIs over the batch, K foreground classes (background = K).
"""
import logging
from typing import Dict, List, Mapping, Optional

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
from .distiller import Distiller, current_iteration

logger = logging.getLogger(__name__)

__all__ = ["RCNNDistiller", "rcnn_distiller_from_models", "upgrade_legacy_rcnn_keys", "LEGACY_STUDENT_MODULES"]

# Top-level modules of the former RCNNDistiller (which was the student GeneralizedRCNN itself).
LEGACY_STUDENT_MODULES = ("backbone", "proposal_generator", "roi_heads")
LEGACY_APD_HEAD = "apd_head"


def _check_roi_heads(roi_heads: nn.Module, who: str) -> None:
    # Cascade heads subclass StandardROIHeads but hold one box head per stage.
    if not isinstance(roi_heads, StandardROIHeads) or isinstance(roi_heads, CascadeROIHeads):
        raise TypeError(
            f"ROI distillation terms need the {who}'s roi_heads to be a StandardROIHeads (one box_pooler, "
            f"box_head and box_predictor); got {type(roi_heads).__name__}."
        )


def _box_head_channels(roi_heads: StandardROIHeads) -> int:
    """Channels of the flattened box-head output (what enters the box predictor)."""
    shape = roi_heads.box_head.output_shape
    return int(shape.channels * (shape.height or 1) * (shape.width or 1))


def _box_branch(roi_heads: StandardROIHeads, features: Dict[str, torch.Tensor], boxes: List[Boxes]):
    """(R×C box-head output, box predictor outputs) on ``boxes``, as ``StandardROIHeads._forward_box``."""
    pooled = roi_heads.box_pooler([features[f] for f in roi_heads.box_in_features], boxes)
    roi_features = roi_heads.box_head(pooled).flatten(1)
    return roi_features, roi_heads.box_predictor(roi_features)


def upgrade_legacy_rcnn_keys(state_dict: Mapping, prefix: str = "", roi_apd_name: Optional[str] = None) -> Dict:
    """Rename keys of a former-RCNNDistiller checkpoint in place; returns {old: new} of what changed.

    ``backbone.*`` / ``proposal_generator.*`` / ``roi_heads.*`` → ``student.*``; ``apd_head.*`` →
    ``distill_heads.<roi_apd_name>.*`` (left alone when ``roi_apd_name`` is None). Keys already in the
    new layout are untouched, so the function is idempotent.
    """
    renamed = {}
    for key in list(state_dict.keys()):
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        first = rest.split(".", 1)[0]
        if first in LEGACY_STUDENT_MODULES:
            new = prefix + "student." + rest
        elif first == LEGACY_APD_HEAD and roi_apd_name is not None and "." in rest:
            new = prefix + f"distill_heads.{roi_apd_name}." + rest.split(".", 1)[1]
        else:
            continue
        if new in state_dict:
            continue
        state_dict[new] = state_dict.pop(key)
        renamed[key] = new
    return renamed


@META_ARCH_REGISTRY.register()
class RCNNDistiller(Distiller):
    """Distils a frozen GeneralizedRCNN teacher into a GeneralizedRCNN student.

    Args:
        student: a built ``GeneralizedRCNN`` (FPN backbone for the FPN terms; a non-cascade
            ``StandardROIHeads`` for the ROI terms). Inference = ``student(batched_inputs)``.
        teacher: a built ``GeneralizedRCNN`` with the same classes (own pixel mean/std and input format;
            RGB↔BGR are converted).
        teacher_weights, distill_heads, loss_weights, save_teacher, warmup_iters: keywords passed on to
            :class:`~.distiller.Distiller`. ``distill_heads`` are detection terms (module docstring).
        class_map_from: "auto" (instance masks when the data has ``gt_masks``, else boxes), "masks" or
            "boxes": the source of the class maps of the dense terms.
    """

    def __init__(self, *, class_map_from: str = "auto", **kwargs):
        if class_map_from not in CLASS_MAP_SOURCES:
            raise ValueError(f"class_map_from must be one of {CLASS_MAP_SOURCES}, got {class_map_from!r}")
        super().__init__(**kwargs)
        self.class_map_from = class_map_from
        self.register_load_state_dict_pre_hook(_upgrade_legacy_keys_hook)

    # ----------------------------------------------------------------------------------- checks
    @property
    def uses_rois(self) -> bool:
        return any(getattr(h, "uses_rois", False) for h in self.distill_heads.values())

    @property
    def uses_class_maps(self) -> bool:
        return any(getattr(h, "uses_class_maps", False) for h in self.distill_heads.values())

    @property
    def num_classes(self) -> int:
        return int(self.student.roi_heads.num_classes)

    def roi_apd_name(self) -> Optional[str]:
        """Name of the ROI-level APD term (where the former ``apd_head`` weights go), or None."""
        from ..distill.roi_terms import ROIAPDHead

        return next((n for n, h in self.distill_heads.items() if isinstance(h, ROIAPDHead)), None)

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
        shapes = {"student": self.student.backbone.output_shape(), "teacher": self.teacher.backbone.output_shape()}
        for name, head in self.distill_heads.items():
            classes = getattr(head, "num_classes", k_s)
            if classes != k_s:
                raise ConfigMismatchError(f"distill_heads['{name}'].num_classes={classes} but the student has {k_s} classes.")
            for who in ("student", "teacher"):
                for level in getattr(head, "levels", ()):
                    if level not in shapes[who]:
                        raise ConfigMismatchError(
                            f"distill_heads['{name}'] reads level '{level}' but the {who}'s backbone outputs "
                            f"{sorted(shapes[who])}."
                        )
                    expected = getattr(head, f"{who}_channels", None)
                    if getattr(head, "uses_rois", False):
                        continue
                    if expected is not None and expected != shapes[who][level].channels:
                        raise ConfigMismatchError(
                            f"distill_heads['{name}'].{who}_channels={expected} but the {who}'s level '{level}' "
                            f"has {shapes[who][level].channels} channels."
                        )
            if getattr(head, "uses_rois", False):
                for who in ("student", "teacher"):
                    roi_heads = getattr(self, who).roi_heads
                    _check_roi_heads(roi_heads, who)
                    expected = getattr(head, f"{who}_channels", None)
                    actual = _box_head_channels(roi_heads)
                    if expected is not None and expected != actual:
                        raise ConfigMismatchError(
                            f"distill_heads['{name}'].{who}_channels={expected} but the {who}'s box head "
                            f"outputs {actual} channels per ROI."
                        )

    # -------------------------------------------------------------------------------- forward
    def forward_train(self, batched_inputs: List[Dict[str, torch.Tensor]]):
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
        if self.uses_rois:
            sampled = self._student_roi_heads(features, proposals, gt_instances, s_out, targets, losses)
        else:
            sampled = None
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
            if sampled is not None:
                t_roi, (t_scores, _) = _box_branch(teacher.roi_heads, t_features, [p.proposal_boxes for p in sampled])
                t_out.roi_features, t_out.roi_scores = t_roi, t_scores
            if self.uses_class_maps:
                targets.class_maps = batch_class_maps(
                    gt_instances, images.tensor.shape[-2:], self.num_classes, self.class_map_from
                )

        if student.vis_period > 0:
            storage = get_event_storage()
            if storage.iter % student.vis_period == 0:
                student.visualize_training(batched_inputs, proposals)
        self._log_diagnostics(s_out, t_out, targets, len(batched_inputs))
        return losses, s_out, t_out, targets

    def _student_roi_heads(self, features, proposals, gt_instances, s_out, targets, losses) -> List[Instances]:
        """The student's ROI heads in training, exactly as ``StandardROIHeads.forward``, keeping the
        sampled proposals and the box branch's outputs for the ROI terms."""
        heads = self.student.roi_heads
        sampled = heads.label_and_sample_proposals(proposals, gt_instances)
        roi_features, predictions = _box_branch(heads, features, [p.proposal_boxes for p in sampled])
        losses.update(heads.box_predictor.losses(predictions, sampled))
        if heads.train_on_pred_boxes:
            with torch.no_grad():
                pred_boxes = heads.box_predictor.predict_boxes_for_gt_classes(predictions, sampled)
                for proposals_per_image, boxes_per_image in zip(sampled, pred_boxes):
                    proposals_per_image.proposal_boxes = Boxes(boxes_per_image)
        losses.update(heads._forward_mask(features, sampled))
        losses.update(heads._forward_keypoint(features, sampled))
        s_out.roi_features, s_out.roi_scores = roi_features, predictions[0]
        targets.roi_labels = torch.cat([p.gt_classes for p in sampled])
        targets.roi_image_ids = torch.cat(
            [torch.full((len(p),), i, dtype=torch.long, device=targets.roi_labels.device) for i, p in enumerate(sampled)]
        )
        return sampled

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


def _upgrade_legacy_keys_hook(module, state_dict, prefix, *args):
    renamed = upgrade_legacy_rcnn_keys(state_dict, prefix, module.roi_apd_name())
    if renamed:
        logger.info(
            f"Loaded a checkpoint of the former RCNNDistiller layout: renamed {len(renamed)} keys "
            "(backbone/proposal_generator/roi_heads → student.*, apd_head → distill_heads.<roi_apd>)"
        )


def rcnn_distiller_from_models(
    *,
    student: GeneralizedRCNN,
    teacher: GeneralizedRCNN,
    teacher_weights: Optional[str] = None,
    save_teacher: bool = False,
    apd_head: Optional[nn.Module] = None,
    loss_weights: Optional[Dict[str, float]] = None,
    kd_temperature: float = 1.0,
    use_kd: bool = False,
    include_background_proto: bool = False,
    warmup_iters: int = 0,
) -> RCNNDistiller:
    """The former configuration interface (``apd_head`` + ``use_kd``), kept so that saved configs of
    earlier runs still build: ROI-level APD from an ``APDHead(adapter="mlp")`` (its adapters are taken
    over) and logit KD on the ROI scores, as an :class:`RCNNDistiller` with ``distill_heads``
    ``{"roi_apd": ROIAPDHead, "kd": ROILogitKDHead}``. Loss keys ``loss_apd`` / ``loss_pa`` /
    ``loss_adapt`` of ``loss_weights`` become ``loss_roi_*``. New configs set ``distill_heads``."""
    from ..distill.roi_terms import ROIAPDHead, ROILogitKDHead

    heads: Dict[str, nn.Module] = {}
    if apd_head is not None:
        first, last = apd_head.student_adapter[0], apd_head.student_adapter[2]
        classes = int(apd_head.num_classes) - (1 if include_background_proto else 0)
        roi_apd = ROIAPDHead(
            student_channels=first.in_features,
            teacher_channels=apd_head.teacher_adapter[0].in_features,
            num_classes=classes,
            hidden_dim=first.out_features,
            embed_dim=last.out_features,
            tau=apd_head.tau,
            include_background_proto=include_background_proto,
        )
        roi_apd.student_adapter.load_state_dict(apd_head.student_adapter.state_dict())
        roi_apd.teacher_adapter.load_state_dict(apd_head.teacher_adapter.state_dict())
        heads["roi_apd"] = roi_apd
    if use_kd:
        heads["kd"] = ROILogitKDHead(temperature=kd_temperature)
    renames = {"loss_apd": "loss_roi_apd", "loss_pa": "loss_roi_pa", "loss_adapt": "loss_roi_adapt"}
    weights = {}
    for key, value in dict(loss_weights or {}).items():
        key = renames.get(key, key)
        if (key.startswith("loss_roi_") and apd_head is None) or (key == "loss_kd" and not use_kd):
            continue  # the former interface allowed weights of disabled terms
        weights[key] = value
    return RCNNDistiller(
        student=student,
        teacher=teacher,
        teacher_weights=teacher_weights,
        distill_heads=heads,
        loss_weights=weights,
        save_teacher=save_teacher,
        warmup_iters=warmup_iters,
    )
