"""PSPNet-R101 on PASCAL-Context with 60 classes (background = class 0), the official APD setting.

The official code builds its 60-class models with torchvision-style dilation (docs/METHOD.md §4).
"""
from ..common.data.constants import constants as _constants
from .pspnet_r101 import dataloader, lr_multiplier, model, optimizer, train

dataloader.train.dataset.names = "pascal_context_60_sem_seg_train"
dataloader.test.dataset.names = "pascal_context_60_sem_seg_val"
dataloader.train.mapper.num_classes = _constants.pascal_context_60_num_classes  # the test mapper and evaluator follow
model.sem_seg_head.num_classes = dataloader.train.mapper.num_classes
model.backbone.torchvision_dilation = True
