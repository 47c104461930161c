"""CPU demo teacher: Faster R-CNN R101-FPN trained on the generated COCO-format data.

Same demo changes as ``faster_rcnn_R_50_FPN_1x_demo.py`` (GroupNorm backbone, smaller ROI batch). Its
``model_final.pth`` is the ``teacher_weights`` of the detection distillation demos; run this first.
"""
from .faster_rcnn_R_50_FPN_1x_demo import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.stages.depth = 101

train.output_dir = "./output/demo/faster_rcnn_R_101_FPN_3x"
