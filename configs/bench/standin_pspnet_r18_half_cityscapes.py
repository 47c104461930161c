"""Stand-in for the ADE20K-format benchmark, teacher width: as ``standin_pspnet_r18_quarter_cityscapes.py`` for
the teacher's backbone (PSPNet-R18 at half width, ``configs/demo/ade/pspnet_r18_wide_demo.py``).

    .venv/bin/python tools/pretrain_standin.py --benchmark ade --stage standin --widths half
"""
from .standin_pspnet_r18_quarter_cityscapes import dataloader, lr_multiplier, model, optimizer, train

model.backbone.stem_width = 32
model.backbone.base_channels = 32
model.sem_seg_head.channels = 128
model.sem_seg_head.aux_channels = 64
train.output_dir = "./output/standin_cityscapes/half"
