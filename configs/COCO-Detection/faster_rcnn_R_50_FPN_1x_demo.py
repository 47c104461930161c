"""CPU demo of the Faster R-CNN R50-FPN student on the generated COCO-format data.

Data: ``python datasets/generate_demo_data.py --datasets coco`` writes the real COCO layout under
``$DETECTRON2_DATASETS/coco`` (default root ``datasets/demo``), so Detectron2's builtin
``coco_2017_train`` / ``coco_2017_val`` names read it; it uses a subset of COCO's categories with their
real ids, and the models keep 80 classes. Random initialisation (no download), small images, few
iterations: this shows the pipeline works, not accuracy. The other ``*_demo.py`` files take their
``dataloader``, ``lr_multiplier`` and ``train`` from here.
"""
import detectron2.data.transforms as T
from detectron2.config import LazyCall as L

from .faster_rcnn_R_50_FPN_1x import dataloader, lr_multiplier, model, optimizer, train

dataloader.train.mapper.augmentations = [
    L(T.ResizeShortestEdge)(short_edge_length=(192, 224, 256), sample_style="choice", max_size=384),
    L(T.RandomFlip)(horizontal=True),
]
dataloader.test.mapper.augmentations = [L(T.ResizeShortestEdge)(short_edge_length=224, max_size=384)]
dataloader.train.total_batch_size = 2
dataloader.train.num_workers = dataloader.test.num_workers = 2

optimizer.lr = 0.0025  # 0.02 × 2/16 (linear scaling with the batch size)
# Random init: nothing worth freezing, and FrozenBN (an identity before training) lets activations
# overflow through a deep random ResNet, so the demo backbones use GroupNorm (Detectron2's
# from-scratch choice; batch-size independent).
model.backbone.bottom_up.freeze_at = 0
model.backbone.bottom_up.stem.norm = model.backbone.bottom_up.stages.norm = "GN"
model.roi_heads.batch_size_per_image = 128  # 512 in the COCO recipe; a few objects per demo image

train.init_checkpoint = ""
train.max_iter = 100  # the schedules are fractions of max_iter, so the 1x shape is kept
train.eval_period = train.max_iter
train.checkpointer.period = train.max_iter
train.log_period = 10
train.output_dir = "./output/demo/faster_rcnn_R_50_FPN_1x"
