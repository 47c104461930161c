"""Small CPU demo of the logit-KD-only baseline on Mask R-CNN (R34-FPN → R18-FPN demo models): the APD
demo without APD."""
from .apd_mask_rcnn_R34_to_R18_FPN_demo import dataloader, lr_multiplier, model, optimizer, train

del model.distill_heads["apd"]
model.loss_weights = {"loss_kd": model.loss_weights["loss_kd"]}
adapter_optimizer = None  # no teacher adapter to train
train.output_dir = "./output/demo/coco/kd_mask_rcnn_R34_to_R18_FPN"
