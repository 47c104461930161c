"""ImageNet stand-in for the ADE20K-format benchmark, student width: pre-train the demo student's backbone
(PSPNet-R18, quarter width) on generated **Cityscapes-format** street scenes (19 classes,
``--datasets cityscapes --num-train 400 --num-val 40 --seed 100``), so that it never saw an ADE20K-format
scene: another task and other data, as ImageNet is for ADE20K. The recipe of
``standin_pspnet_r18_quarter_ade.py`` (batch 8, SGD lr 0.01 poly, from random weights), shrunk to fit a
loaded 2-core CPU: 100 iterations, 96×96 crops. Only the backbone is kept.

    .venv/bin/python tools/pretrain_standin.py --benchmark ade --stage standin --widths quarter
"""
from ..demo._data import dataloader
from ..demo.pspnet_r18_demo import lr_multiplier, model, optimizer, train

dataloader.train.mapper.augmentations.crop_size = (96, 96)

train.init_checkpoint = ""  # the stand-in itself starts from random weights
train.max_iter = 100
train.eval_period = 100
train.checkpointer.period = 100
train.log_period = 10
train.output_dir = "./output/standin_cityscapes/quarter"
