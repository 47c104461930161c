"""Small CPU demo of the ROI-level APD + KD ablation on Mask R-CNN (R34-FPN → R18-FPN): the terms of
``../COCO-Detection/roiapd_faster_rcnn_R101_to_R50_FPN_1x.py`` with 256-d adapters for the narrow box heads."""
from detectron2.config import LazyConfig

from .apd_mask_rcnn_R34_to_R18_FPN_demo import adapter_optimizer, dataloader, lr_multiplier, model, optimizer, train

_roi = LazyConfig.load_rel("../COCO-Detection/roiapd_faster_rcnn_R101_to_R50_FPN_1x.py", "model")
model.distill_heads, model.loss_weights = _roi.distill_heads, _roi.loss_weights
model.distill_heads.roi_apd.hidden_dim = model.distill_heads.roi_apd.embed_dim = 256
train.output_dir = "./output/demo/coco/roiapd_mask_rcnn_R34_to_R18_FPN"
