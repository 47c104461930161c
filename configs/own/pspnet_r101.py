"""PSPNet-R101 on your own segmentation data (../common/data/own_sem_seg.py): the teacher of
./apd_pspnet_r18.py, which reads its final checkpoint (``output/own/pspnet_r101/model_final.pth``)."""
from ..cityscapes.pspnet_r101 import lr_multiplier, model, optimizer, train
from ._recipe import dataloader, on_own_data

on_own_data(model, optimizer, train, "pspnet_r101")
