"""Small CPU demo teacher: Mask R-CNN R34-FPN (FPN 128, box head 2×512, mask head 4×128), trained twice
as long as the student (``mask_rcnn_R_18_FPN_demo.py``, which documents the family). Its
``model_final.pth`` is the teacher of ``{kd,apd}_mask_rcnn_R34_to_R18_FPN_demo.py``; run this first.
"""
from detectron2.layers import ShapeSpec

from .mask_rcnn_R_18_FPN_demo import dataloader, lr_multiplier, model, optimizer, train

FPN_CHANNELS, FC_DIM, MASK_DIM = 128, 512, 128

model.backbone.bottom_up.stages.depth = 34
model.backbone.out_channels = FPN_CHANNELS
model.proposal_generator.head.in_channels = FPN_CHANNELS
model.roi_heads.box_head.input_shape = ShapeSpec(channels=FPN_CHANNELS, height=7, width=7)
model.roi_heads.box_head.fc_dims = [FC_DIM, FC_DIM]
model.roi_heads.box_predictor.input_shape = ShapeSpec(channels=FC_DIM)
model.roi_heads.mask_head.input_shape = ShapeSpec(channels=FPN_CHANNELS, width=14, height=14)
model.roi_heads.mask_head.conv_dims = [MASK_DIM] * 5

train.max_iter = 1200
train.eval_period = train.checkpointer.period = train.max_iter
train.output_dir = "./output/demo/coco/mask_rcnn_R_34_FPN"
