"""Demo APD + CWD: the terms of ``configs/apd_cwd_pspnet_r18.py`` (APD + PA, weights 10; CWD, T = 4,
weight 3; no logit KD) on the demo models and schedule."""
from ..apd_cwd_pspnet_r18 import model as _full
from .apd_only_pspnet_r18_demo import adapter_optimizer, dataloader, lr_multiplier, model, optimizer, train

model.distill_heads["cwd"] = _full.distill_heads["cwd"]
model.loss_weights = _full.loss_weights
train.output_dir = "./output/demo/apd_cwd"
