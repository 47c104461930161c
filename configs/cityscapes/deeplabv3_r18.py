"""DeepLabV3-R18 on Cityscapes: the student of apd_deeplab_r18, trained alone."""
from detectron2.layers import ShapeSpec

from .deeplabv3_r101 import dataloader, lr_multiplier, model, optimizer, train

model.backbone.depth = 18
model.sem_seg_head.input_shape = {
    "res4": ShapeSpec(channels=256, stride=8),
    "res5": ShapeSpec(channels=512, stride=8),
}
train.init_checkpoint = "checkpoints/resnet18_v2_imagenet.pth"
