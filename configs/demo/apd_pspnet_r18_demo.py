"""Demo APD: the demo teacher → the demo student, the official loss recipe (KD + APD + PA, weights 10).

    python train_net.py --config-file configs/demo/apd_pspnet_r18_demo.py

The teacher is the committed demo teacher and the student starts from the committed ImageNet
stand-in (both made by ``tools/pretrain_standin.py``; docs/BENCHMARKS.md has their recipe).
"""
from detectron2.config import LazyConfig

from ..apd_pspnet_r18 import adapter_optimizer, model
from .pspnet_r18_demo import dataloader, lr_multiplier, optimizer, train

model.student = LazyConfig.load_rel("pspnet_r18_demo.py", "model")
model.teacher = LazyConfig.load_rel("pspnet_r18_wide_demo.py", "model")
model.teacher_weights = "checkpoints/demo/teacher_pspnet_r18_half.pth"
# the student's ImageNet stand-in with the distiller's key prefix (convert_torchvision_backbone.py --prefix student.)
train.init_checkpoint = "checkpoints/demo/standin_r18_quarter_student.pth"
model.distill_heads.apd.hidden_dim = 64
model.distill_heads.apd.embed_dim = 64
train.output_dir = "./output/demo/apd"
