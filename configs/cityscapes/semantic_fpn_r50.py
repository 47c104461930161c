"""Semantic FPN-R50 on Cityscapes (output stride 32 trunk, stride-4 head)."""
from ..common.models.semantic_fpn import model
from .pspnet_r101 import dataloader, lr_multiplier, optimizer, train

train.init_checkpoint = "checkpoints/resnet50_imagenet.pth"
model.sliding_window = dict(crop_size=(713, 713), flip=True)
