"""Faster R-CNN R101-FPN 3x on COCO: the teacher's recipe.

Same architecture as the model zoo's ``COCO-Detection/faster_rcnn_R_101_FPN_3x.yaml`` (42.0 box AP), so
its published weights load strictly into this ``model``. Distillation configs take only ``model`` from
here; training it is only needed to make a teacher for other data (e.g. the demo).
"""
from detectron2 import model_zoo

from ..common.train import train
from .faster_rcnn_R_50_FPN_1x import dataloader, model, optimizer

lr_multiplier = model_zoo.get_config("common/coco_schedule.py").lr_multiplier_3x
model.backbone.bottom_up.stages.depth = 101

train.init_checkpoint = "detectron2://ImageNetPretrained/MSRA/R-101.pkl"
train.max_iter = 270000  # 3x: 270k iters × 16 images ≈ 36 COCO epochs
train.output_dir = "./output/COCO-Detection/faster_rcnn_R_101_FPN_3x"
