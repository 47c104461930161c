"""Logit-KD-only baseline: the APD config without APD (only KD on the box classifier's scores)."""
from .apd_faster_rcnn_R101_to_R50_FPN_1x import dataloader, lr_multiplier, model, optimizer, train

model.apd_head = None
adapter_optimizer = None  # no teacher adapter to train
train.output_dir = "./output/COCO-Detection/kd_faster_rcnn_R101_to_R50_FPN_1x"
