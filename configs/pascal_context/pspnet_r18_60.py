"""PSPNet-R18 on PASCAL-Context with 60 classes (student baseline of the official APD setting)."""
from .pspnet_r101_60 import dataloader, lr_multiplier, model, optimizer, train

model.backbone.depth = 18
train.init_checkpoint = "checkpoints/resnet18_v2_imagenet.pth"
