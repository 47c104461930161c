"""DeepLabV3-R101 on Cityscapes (output stride 8, ASPP 12/24/36, aux head): teacher of apd_deeplab_r18."""
from ..common.models.deeplabv3 import model
from ._recipe import on_cityscapes
from .pspnet_r101 import dataloader, lr_multiplier, optimizer, train

on_cityscapes(model, optimizer, train)  # the new model node gets the Cityscapes classes and test protocol
