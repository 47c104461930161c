"""APD on COCO instance segmentation: Mask R-CNN R101-FPN 3x teacher (BGR) → R18-FPN 1x student (RGB).

Same method as ``apd_mask_rcnn_R101_to_R50_FPN_1x.py``; the distiller reverses the teacher's channels.
"""
from .apd_mask_rcnn_R101_to_R50_FPN_1x import adapter_optimizer, model, optimizer
from .mask_rcnn_R_18_FPN_1x import dataloader, lr_multiplier, train
from .mask_rcnn_R_18_FPN_1x import model as _student

model.student = _student
train.output_dir = "./output/COCO-InstanceSegmentation/apd_mask_rcnn_R101_to_R18_FPN_1x"
