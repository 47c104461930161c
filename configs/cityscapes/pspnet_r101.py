"""PSPNet-R101 on Cityscapes (APD_SPEC §4): the teacher recipe. 713×713 crops, batch 8, lr 0.005, poly 0.9.

ImageNet init: convert a deep-stem ResNet-101 (tools/convert_torchvision_backbone.py) and set
train.init_checkpoint; published APD/semseg teachers convert with tools/convert_official_apd.py.
"""
from ..common.data.cityscapes import dataloader
from ..common.models.pspnet import model
from ..common.optim import SGD as optimizer
from ..common.schedules import lr_multiplier
from ..common.train import train

# 200 epochs × 2975 train images / batch 8 ≈ 74,375 iterations (APD_SPEC §4).
train.max_iter = 74375
train.eval_period = 5000
train.checkpointer.period = 5000
train.init_checkpoint = "checkpoints/resnet101_v2_imagenet.pth"
optimizer.lr = 0.005
# APD test protocol: sliding 713 windows (stride ceil(2/3·713)), flip averaging.
model.sliding_window = dict(crop_size=(713, 713), flip=True)
