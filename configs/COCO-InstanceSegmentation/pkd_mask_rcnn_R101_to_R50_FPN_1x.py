"""PKD on COCO instance segmentation: Mask R-CNN R101-FPN 3x teacher → R50-FPN 1x student, with the terms of
``../COCO-Detection/pkd_faster_rcnn_R101_to_R50_FPN_1x.py`` (Pearson-correlation imitation of p2–p5, weight 24
on the level mean); the mask head trains with its own loss only."""
from detectron2.config import LazyConfig

from .apd_mask_rcnn_R101_to_R50_FPN_1x import dataloader, lr_multiplier, model, optimizer, train

_pkd = LazyConfig.load_rel("../COCO-Detection/pkd_faster_rcnn_R101_to_R50_FPN_1x.py", "model")
model.distill_heads, model.loss_weights = _pkd.distill_heads, _pkd.loss_weights
adapter_optimizer = None  # no teacher adapter
train.output_dir = "./output/COCO-InstanceSegmentation/pkd_mask_rcnn_R101_to_R50_FPN_1x"
