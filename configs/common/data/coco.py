"""COCO 2017 detection / instance segmentation data for the R-CNN distiller (docs/METHOD.md §6).

Detectron2's own ``common/data/coco.py`` (multi-scale 640–800 train, 800 test, BGR, instance
masks), so runs compare directly with Detectron2's baselines, with two project classes in place of
Detectron2's (same arguments):

- ``apd.data.detection_mapper.DetectionDatasetMapper``: refuses 16-bit/float images and images with
  transparent pixels by name, which ``read_image`` would clip or flatten;
- ``apd.evaluation.COCOEvaluator``: tasks from ``dataloader.train.mapper.use_instance_mask`` (so a
  Mask R-CNN run reports ``segm`` even with zero detections), AP 0 rather than NaN for zero
  detections, and unusable ground truth dropped as in training.

The ``coco_2017_*`` datasets get the checked loader of ``apd.data.datasets.coco`` on import of
``apd``. Leaf configs change e.g. ``dataloader.train.mapper.image_format`` (the test mapper follows
by interpolation) or ``dataloader.train.mapper.use_instance_mask`` (the evaluator follows).
"""
from detectron2 import model_zoo
from detectron2.config import LazyCall as L

from apd.data.detection_mapper import DetectionDatasetMapper
from apd.evaluation import COCOEvaluator

dataloader = model_zoo.get_config("common/data/coco.py").dataloader
dataloader.train.mapper._target_ = DetectionDatasetMapper
dataloader.test.mapper._target_ = DetectionDatasetMapper
dataloader.evaluator = L(COCOEvaluator)(
    dataset_name="${..test.dataset.names}",
    use_instance_mask="${..train.mapper.use_instance_mask}",
)
