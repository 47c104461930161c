"""CPU demo of APD R101 (BGR) → R18 (RGB) on the generated COCO-format data (the teacher gets its
channels reversed). Train ``faster_rcnn_R_101_FPN_3x_demo.py`` first."""
from .apd_faster_rcnn_R101_to_R50_FPN_1x_demo import adapter_optimizer, model, optimizer
from .faster_rcnn_R_18_FPN_1x_demo import dataloader, lr_multiplier, train
from .faster_rcnn_R_18_FPN_1x_demo import model as _student

model.student = _student
train.output_dir = "./output/demo/apd_faster_rcnn_R101_to_R18_FPN_1x"
