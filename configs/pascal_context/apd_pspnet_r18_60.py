"""APD PSPNet-R101 → PSPNet-R18 on PASCAL-Context with 60 classes (the official APD setting)."""
from detectron2.config import LazyConfig

from .apd_pspnet_r18 import adapter_optimizer, dataloader, lr_multiplier, model, optimizer, train

dataloader.train.dataset.names = "pascal_context_60_sem_seg_train"
dataloader.test.dataset.names = "pascal_context_60_sem_seg_val"
dataloader.train.mapper.num_classes = 60
model.student = LazyConfig.load_rel("pspnet_r18_60.py", "model")
model.teacher = LazyConfig.load_rel("pspnet_r101_60.py", "model")
model.teacher.sliding_window = None
model.teacher_weights = "checkpoints/pspnet_r101_pascal_context_60.pth"
