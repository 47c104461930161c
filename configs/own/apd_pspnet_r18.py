"""APD + KD (the official loss recipe of ../apd_pspnet_r18.py): PSPNet-R101 → PSPNet-R18 on your own
segmentation data. Train the teacher first (``train_net.py --config-file configs/own/pspnet_r101.py``);
this reads its final checkpoint. The run's recipe (data, schedule, optimiser) is the student's: ./pspnet_r18.py.
"""
from detectron2.config import LazyConfig

from ..apd_pspnet_r18 import adapter_optimizer, model
from .pspnet_r18 import dataloader, lr_multiplier, optimizer, train

model.student = LazyConfig.load_rel("pspnet_r18.py", "model")
model.teacher = LazyConfig.load_rel("pspnet_r101.py", "model")
model.teacher.sliding_window = None
model.teacher_weights = "output/own/pspnet_r101/model_final.pth"
train.output_dir = "./output/own/apd_pspnet_r18"
