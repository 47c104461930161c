# Demo data: the generated Cityscapes-format dataset (datasets/generate_demo_data.py), CPU-sized.
from detectron2.config import LazyCall as L

from apd.evaluation import SemSegEvaluator

from ..common.data.cityscapes import dataloader

dataloader.train.mapper.augmentations.crop_size = (128, 256)
dataloader.train.total_batch_size = 8
dataloader.train.num_workers = 1
dataloader.test.mapper.augmentations.base_size = None  # evaluate at the generated 256×512
dataloader.test.num_workers = 1
# SemSegEvaluator reports mIoU/fwIoU/pixel accuracy and per-class IoU (mIoU over the classes in the
# ground truth). The real Cityscapes recipe uses the official protocol; switch to it with the override
#   dataloader.evaluator._target_=apd.evaluation.CityscapesSemSegEvaluator
# (both take only dataset_name here; docs/RELIABILITY.md, "Which mIoU").
dataloader.evaluator = L(SemSegEvaluator)(dataset_name="${..test.dataset.names}")
