"""PSPNet-R101 on Cityscapes (docs/METHOD.md §4): the teacher recipe. 713×713 crops, batch 8, lr 0.005, poly 0.9.

ImageNet init: convert a deep-stem ResNet-101 (tools/convert_torchvision_backbone.py) and set
train.init_checkpoint; published APD/semseg teachers convert with tools/convert_official_apd.py.
"""
from ..common.models.pspnet import model
from ..common.optim import SGD as optimizer
from ..common.schedules import lr_multiplier
from ..common.train import train
from ._recipe import dataloader, on_cityscapes

# 200 epochs × 2975 images / batch 8 = 74,375 iterations, lr 0.005, and the APD test protocol: sliding
# 713 windows (stride ceil(2/3·713)) with flip averaging (docs/METHOD.md §4).
on_cityscapes(model, optimizer, train)
train.eval_period = 5000
train.checkpointer.period = 5000
train.init_checkpoint = "checkpoints/resnet101_v2_imagenet.pth"
