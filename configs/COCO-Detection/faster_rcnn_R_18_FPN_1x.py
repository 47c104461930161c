"""Faster R-CNN R18-FPN 1x on COCO: the student-only baseline of the R101 → R18 pair.

Detectron2's ResNet with BasicBlocks (depth 18, res2 64 channels, no res5 dilation) under the same FPN
and heads as R50. There is no R-18 in Detectron2's ImageNet zoo: convert torchvision's
``resnet18-f37072fd.pth`` with Detectron2's ``tools/convert-torchvision-to-d2.py`` (output keeps
``matching_heuristics``). Torchvision weights expect RGB input with ImageNet statistics in 0..255 units.
"""
from detectron2.config import LazyCall as L
from detectron2.modeling.backbone import ResNet

from .faster_rcnn_R_50_FPN_1x import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.stages = L(ResNet.make_default_stages)(depth=18, norm="FrozenBN")
model.input_format = dataloader.train.mapper.image_format = "RGB"  # the test mapper follows train's
model.pixel_mean = [123.675, 116.28, 103.53]  # torchvision ImageNet mean/std × 255, RGB order
model.pixel_std = [58.395, 57.12, 57.375]

train.init_checkpoint = "./checkpoints/R-18-torchvision.pkl"  # see the docstring for the conversion
train.output_dir = "./output/COCO-Detection/faster_rcnn_R_18_FPN_1x"
