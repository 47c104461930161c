"""Cityscapes fine (19 classes) semantic segmentation: docs/METHOD.md §4 recipe (713 crops, batch 8).

Datasets ``cityscapes_fine_sem_seg_{train,val}`` are registered by Detectron2 (labelTrainIds.png).
The evaluator is the official protocol (cityscapesscripts on the shipped ``*_gtFine_labelIds.png``),
through ``apd.evaluation.CityscapesSemSegEvaluator``: it reports ``mIoU`` and per-class IoU, and
counts a class predicted but absent from the ground truth as 0 (docs/RELIABILITY.md, "Which mIoU").
"""
from omegaconf import OmegaConf

from detectron2.config import LazyCall as L
from detectron2.data import (
    build_detection_test_loader,
    get_detection_dataset_dicts,
)
from apd.data.dataset_mapper import SemSegDatasetMapper
from apd.data.samplers import build_resumable_train_loader
from apd.data.transforms import build_test_augmentations, build_train_augmentations
from apd.evaluation import CityscapesSemSegEvaluator

from .constants import constants as _constants

dataloader = OmegaConf.create()

# Positional loader: every sample is a function of (seed, position) -> exact --resume, and a
# 2-process run sees the batches of a 1-process run (apd/data/samplers.py).
dataloader.train = L(build_resumable_train_loader)(
    dataset=L(get_detection_dataset_dicts)(names="cityscapes_fine_sem_seg_train"),
    mapper=L(SemSegDatasetMapper)(
        is_train=True,
        augmentations=L(build_train_augmentations)(
            crop_size=_constants.cityscapes_crop_size,
            scale=(0.5, 2.0),
            rotate=(-10, 10),
            # Image pad colour, in image_format's channel order (change both together).
            pad_value=_constants.imagenet_rgb256_mean,
            ignore_value="${..ignore_value}",
        ),
        num_classes=_constants.cityscapes_num_classes,
        image_format="RGB",
        ignore_value=_constants.ignore_value,
        skip_bad_samples=False,
        # As the official dataset: a crop whose label holds no valid class is drawn again.
        redraw_crops_without_label=True,
    ),
    total_batch_size=8,
    num_workers=4,
    seed="${...train.seed}",
)

dataloader.test = L(build_detection_test_loader)(
    dataset=L(get_detection_dataset_dicts)(names="cityscapes_fine_sem_seg_val", filter_empty=False),
    mapper=L(SemSegDatasetMapper)(
        is_train=False,
        augmentations=L(build_test_augmentations)(base_size=_constants.cityscapes_test_base_size),
        num_classes="${...train.mapper.num_classes}",
        image_format="${...train.mapper.image_format}",
        ignore_value="${...train.mapper.ignore_value}",
    ),
    num_workers=4,
)

dataloader.evaluator = L(CityscapesSemSegEvaluator)(dataset_name="${..test.dataset.names}")
