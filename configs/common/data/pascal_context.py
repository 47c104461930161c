"""PASCAL-Context semantic segmentation, 59 classes (docs/METHOD.md §4: 473 crops, batch 12).

Datasets ``pascal_context_59_sem_seg_{train,val}`` (and ``_60_`` with background as class 0) are
registered by ``apd.data.datasets``. The official APD runs use 60 classes; a leaf config switches
with ``dataloader.train.dataset.names = "pascal_context_60_sem_seg_train"``,
``dataloader.test.dataset.names = "pascal_context_60_sem_seg_val"`` and
``dataloader.train.mapper.num_classes = 60`` (the test mapper and the evaluator follow by
interpolation). Everything else is the ADE20K pipeline (ade20k.py).
"""
from .ade20k import dataloader
from .constants import constants as _constants

dataloader.train.dataset.names = "pascal_context_59_sem_seg_train"
dataloader.test.dataset.names = "pascal_context_59_sem_seg_val"
dataloader.train.mapper.num_classes = _constants.pascal_context_num_classes
dataloader.train.mapper.augmentations.crop_size = _constants.pascal_context_crop_size
dataloader.train.total_batch_size = 12
dataloader.test.mapper.augmentations.base_size = _constants.pascal_context_test_base_size
