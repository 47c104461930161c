"""DeepLabV3-R101 on Cityscapes in CIRKD's layout: for converted CIRKD checkpoints (the CIRKD teacher).

CIRKD (github.com/winycg/CIRKD, ``models/deeplabv3.py``) differs from ``deeplabv3_r101.py`` (the APD
repo's model) in four places, all set here so that
``tools/convert_cirkd_deeplabv3.py deeplabv3_resnet101_citys_best_model.pth DST --config-file <this>``
gives a model with CIRKD's outputs:

- backbone: ResNetV1b "v1s" (deep stem 64-64-128) dilated like torchvision (layer3: 1, 2, 2, ...;
  layer4: 2, 4, 4) → ``torchvision_dilation=True``;
- ASPP: five 512-channel branches (rates 12, 24, 36) → 1×1 projection 2560 → 512, BN, ReLU,
  Dropout(0.5) → 3×3 conv 512 → 512 (``head.block``) → classifier: ``project_channels=512``;
- aux head (``auxlayer``): 3×3 conv to a quarter of its input, 1024 → 256 (``aux_channels``);
- input: BGR (cv2) minus (104.01, 116.67, 122.68), not divided by a std; whole-image inference with
  logits resized to the image with ``align_corners=True`` (CIRKD's ``eval.py``, scale 1, no flip).

CIRKD's dropouts are element-wise ``nn.Dropout`` where ours (bottleneck, aux head) are ``Dropout2d``:
identical in eval, so a converted teacher's outputs are CIRKD's. The training recipe is
``deeplabv3_r101.py``'s, not CIRKD's (512×1024 crops, 80k iterations): this config is meant for
converted weights; its ``train.init_checkpoint`` (the RGB ImageNet init) suits training only after
switching the input back to RGB.
"""
from .deeplabv3_r101 import dataloader, lr_multiplier, model, optimizer, train

# CIRKD's dataset/cityscapes.py: image = cv2.imread(...) (BGR) - mean; no std
CIRKD_BGR_MEAN = [104.00698793, 116.66876762, 122.67891434]

model.backbone.torchvision_dilation = True
model.sem_seg_head.project_channels = 512
model.sem_seg_head.project_dropout = 0.5
model.sem_seg_head.aux_channels = 256  # CIRKD auxlayer: res4 channels (1024) // 4
model.input_format = "BGR"
model.pixel_mean = CIRKD_BGR_MEAN
model.pixel_std = [1.0, 1.0, 1.0]
model.sliding_window = None
dataloader.train.mapper.image_format = "BGR"  # the test mapper follows
dataloader.train.mapper.augmentations.pad_value = CIRKD_BGR_MEAN  # pad with the mean, as CIRKD
