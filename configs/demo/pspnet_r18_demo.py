"""Demo student: PSPNet-R18 at quarter width on the generated data, trained alone (the baseline).

Same code path as configs/cityscapes/pspnet_r18.py; only sizes and the schedule shrink for a CPU.
"""
from detectron2.layers import ShapeSpec

from ..cityscapes.pspnet_r18 import lr_multiplier, model, optimizer, train
from ._data import dataloader

model.backbone.stem_width = 16
model.backbone.base_channels = 16
model.sem_seg_head.input_shape = {
    "res4": ShapeSpec(channels=64, stride=8),
    "res5": ShapeSpec(channels=128, stride=8),
}
model.sem_seg_head.channels = 64
model.sem_seg_head.aux_channels = 32
model.sliding_window = None

train.init_checkpoint = ""  # no ImageNet weights offline: random init
train.max_iter = 500
train.eval_period = 500
train.checkpointer.period = 250
train.log_period = 20
train.output_dir = "./output/demo/student"
optimizer.lr = 0.01
