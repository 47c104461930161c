"""Semantic FPN-R50 on Cityscapes (output stride 32 trunk, stride-4 head)."""
from ..common.models.semantic_fpn import model
from ._recipe import on_cityscapes
from .pspnet_r101 import dataloader, lr_multiplier, optimizer, train

on_cityscapes(model, optimizer, train)  # the new model node gets the Cityscapes classes and test protocol
train.init_checkpoint = "checkpoints/resnet50_imagenet.pth"
