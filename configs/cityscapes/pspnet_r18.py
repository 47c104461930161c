"""PSPNet-R18 on Cityscapes: the APD student trained alone (the no-distillation baseline)."""
from .pspnet_r101 import dataloader, lr_multiplier, model, optimizer, train

model.backbone.depth = 18  # the head reads res4 = 256, res5 = 512 channels from the backbone node
train.init_checkpoint = "checkpoints/resnet18_v2_imagenet.pth"
