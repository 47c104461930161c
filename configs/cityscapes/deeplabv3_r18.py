"""DeepLabV3-R18 on Cityscapes: the student of apd_deeplab_r18, trained alone."""
from .deeplabv3_r101 import dataloader, lr_multiplier, model, optimizer, train

model.backbone.depth = 18
train.init_checkpoint = "checkpoints/resnet18_v2_imagenet.pth"
