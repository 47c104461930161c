"""ImageNet stand-in, student width: pre-train the demo student's backbone (PSPNet-R18 at quarter width) on
generated ADE20K-format scenes (150 classes, indoor/outdoor, ``datasets/generate_demo_data.py --datasets
ade20k``): another task and other data than the Cityscapes-format benchmark. Only the backbone is kept
(``tools/pretrain_standin.py`` exports it in the format of ``tools/convert_torchvision_backbone.py``); the
PSP head trained here is thrown away, as an ImageNet classifier would be.

    .venv/bin/python tools/pretrain_standin.py --stage standin --widths quarter
"""
from ..common.data.ade20k import dataloader
from ..demo._data import dataloader as _demo_data
from ..demo.pspnet_r18_demo import lr_multiplier, model, optimizer, train

model.sem_seg_head.num_classes = 150
dataloader.train.mapper.augmentations.crop_size = (128, 128)
dataloader.train.total_batch_size = 8
dataloader.train.num_workers = 1
dataloader.test.mapper.augmentations.base_size = None  # the generated images' own size (~240-320 × 320-400)
dataloader.test.num_workers = 1
dataloader.evaluator = _demo_data.evaluator  # the demo's evaluator, on this dataset's val split

train.init_checkpoint = ""  # the stand-in itself starts from random weights
train.max_iter = 200
train.eval_period = 200
train.checkpointer.period = 200
train.log_period = 10
train.output_dir = "./output/standin/quarter"
