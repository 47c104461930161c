"""Demo APD + DIST: the terms of ``configs/apd_dist_pspnet_r18.py`` (APD + PA, weights 10; DIST, τ = 1,
β = γ = 1, weight 1; no logit KD) on the demo models and schedule."""
from ..apd_dist_pspnet_r18 import model as _full
from .apd_only_pspnet_r18_demo import adapter_optimizer, dataloader, lr_multiplier, model, optimizer, train

model.distill_heads["dist"] = _full.distill_heads["dist"]
model.loss_weights = _full.loss_weights
train.output_dir = "./output/demo/apd_dist"
