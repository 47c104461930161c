"""Mask R-CNN R18-FPN 1x on COCO: the student-only baseline of the R101 → R18 pair.

``mask_rcnn_R_50_FPN_1x.py`` with the ResNet-18 of ``../COCO-Detection/faster_rcnn_R_18_FPN_1x.py``
(BasicBlocks, torchvision ImageNet weights converted to Detectron2's layout, RGB input with torchvision
statistics; see that file for the conversion).
"""
from detectron2.config import LazyCall as L
from detectron2.modeling.backbone import ResNet

from .mask_rcnn_R_50_FPN_1x import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.stages = L(ResNet.make_default_stages)(depth=18, norm="FrozenBN")
model.input_format = dataloader.train.mapper.image_format = "RGB"  # the test mapper follows train's
model.pixel_mean = [123.675, 116.28, 103.53]  # torchvision ImageNet mean/std × 255, RGB order
model.pixel_std = [58.395, 57.12, 57.375]

train.init_checkpoint = "./checkpoints/R-18-torchvision.pkl"
train.output_dir = "./output/COCO-InstanceSegmentation/mask_rcnn_R_18_FPN_1x"
