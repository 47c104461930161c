"""Small CPU demo student: Mask R-CNN R18-FPN with narrow FPN/heads, on the generated COCO-format data.

The R101 → R50 demos (``*_R101_to_R50_FPN_1x_demo.py``) keep the real architectures and only show that
the pipeline runs; on 2 CPU cores one of their steps takes seconds, too slow to train a detector from
scratch. This family is sized to train to a non-trivial AP in minutes on a CPU, from random init:
ResNet-18 (GroupNorm, nothing frozen), FPN and RPN at 64 channels, box head 2×256 fc, mask head 4×64
convs, 300 proposals, 64 sampled ROIs per image, short side 192–256. Teacher:
``mask_rcnn_R_34_FPN_demo.py``; distillation: ``{kd,apd}_mask_rcnn_R34_to_R18_FPN_demo.py``.
Everything else (80 COCO classes, losses, COCOEvaluator bbox + segm) is the real recipe's.
"""
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone import ResNet

from apd.data.samplers import build_resumable_train_loader

from .mask_rcnn_R_50_FPN_1x_demo import dataloader, lr_multiplier, model, optimizer, train

FPN_CHANNELS, FC_DIM, MASK_DIM = 64, 256, 64

model.backbone.bottom_up.stages = L(ResNet.make_default_stages)(depth=18, norm="GN")
model.backbone.bottom_up.stem.norm = "GN"
model.backbone.bottom_up.freeze_at = 0
model.backbone.out_channels = FPN_CHANNELS
model.proposal_generator.head.in_channels = FPN_CHANNELS
model.proposal_generator.pre_nms_topk = (600, 300)
model.proposal_generator.post_nms_topk = (300, 300)
model.roi_heads.batch_size_per_image = 64
model.roi_heads.box_head.input_shape = ShapeSpec(channels=FPN_CHANNELS, height=7, width=7)
model.roi_heads.box_head.fc_dims = [FC_DIM, FC_DIM]
model.roi_heads.box_predictor.input_shape = ShapeSpec(channels=FC_DIM)
model.roi_heads.mask_head.input_shape = ShapeSpec(channels=FPN_CHANNELS, width=14, height=14)
model.roi_heads.mask_head.conv_dims = [MASK_DIM] * 5  # 4 convs + the deconv's width, as d2's 5×256

# The positional loader (apd/data/samplers.py): data order and augmentation are functions of
# (train.seed, position). Detectron2's loader seeds its workers from the global RNG, which building a
# teacher advances, so student-alone and distillation runs would see different augmentation streams.
dataloader.train = L(build_resumable_train_loader)(
    dataset=dataloader.train.dataset,
    mapper=dataloader.train.mapper,
    total_batch_size=dataloader.train.total_batch_size,
    num_workers=dataloader.train.num_workers,
    seed="${...train.seed}",
)

optimizer.lr = 0.005  # batch 2: 2× the linear scaling of 0.02 × 2/16; 0.01 diverged (R34, iteration 13)
lr_multiplier.warmup_length = 0.1  # from random init: 10% warm-up (1x recipe: 1k of 90k iterations)
train.max_iter = 600
train.eval_period = train.max_iter
train.checkpointer.period = train.max_iter
train.log_period = 20
train.output_dir = "./output/demo/coco/mask_rcnn_R_18_FPN"
