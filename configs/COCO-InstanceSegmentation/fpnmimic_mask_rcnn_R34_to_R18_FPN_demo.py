"""Small CPU demo of the FPN imitation baseline on Mask R-CNN (R34-FPN 128 → R18-FPN 64): the terms of
``../COCO-Detection/fpnmimic_faster_rcnn_R101_to_R50_FPN_1x.py`` (MSE per level through a 1×1 adapter)."""
from detectron2.config import LazyConfig

from .apd_mask_rcnn_R34_to_R18_FPN_demo import dataloader, lr_multiplier, model, optimizer, train

_mimic = LazyConfig.load_rel("../COCO-Detection/fpnmimic_faster_rcnn_R101_to_R50_FPN_1x.py", "model")
model.distill_heads, model.loss_weights = _mimic.distill_heads, _mimic.loss_weights
adapter_optimizer = None  # no teacher adapter
train.output_dir = "./output/demo/coco/fpnmimic_mask_rcnn_R34_to_R18_FPN"
