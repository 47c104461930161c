"""DeepLabV3-R101 (teacher) on ADE20K (150 classes): the Cityscapes recipe with this dataset's data and schedule."""
from ..cityscapes.deeplabv3_r101 import lr_multiplier, model, optimizer, train
from ..common.data.ade20k import dataloader

model.sem_seg_head.num_classes = 150
model.sliding_window = dict(crop_size=(473, 473), flip=True)
# 100 epochs × 20210 images / batch 8 ≈ 252,625 iterations (APD_SPEC §4).
train.max_iter = 252625
optimizer.lr = 0.005
