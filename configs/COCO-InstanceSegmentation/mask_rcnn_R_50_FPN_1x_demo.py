"""CPU demo of the Mask R-CNN R50-FPN student on the generated COCO-format data (polygon masks).

Data, schedule and model changes as ``../COCO-Detection/faster_rcnn_R_50_FPN_1x_demo.py``; the other
instance-segmentation demos build on this file.
"""
from detectron2.config import LazyConfig

from .mask_rcnn_R_50_FPN_1x import model

_demo = LazyConfig.load_rel("../COCO-Detection/faster_rcnn_R_50_FPN_1x_demo.py")
dataloader, lr_multiplier, optimizer, train = _demo.dataloader, _demo.lr_multiplier, _demo.optimizer, _demo.train

dataloader.train.mapper.use_instance_mask = True
model.backbone.bottom_up.freeze_at = 0
model.backbone.bottom_up.stem.norm = model.backbone.bottom_up.stages.norm = "GN"
model.roi_heads.batch_size_per_image = 128
train.output_dir = "./output/demo/mask_rcnn_R_50_FPN_1x"
