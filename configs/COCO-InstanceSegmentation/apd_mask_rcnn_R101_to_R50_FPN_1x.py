"""APD on COCO instance segmentation: Mask R-CNN R101-FPN 3x teacher → R50-FPN 1x student.

The detection method (``../COCO-Detection/apd_faster_rcnn_R101_to_R50_FPN_1x.py``: dense APD on the FPN
levels + logit KD on the ROI scores), with the class maps drawn from the instance masks (the loader gives
``gt_masks``); the mask head trains with its own loss only.
"""
from detectron2.config import LazyConfig

from .mask_rcnn_R_50_FPN_1x import dataloader, lr_multiplier, train
from .mask_rcnn_R_50_FPN_1x import model as _student

_detection = LazyConfig.load_rel("../COCO-Detection/apd_faster_rcnn_R101_to_R50_FPN_1x.py")
model, optimizer, adapter_optimizer = _detection.model, _detection.optimizer, _detection.adapter_optimizer

model.student = _student
model.teacher = LazyConfig.load_rel("mask_rcnn_R_101_FPN_3x.py", "model")
# Model zoo COCO-InstanceSegmentation/mask_rcnn_R_101_FPN_3x (42.9 box / 38.6 mask AP).
model.teacher_weights = (
    "detectron2://COCO-InstanceSegmentation/mask_rcnn_R_101_FPN_3x/138205316/model_final_a3ec72.pkl"
)
model.class_map_from = "masks"
train.output_dir = "./output/COCO-InstanceSegmentation/apd_mask_rcnn_R101_to_R50_FPN_1x"
