"""Mask R-CNN R50-FPN 1x on COCO: the student-only baseline.

Detectron2's own ``COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.py`` (model zoo: 38.6 box / 35.2 mask
AP), with this project's ``train`` dict.
"""
from detectron2 import model_zoo

from ..common.data.coco import dataloader
from ..common.train import train

_d2 = model_zoo.get_config("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.py")
lr_multiplier, model, optimizer = _d2.lr_multiplier, _d2.model, _d2.optimizer

train.init_checkpoint = _d2.train.init_checkpoint  # ImageNet R-50 (MSRA, BGR/caffe statistics)
train.max_iter = 90000  # 1x: 90k iters × 16 images = 1.44M images ≈ 12 epochs of COCO train2017 (118k)
train.output_dir = "./output/COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x"
