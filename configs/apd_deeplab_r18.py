"""APD: DeepLabV3-R101 teacher → DeepLabV3-R18 student on Cityscapes.

    python train_net.py --config-file configs/apd_deeplab_r18.py --num-gpus 8 \
        model.teacher_weights=checkpoints/deeplabv3_r101_cityscapes.pth

Same distillation as apd_pspnet_r18.py; only the two models change.
"""
from detectron2.config import LazyConfig

from .apd_pspnet_r18 import adapter_optimizer, dataloader, lr_multiplier, model, optimizer, train

model.student = LazyConfig.load_rel("cityscapes/deeplabv3_r18.py", "model")
model.teacher = LazyConfig.load_rel("cityscapes/deeplabv3_r101.py", "model")
model.teacher.sliding_window = None
model.teacher_weights = "checkpoints/deeplabv3_r101_cityscapes.pth"
train.init_checkpoint = "checkpoints/resnet18_v2_imagenet.pth"
