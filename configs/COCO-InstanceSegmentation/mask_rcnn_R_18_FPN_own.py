"""Mask R-CNN R18-FPN (the 1x recipe of ./mask_rcnn_R_18_FPN_1x.py) on your own COCO-format data
(../common/data/own_coco.py). Set ``model.roi_heads.num_classes`` to the number of categories in your json
(``train_net.py`` checks it against the json before training)."""
from ..common.data.own_coco import dataloader
from .mask_rcnn_R_18_FPN_1x import dataloader as _recipe_data
from .mask_rcnn_R_18_FPN_1x import lr_multiplier, model, optimizer, train

model.roi_heads.num_classes = 1
dataloader.train.mapper.image_format = _recipe_data.train.mapper.image_format  # RGB, as the model
train.output_dir = "./output/COCO-InstanceSegmentation/mask_rcnn_R_18_FPN_own"
