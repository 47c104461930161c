"""Evaluators the configs name, made to run end to end with the installed libraries.

- :class:`SemSegEvaluator`: Detectron2's, with a label loader that works with NumPy 2.
- :class:`CityscapesSemSegEvaluator`: the official Cityscapes protocol (cityscapesscripts), with
  ``mIoU`` and per-class ``IoU-<class>`` keys, and one-line errors instead of ``sys.exit``.
- :class:`COCOEvaluator`: Detectron2's, with explicit tasks, 0 (not NaN) for zero detections, and
  the same unusable ground truth dropped as in training.

docs/RELIABILITY.md ("Evaluators", "Which mIoU") explains the two mIoUs.
"""
from .coco import COCOEvaluator
from .sem_seg import (
    CityscapesEvalUnavailable,
    CityscapesSemSegEvaluator,
    SemSegEvaluator,
    check_cityscapes_eval_compat,
    format_per_class_table,
    load_sem_seg_gt,
)

__all__ = [
    "COCOEvaluator",
    "CityscapesEvalUnavailable",
    "CityscapesSemSegEvaluator",
    "SemSegEvaluator",
    "check_cityscapes_eval_compat",
    "format_per_class_table",
    "load_sem_seg_gt",
]
