"""PSPNet-R18 on PASCAL-Context with 60 classes (student baseline of the official APD setting)."""
from detectron2.layers import ShapeSpec

from .pspnet_r101_60 import dataloader, lr_multiplier, model, optimizer, train

model.backbone.depth = 18
model.sem_seg_head.input_shape = {
    "res4": ShapeSpec(channels=256, stride=8),
    "res5": ShapeSpec(channels=512, stride=8),
}
train.init_checkpoint = "checkpoints/resnet18_v2_imagenet.pth"
