"""PSPNet-MobileNetV2 (student baseline) on ADE20K (150 classes): the Cityscapes config with this dataset's recipe (_recipe.py)."""
from ..cityscapes.pspnet_mbv2 import lr_multiplier, model, optimizer, train
from ._recipe import dataloader, on_ade20k

on_ade20k(model, optimizer, train)
