"""APD: DeepLabV3-R101 → DeepLabV3-R18 on ADE20K (150 classes)."""
from detectron2.config import LazyConfig

from .apd_pspnet_r18 import adapter_optimizer, dataloader, lr_multiplier, model, optimizer, train

model.student = LazyConfig.load_rel("deeplabv3_r18.py", "model")
model.teacher = LazyConfig.load_rel("deeplabv3_r101.py", "model")
model.teacher.sliding_window = None
model.teacher_weights = "checkpoints/deeplabv3_r101_ade20k.pth"
