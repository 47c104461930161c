"""Demo teacher: PSPNet-R50 at half width on the generated Cityscapes-format data, CPU (tools/run_demo.py).

Same code path as configs/cityscapes/pspnet_r101.py: only sizes and the schedule shrink.
"""
from detectron2.layers import ShapeSpec

from ..cityscapes.pspnet_r101 import lr_multiplier, model, optimizer, train
from ._data import dataloader

model.backbone.depth = 50
model.backbone.stem_width = 32
model.backbone.base_channels = 32
model.sem_seg_head.input_shape = {
    "res4": ShapeSpec(channels=512, stride=8),
    "res5": ShapeSpec(channels=1024, stride=8),
}
model.sem_seg_head.channels = 128
model.sem_seg_head.aux_channels = 64
model.sliding_window = None

train.init_checkpoint = ""  # no ImageNet weights offline: random init
train.max_iter = 500
train.eval_period = 500
train.checkpointer.period = 250
train.log_period = 20
train.output_dir = "./output/demo/teacher"
optimizer.lr = 0.01
