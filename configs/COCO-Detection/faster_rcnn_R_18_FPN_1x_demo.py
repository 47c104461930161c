"""CPU demo of the Faster R-CNN R18-FPN student (RGB input) on the generated COCO-format data,
with the demo changes of ``faster_rcnn_R_50_FPN_1x_demo.py``."""
from .faster_rcnn_R_18_FPN_1x import model
from .faster_rcnn_R_50_FPN_1x_demo import dataloader, lr_multiplier, optimizer, train

model.backbone.bottom_up.freeze_at = 0
model.backbone.bottom_up.stem.norm = model.backbone.bottom_up.stages.norm = "GN"
model.roi_heads.batch_size_per_image = 128
dataloader.train.mapper.image_format = model.input_format  # "RGB", see faster_rcnn_R_18_FPN_1x.py
train.output_dir = "./output/demo/faster_rcnn_R_18_FPN_1x"
