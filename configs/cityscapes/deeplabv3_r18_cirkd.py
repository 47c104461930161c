"""DeepLabV3-R18 on Cityscapes in CIRKD's layout: for converted CIRKD student checkpoints.

CIRKD's students (``--backbone resnet18``) use the same ``models/deeplabv3.py`` as its teacher:
ResNetV1b-18 deep stem dilated like torchvision, five 512-channel ASPP branches, the 512-channel
projection and 3×3 block, and an aux head 256 → 64 (a quarter of res4). BGR input and whole-image
inference as in ``deeplabv3_r101_cirkd.py``, which documents the layout.
"""
from .deeplabv3_r101_cirkd import dataloader, lr_multiplier, model, optimizer, train

model.backbone.depth = 18
model.sem_seg_head.aux_channels = 64  # CIRKD auxlayer: res4 channels (256) // 4
train.init_checkpoint = "checkpoints/resnet18_v2_imagenet.pth"
