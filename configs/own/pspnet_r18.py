"""PSPNet-R18 trained alone on your own segmentation data (../common/data/own_sem_seg.py): the baseline of
./apd_pspnet_r18.py, from the ImageNet ResNet-18 of ``train.init_checkpoint`` (MODEL_ZOO.md)."""
from ..cityscapes.pspnet_r18 import lr_multiplier, model, optimizer, train
from ._recipe import dataloader, on_own_data

on_own_data(model, optimizer, train, "pspnet_r18")
