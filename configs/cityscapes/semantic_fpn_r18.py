"""Semantic FPN-R18 on Cityscapes."""
from .semantic_fpn_r50 import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.depth = 18
train.init_checkpoint = "checkpoints/resnet18_imagenet.pth"
