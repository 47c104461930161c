"""Demo student: PSPNet-R18 at quarter width on the generated data, trained alone (the baseline)."""
from detectron2.layers import ShapeSpec

from .pspnet_r50_demo import dataloader, lr_multiplier, model, optimizer, train

model.backbone.depth = 18
model.backbone.stem_width = 16
model.backbone.base_channels = 16
model.sem_seg_head.input_shape = {
    "res4": ShapeSpec(channels=64, stride=8),
    "res5": ShapeSpec(channels=128, stride=8),
}
model.sem_seg_head.channels = 64
model.sem_seg_head.aux_channels = 32
train.output_dir = "./output/demo/student"
