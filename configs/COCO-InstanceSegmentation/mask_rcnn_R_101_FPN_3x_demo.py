"""CPU demo teacher: Mask R-CNN R101-FPN trained on the generated COCO-format data.

Its ``model_final.pth`` is the teacher of ``apd_mask_rcnn_R101_to_R50_FPN_1x_demo.py``; run this first.
"""
from .mask_rcnn_R_50_FPN_1x_demo import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.stages.depth = 101

train.output_dir = "./output/demo/mask_rcnn_R_101_FPN_3x"
