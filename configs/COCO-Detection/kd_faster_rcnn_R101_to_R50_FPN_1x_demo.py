"""CPU demo of the logit-KD-only baseline R101 → R50 (train ``faster_rcnn_R_101_FPN_3x_demo.py`` first)."""
from .apd_faster_rcnn_R101_to_R50_FPN_1x_demo import dataloader, lr_multiplier, model, optimizer, train

del model.distill_heads["apd"]
model.loss_weights = {"loss_kd": model.loss_weights["loss_kd"]}
adapter_optimizer = None  # no teacher adapter to train
train.output_dir = "./output/demo/kd_faster_rcnn_R101_to_R50_FPN_1x"
