"""PSPNet-R18 on Cityscapes: the APD student trained alone (the no-distillation baseline)."""
from detectron2.layers import ShapeSpec

from .pspnet_r101 import dataloader, lr_multiplier, model, optimizer, train

# ResNet-18 (BasicBlock): res4 = 256, res5 = 512 channels, both at stride 8.
model.backbone.depth = 18
model.sem_seg_head.input_shape = {
    "res4": ShapeSpec(channels=256, stride=8),
    "res5": ShapeSpec(channels=512, stride=8),
}
train.init_checkpoint = "checkpoints/resnet18_v2_imagenet.pth"
