"""PSPNet-R101 (teacher) on PASCAL-Context (59 classes, background ignored): the Cityscapes recipe with this dataset's data and schedule."""
from ..cityscapes.pspnet_r101 import lr_multiplier, model, optimizer, train
from ..common.data.pascal_context import dataloader

model.sem_seg_head.num_classes = 59
model.sliding_window = dict(crop_size=(473, 473), flip=True)
# 100 epochs × 4998 images / batch 12 ≈ 41,650 iterations (APD_SPEC §4).
train.max_iter = 41650
optimizer.lr = 0.00075
