"""APD: PSPNet-R101 → PSPNet-R18 on PASCAL-Context (59 classes); the distillation of ../apd_pspnet_r18.py.

The run's recipe (data, schedule, optimiser) is the student's: ./pspnet_r18.py.
"""
from detectron2.config import LazyConfig

from ..apd_pspnet_r18 import adapter_optimizer, model
from .pspnet_r18 import dataloader, lr_multiplier, optimizer, train

model.student = LazyConfig.load_rel("pspnet_r18.py", "model")
model.teacher = LazyConfig.load_rel("pspnet_r101.py", "model")
model.teacher.sliding_window = None
model.teacher_weights = "checkpoints/pspnet_r101_pascal_context.pth"
