"""PSPNet-MobileNetV2 (student baseline) on PASCAL-Context (59 classes, background ignored): the Cityscapes config with this dataset's recipe (_recipe.py)."""
from ..cityscapes.pspnet_mbv2 import lr_multiplier, model, optimizer, train
from ._recipe import dataloader, on_pascal_context

on_pascal_context(model, optimizer, train)
