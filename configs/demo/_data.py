# Demo data: the generated Cityscapes-format dataset (datasets/generate_demo_data.py), CPU-sized.
from detectron2.config import LazyCall as L
from detectron2.evaluation import SemSegEvaluator

from apd.evaluation import load_sem_seg_gt

from ..common.data.cityscapes import dataloader

dataloader.train.mapper.augmentations.crop_size = (128, 256)
dataloader.train.total_batch_size = 8
dataloader.train.num_workers = 1
dataloader.test.mapper.augmentations.base_size = None  # evaluate at the generated 256×512
dataloader.test.num_workers = 1
# SemSegEvaluator reports mIoU/fwIoU/pixel accuracy and per-class IoU on the same dataset;
# the real recipe uses CityscapesSemSegEvaluator (tests/ exercise both on generated data).
dataloader.evaluator = L(SemSegEvaluator)(
    dataset_name="${..test.dataset.names}", sem_seg_loading_fn=load_sem_seg_gt, output_dir=None)
