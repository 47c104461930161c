"""APD for Detectron2's R-CNNs (Faster / Mask R-CNN with FPN): ROIs play the role of pixels.

APD_SPEC §6 (a proposal, [P]): both detectors are pooled on the *student's sampled proposals*, so each
ROI has a partner in the other model, as each pixel has in segmentation. Per ROI the student's and the
teacher's box-head outputs (R×C_s, R×C_t) are the "features", the ROI's ``gt_classes`` are the labels
(background ROIs are ignored for prototypes but remain rows of the KL), and each image is one
perspective. The APD maths is :class:`apd.modeling.distill.apd_head.APDHead` (``forward_points``) and
the logit KD is :func:`apd.modeling.losses.logit_kd_loss`; nothing here re-implements them.

Shape letters: B images, R sampled ROIs over the batch, K foreground classes (background = K),
C_s / C_t box-head output channels.
"""
import logging
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN
from detectron2.modeling.roi_heads import StandardROIHeads
from detectron2.modeling.roi_heads.cascade_rcnn import CascadeROIHeads
from detectron2.structures import Boxes, ImageList, Instances
from detectron2.utils.events import get_event_storage

from ..losses import logit_kd_loss
from .distiller import ADAPTER_ONLY_KEYS, current_iteration, warmup_factor
from .teacher import ChannelSwappedModel, TeacherMixin, needs_channel_swap

logger = logging.getLogger(__name__)

__all__ = ["RCNNDistiller", "rcnn_distiller_from_models"]

DEFAULT_LOSS_WEIGHTS = {"loss_apd": 1.0, "loss_pa": 1.0, "loss_adapt": 1.0, "loss_kd": 1.0}


def _check_roi_heads(roi_heads: nn.Module, who: str) -> None:
    # Cascade heads subclass StandardROIHeads but hold one box head per stage.
    if not isinstance(roi_heads, StandardROIHeads) or isinstance(roi_heads, CascadeROIHeads):
        raise TypeError(
            f"RCNNDistiller needs the {who}'s roi_heads to be a StandardROIHeads (one box_pooler, "
            f"box_head and box_predictor); got {type(roi_heads).__name__}."
        )


def _box_head_channels(roi_heads: StandardROIHeads) -> int:
    """Channels of the flattened box-head output (what enters the box predictor)."""
    shape = roi_heads.box_head.output_shape
    return int(shape.channels * (shape.height or 1) * (shape.width or 1))


