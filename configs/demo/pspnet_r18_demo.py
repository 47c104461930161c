"""Demo student: PSPNet-R18 at quarter width on the generated data, trained alone (the baseline).

Same code path as configs/cityscapes/pspnet_r18.py; only sizes and the schedule shrink for a CPU. As in the
recipe, the backbone starts from pretrained weights through ``train.init_checkpoint``: here the ImageNet
stand-in (a backbone pre-trained on generated ADE20K-format scenes, ``tools/pretrain_standin.py``); the
head starts random. 200 iterations × batch 8 (10 epochs of the 160 generated training images).
"""
from ..cityscapes.pspnet_r18 import lr_multiplier, model, optimizer, train
from ._data import dataloader

# The CPU's multi-process norm (gloo); plain BN in one process, where the demo trains.
model.backbone.norm = "naiveSyncBN"
model.backbone.stem_width = 16
model.backbone.base_channels = 16
model.sem_seg_head.channels = 64
model.sem_seg_head.aux_channels = 32
model.sliding_window = None

train.init_checkpoint = "checkpoints/demo/standin_r18_quarter.pth"  # the ImageNet stand-in backbone
train.max_iter = 200
train.eval_period = 200
train.checkpointer.period = 200
train.log_period = 10
train.output_dir = "./output/demo/student"
optimizer.lr = 0.01
