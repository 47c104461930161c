"""DeepLabV3-R101 on Cityscapes (output stride 8, ASPP 12/24/36, aux head): teacher of apd_deeplab_r18."""
from ..common.models.deeplabv3 import model
from .pspnet_r101 import dataloader, lr_multiplier, optimizer, train

train.init_checkpoint = "checkpoints/resnet101_v2_imagenet.pth"
model.sliding_window = dict(crop_size=(713, 713), flip=True)
