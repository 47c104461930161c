"""Semantic FPN-R18 on ADE20K (150 classes): the Cityscapes config with this dataset's recipe (_recipe.py)."""
from ..cityscapes.semantic_fpn_r18 import lr_multiplier, model, optimizer, train
from ._recipe import dataloader, on_ade20k

on_ade20k(model, optimizer, train)
