"""Small CPU demo of PKD on Mask R-CNN (R34-FPN 128 → R18-FPN 64): the terms of
``../COCO-Detection/pkd_faster_rcnn_R101_to_R50_FPN_1x.py`` (p2–p5, weight 24 on the level mean); the FPN
widths differ here, so a 1×1 adapter (64 → 128, trained with the student) maps the student's channels."""
from detectron2.config import LazyConfig

from .apd_mask_rcnn_R34_to_R18_FPN_demo import dataloader, lr_multiplier, model, optimizer, train

_pkd = LazyConfig.load_rel("../COCO-Detection/pkd_faster_rcnn_R101_to_R50_FPN_1x.py", "model")
model.distill_heads, model.loss_weights = _pkd.distill_heads, _pkd.loss_weights
adapter_optimizer = None  # no teacher adapter
train.output_dir = "./output/demo/coco/pkd_mask_rcnn_R34_to_R18_FPN"
