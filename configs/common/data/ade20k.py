"""ADE20K (SceneParsing, 150 classes) semantic segmentation: docs/METHOD.md §4 (473 crops, batch 8).

Datasets ``ade20k_sem_seg_{train,val}`` are registered by Detectron2 (``annotations_detectron2``
labels: 0..149, 255 = "other", made by datasets/prepare_ade20k.py). Everything else is the Cityscapes
pipeline (cityscapes.py) with this dataset's names, classes, crop and test size.
"""
from detectron2.config import LazyCall as L

from apd.evaluation import SemSegEvaluator

from .cityscapes import dataloader
from .constants import constants as _constants

dataloader.train.dataset.names = "ade20k_sem_seg_train"
dataloader.test.dataset.names = "ade20k_sem_seg_val"
dataloader.train.mapper.num_classes = _constants.ade20k_num_classes
dataloader.train.mapper.augmentations.crop_size = _constants.ade20k_crop_size
dataloader.train.total_batch_size = 8
dataloader.test.mapper.augmentations.base_size = _constants.ade20k_test_base_size
# Detectron2's protocol: mIoU over the classes present in the ground truth (the usual ADE20K and
# PASCAL-Context number; docs/RELIABILITY.md, "Which mIoU").
dataloader.evaluator = L(SemSegEvaluator)(dataset_name="${..test.dataset.names}")
