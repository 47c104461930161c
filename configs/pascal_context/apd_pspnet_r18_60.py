"""APD PSPNet-R101 → PSPNet-R18 on PASCAL-Context with 60 classes (the official APD setting)."""
from detectron2.config import LazyConfig

from .apd_pspnet_r18 import adapter_optimizer, model
from .pspnet_r18_60 import dataloader, lr_multiplier, optimizer, train

model.student = LazyConfig.load_rel("pspnet_r18_60.py", "model")
model.teacher = LazyConfig.load_rel("pspnet_r101_60.py", "model")
model.teacher.sliding_window = None
model.teacher_weights = "checkpoints/pspnet_r101_pascal_context_60.pth"
