"""Logit-KD-only baseline: the APD config without its APD term (KD on the box classifier's ROI scores)."""
from .apd_faster_rcnn_R101_to_R50_FPN_1x import dataloader, lr_multiplier, model, optimizer, train

del model.distill_heads["apd"]
model.loss_weights = {"loss_kd": model.loss_weights["loss_kd"]}
adapter_optimizer = None  # no teacher adapter to train
train.output_dir = "./output/COCO-Detection/kd_faster_rcnn_R101_to_R50_FPN_1x"