@META_ARCH_REGISTRY.register()
class RCNNDistiller(TeacherMixin, GeneralizedRCNN):
    """A GeneralizedRCNN student trained with APD (and optional logit KD) from a frozen R-CNN teacher.

    The student *is* this GeneralizedRCNN: its modules are ``backbone``, ``proposal_generator`` and
    ``roi_heads`` at the top level, so Detectron2 checkpoints of the student load directly and
    :meth:`inference` is ``GeneralizedRCNN.inference`` (student only; the teacher never runs).

    Training (:meth:`forward`) returns Detectron2's usual losses unchanged (``loss_rpn_cls``,
    ``loss_rpn_loc``, ``loss_cls``, ``loss_box_reg``, ``loss_mask`` / ``loss_keypoint`` when those
    heads exist) plus the weighted distillation terms ``loss_apd``, ``loss_pa``, ``loss_adapt``
    (with ``apd_head``) and ``loss_kd`` (with ``use_kd``). ``loss_adapt`` only reaches
    ``apd_head.teacher_adapter``, which the trainer steps with its own optimizer (``adapter_optimizer``);
    one backward of the sum of all values is exact.

    Stable interface: the constructor arguments, the loss keys above, the attribute names ``teacher``
    and ``apd_head``, and :meth:`forward` / :meth:`inference` as in GeneralizedRCNN.
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: nn.Module,
        proposal_generator: Optional[nn.Module],
        roi_heads: nn.Module,
        pixel_mean: Tuple[float, ...],
        pixel_std: Tuple[float, ...],
        input_format: Optional[str] = None,
        vis_period: int = 0,
        teacher: GeneralizedRCNN,
        teacher_weights: Optional[str] = None,
        save_teacher: bool = False,
        apd_head: Optional[nn.Module] = None,
        loss_weights: Optional[Dict[str, float]] = None,
        kd_temperature: float = 1.0,
        use_kd: bool = False,
        include_background_proto: bool = False,
        warmup_iters: int = 0,
    ):
        """
        Args:
            backbone, proposal_generator, roi_heads, pixel_mean, pixel_std, input_format, vis_period:
                the student, exactly as for :class:`GeneralizedRCNN`. ``roi_heads`` must be a
                (non-cascade) ``StandardROIHeads``.
            teacher: a built GeneralizedRCNN (own pixel mean/std and input format; its roi_heads a
                ``StandardROIHeads``). It is frozen, kept in eval mode and run under ``no_grad``.
            teacher_weights: teacher checkpoint (Detectron2 model-zoo ``.pkl``, ``.pth``, or a
                ``detectron2://`` URL), loaded strictly at construction. ``None`` is allowed for
                building/inference only: a training forward refuses an unloaded teacher.
            save_teacher: keep the teacher in ``state_dict()`` (default: student-only checkpoints).
            apd_head: an ``APDHead`` built with ``student_channels`` / ``teacher_channels`` equal to
                the two box heads' output sizes. ``None`` disables APD (KD-only baseline).
            loss_weights: multipliers for ``loss_apd``, ``loss_pa``, ``loss_adapt``, ``loss_kd``
                (each 1.0 unless given; APD_SPEC §6: detection weights are unconfirmed).
            kd_temperature: T of the logit KD on the box classifier's (K+1)-way scores.
            use_kd: add ``loss_kd`` (needs teacher and student with the same number of classes).
            include_background_proto: give background ROIs (label K) a prototype of their own
                (``apd_head.num_classes`` must then be K+1); by default they are ignored for
                prototypes but still rows of the KL (APD_SPEC §6, mirroring ignore pixels).
        """
        super().__init__(
            backbone=backbone,
            proposal_generator=proposal_generator,
            roi_heads=roi_heads,
            pixel_mean=pixel_mean,
            pixel_std=pixel_std,
            input_format=input_format,
            vis_period=vis_period,
        )
        _check_roi_heads(roi_heads, "student")
        if not isinstance(teacher, GeneralizedRCNN):
            raise TypeError(f"RCNNDistiller needs a GeneralizedRCNN teacher; got {type(teacher).__name__}.")
        _check_roi_heads(teacher.roi_heads, "teacher")
        if apd_head is None and not use_kd:
            raise ValueError(
                "RCNNDistiller has nothing to distil: apd_head is None and use_kd is False. "
                "Train the plain GeneralizedRCNN config for a student-only baseline."
            )
        self.teacher = teacher
        self.apd_head = apd_head
        self.use_kd = use_kd
        self.kd_temperature = float(kd_temperature)
        self.include_background_proto = include_background_proto
        if int(warmup_iters) < 0:
            raise ValueError(f"warmup_iters must be >= 0, got {warmup_iters}")
        self.warmup_iters = int(warmup_iters)
        self.loss_weights = self._merge_loss_weights(loss_weights)
        self._swap_teacher_channels = needs_channel_swap(input_format, teacher.input_format)

        num_classes = roi_heads.num_classes
        if use_kd and teacher.roi_heads.num_classes != num_classes:
            raise ValueError(
                f"use_kd needs the same classes in teacher and student: teacher roi_heads.num_classes="
                f"{teacher.roi_heads.num_classes}, student roi_heads.num_classes={num_classes}."
            )
        if apd_head is not None:
            self._check_apd_head(apd_head, num_classes)

        self._setup_teacher(teacher_weights, save_teacher)

    @classmethod
    def from_config(cls, cfg):
        raise NotImplementedError(
            "RCNNDistiller is built from LazyConfig (see configs/COCO-Detection/apd_*.py); "
            "there is no yacs (get_cfg) path for the teacher."
        )

    # ----------------------------------------------------------------------------------- checks
    @staticmethod
    def _merge_loss_weights(loss_weights: Optional[Dict[str, float]]) -> Dict[str, float]:
        weights = dict(DEFAULT_LOSS_WEIGHTS)
        for key, value in dict(loss_weights or {}).items():
            if key not in DEFAULT_LOSS_WEIGHTS:
                raise KeyError(
                    f"Unknown key '{key}' in RCNNDistiller loss_weights; expected a subset of "
                    f"{sorted(DEFAULT_LOSS_WEIGHTS)}."
                )
            weights[key] = float(value)
        return weights

    def _check_apd_head(self, apd_head: nn.Module, num_classes: int) -> None:
        expected_classes = num_classes + 1 if self.include_background_proto else num_classes
        head_classes = getattr(apd_head, "num_classes", expected_classes)
        if head_classes != expected_classes:
            raise ValueError(
                f"apd_head.num_classes={head_classes} but the student has roi_heads.num_classes="
                f"{num_classes} (include_background_proto={self.include_background_proto}: expected "
                f"{expected_classes})."
            )
        ignore_value = self._apd_ignore_value = int(getattr(apd_head, "ignore_value", -1))
        if 0 <= ignore_value < expected_classes:
            raise ValueError(
                f"apd_head.ignore_value={ignore_value} is a valid class id (0..{expected_classes - 1}); "
                "use a negative value for background ROIs."
            )
        if getattr(apd_head, "adapter", "mlp") != "mlp":
            raise ValueError(
                f"apd_head.adapter={apd_head.adapter!r}: ROI vectors need APDHead(adapter='mlp')."
            )
        for side, heads in (("student", self.roi_heads), ("teacher", self.teacher.roi_heads)):
            adapter = getattr(apd_head, f"{side}_adapter", None)
            first = next((m for m in adapter.modules() if isinstance(m, nn.Linear)), None) if adapter else None
            actual = _box_head_channels(heads)
            if first is not None and first.in_features != actual:
                raise ValueError(
                    f"apd_head.{side}_channels={first.in_features} but the {side}'s box head outputs "
                    f"{actual} channels per ROI."
                )

    # -------------------------------------------------------------------------------- forward
    def forward(self, batched_inputs: List[Dict[str, torch.Tensor]]):
        """Training: dict of weighted losses (see class docstring). Inference: the student's output."""
        if not self.training:
            return self.inference(batched_inputs)
        self.check_teacher_ready()

        if "instances" not in batched_inputs[0]:
            raise ValueError("RCNNDistiller training needs 'instances' (ground truth) in batched_inputs.")
        images = self.preprocess_image(batched_inputs)
        gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
        features = self.backbone(images.tensor)

        if self.proposal_generator is not None:
            proposals, losses = self.proposal_generator(images, features, gt_instances)
        else:
            proposals = [x["proposals"].to(self.device) for x in batched_inputs]
            losses = {}
        sampled = self.roi_heads.label_and_sample_proposals(proposals, gt_instances)
        boxes = [p.proposal_boxes for p in sampled]

        teacher_roi_features, teacher_scores = self._teacher_rois(batched_inputs, images, boxes)
        student_roi_features, predictions = self._student_rois(features, sampled)

        # Detectron2's box losses, mask/keypoint branches exactly as StandardROIHeads.forward.
        heads = self.roi_heads
        losses.update(heads.box_predictor.losses(predictions, sampled))
        if heads.train_on_pred_boxes:
            with torch.no_grad():
                pred_boxes = heads.box_predictor.predict_boxes_for_gt_classes(predictions, sampled)
                for proposals_per_image, boxes_per_image in zip(sampled, pred_boxes):
                    proposals_per_image.proposal_boxes = Boxes(boxes_per_image)
        losses.update(heads._forward_mask(features, sampled))
        losses.update(heads._forward_keypoint(features, sampled))

        losses.update(
            self._distill_losses(
                student_roi_features, teacher_roi_features, predictions[0], teacher_scores, sampled
            )
        )
        if self.vis_period > 0:
            storage = get_event_storage()
            if storage.iter % self.vis_period == 0:
                self.visualize_training(batched_inputs, proposals)
        return losses

    def _student_rois(
        self, features: Dict[str, torch.Tensor], sampled: List[Instances]
    ) -> Tuple[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """Student box branch, run once: (R×C_s box-head output, box predictor outputs)."""
        heads = self.roi_heads
        pooled = heads.box_pooler(
            [features[f] for f in heads.box_in_features], [p.proposal_boxes for p in sampled]
        )
        roi_features = heads.box_head(pooled).flatten(1)
        return roi_features, heads.box_predictor(roi_features)

    def teacher_preprocess_image(self, batched_inputs: List[Dict[str, torch.Tensor]]) -> ImageList:
        """The student's input images, normalised and padded as the teacher expects.

        Channels are reversed when the two input formats are RGB and BGR (e.g. a model-zoo BGR/caffe
        teacher with a torchvision-initialised RGB student).
        """
        teacher = self.teacher
        images = []
        for x in batched_inputs:
            image = self._move_to_current_device(x["image"])
            if self._swap_teacher_channels:
                image = image.flip(0)
            images.append((image - teacher.pixel_mean) / teacher.pixel_std)
        return ImageList.from_tensors(
            images,
            teacher.backbone.size_divisibility,
            padding_constraints=teacher.backbone.padding_constraints,
        )

    def teacher_for_student_inputs(self) -> nn.Module:
        """The teacher as a model that reads the student's inputs (e.g. to evaluate it on the student's
        test loader): the teacher itself, or a wrapper reversing RGB/BGR channels first."""
        if not self._swap_teacher_channels:
            return self.teacher
        return ChannelSwappedModel(self.teacher)

    def _teacher_rois(
        self, batched_inputs, student_images: ImageList, boxes: List[Boxes]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Teacher box-head outputs (R×C_t) and class scores (R×(K_t+1)) on the student's boxes."""
        teacher = self.teacher
        with torch.no_grad():
            images = self.teacher_preprocess_image(batched_inputs)
            # Both models see the same (unpadded) image sizes, so the boxes need no rescaling.
            assert images.image_sizes == student_images.image_sizes, (
                images.image_sizes,
                student_images.image_sizes,
            )
            features = teacher.backbone(images.tensor)
            heads = teacher.roi_heads
            pooled = heads.box_pooler([features[f] for f in heads.box_in_features], boxes)
            roi_features = heads.box_head(pooled).flatten(1)
            scores, _ = heads.box_predictor(roi_features)
        return roi_features, scores

    def _distill_losses(
        self,
        student_roi_features: torch.Tensor,
        teacher_roi_features: torch.Tensor,
        student_scores: torch.Tensor,
        teacher_scores: torch.Tensor,
        sampled: List[Instances],
    ) -> Dict[str, torch.Tensor]:
        """Weighted APD / KD terms on the R sampled ROIs (background = K)."""
        num_classes = self.roi_heads.num_classes
        gt_classes = torch.cat([p.gt_classes for p in sampled])
        image_ids = torch.cat(
            [torch.full((len(p),), i, dtype=torch.long, device=gt_classes.device) for i, p in enumerate(sampled)]
        )
        losses = {}
        scale = warmup_factor(current_iteration(), self.warmup_iters)
        weights = {k: v if k in ADAPTER_ONLY_KEYS else v * scale for k, v in self.loss_weights.items()}
        if self.apd_head is not None:
            labels = gt_classes
            if not self.include_background_proto:
                labels = gt_classes.masked_fill(gt_classes == num_classes, self._apd_ignore_value)
            terms = self.apd_head.forward_points(
                student_roi_features, teacher_roi_features, labels, image_ids
            )
            for key in ("loss_apd", "loss_pa", "loss_adapt"):
                losses[key] = terms[key] * weights[key]
        if self.use_kd and len(gt_classes) == 0:
            losses["loss_kd"] = student_scores.sum() * 0.0  # no ROI: zero that still backpropagates
        elif self.use_kd:
            # R×(K+1) scores as R×(K+1)×1×1 maps: element mean = per-ROI KL ÷ (K+1) (APD_SPEC §3d).
            losses["loss_kd"] = weights["loss_kd"] * logit_kd_loss(
                student_scores[:, :, None, None],
                teacher_scores[:, :, None, None],
                temperature=self.kd_temperature,
            )
        self._log_diagnostics(gt_classes, image_ids, student_scores, teacher_scores, len(sampled))
        return losses

    @torch.no_grad()
    def _log_diagnostics(self, gt_classes, image_ids, student_scores, teacher_scores, num_images):
        """Non-loss scalars: foreground ROIs and classes per image, teacher accuracy, agreement."""
        num_classes = self.roi_heads.num_classes
        storage = get_event_storage()
        foreground = gt_classes < num_classes
        present = torch.zeros(num_images, num_classes + 1, dtype=torch.bool, device=gt_classes.device)
        present[image_ids[foreground], gt_classes[foreground]] = True
        storage.put_scalar("distill/fg_rois_per_image", foreground.sum().item() / max(num_images, 1))
        storage.put_scalar("distill/classes_per_image", present.sum().item() / max(num_images, 1))
        if len(gt_classes) == 0:
            return
        teacher_pred = teacher_scores.argmax(dim=1)
        # A teacher whose ROI accuracy is near the background fraction is not loaded properly.
        storage.put_scalar("distill/teacher_roi_accuracy", (teacher_pred == gt_classes).float().mean().item())
        if teacher_scores.shape[1] == student_scores.shape[1]:
            agreement = (teacher_pred == student_scores.argmax(dim=1)).float().mean().item()
            storage.put_scalar("distill/teacher_student_agreement", agreement)


def rcnn_distiller_from_models(*, student: GeneralizedRCNN, teacher: GeneralizedRCNN, **kwargs) -> RCNNDistiller:
    """Build an :class:`RCNNDistiller` from a built student GeneralizedRCNN and a teacher.

    The student's modules and preprocessing settings are taken over (not copied), so a config can
    point ``student`` and ``teacher`` at two ordinary model nodes. ``kwargs`` are the remaining
    keyword arguments of :class:`RCNNDistiller` (``teacher_weights``, ``apd_head``, ``loss_weights``, ...).
    """
    if not isinstance(student, GeneralizedRCNN):
        raise TypeError(f"student must be a GeneralizedRCNN; got {type(student).__name__}.")
    return RCNNDistiller(
        backbone=student.backbone,
        proposal_generator=student.proposal_generator,
        roi_heads=student.roi_heads,
        pixel_mean=tuple(student.pixel_mean.flatten().tolist()),
        pixel_std=tuple(student.pixel_std.flatten().tolist()),
        input_format=student.input_format,
        vis_period=student.vis_period,
        teacher=teacher,
        **kwargs,
    )
