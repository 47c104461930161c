"""Mask R-CNN R101-FPN 3x on COCO: the teacher's recipe.

Same architecture as the model zoo's ``COCO-InstanceSegmentation/mask_rcnn_R_101_FPN_3x.yaml``
(42.9 box / 38.6 mask AP), so its published weights load strictly into this ``model``.
"""
from detectron2 import model_zoo

from ..common.train import train
from .mask_rcnn_R_50_FPN_1x import dataloader, model, optimizer

lr_multiplier = model_zoo.get_config("common/coco_schedule.py").lr_multiplier_3x
model.backbone.bottom_up.stages.depth = 101

train.init_checkpoint = "detectron2://ImageNetPretrained/MSRA/R-101.pkl"
train.max_iter = 270000  # 3x: 270k iters × 16 images ≈ 36 COCO epochs
train.output_dir = "./output/COCO-InstanceSegmentation/mask_rcnn_R_101_FPN_3x"
