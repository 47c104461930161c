"""Demo DIST baseline: the demo teacher → the demo student with the terms of ``configs/dist_pspnet_r18.py``
(DIST on the logits, τ = 1, β = γ = 1, weight 1), on the demo models and schedule."""
from ..dist_pspnet_r18 import model as _dist
from .kd_pspnet_r18_demo import adapter_optimizer, dataloader, lr_multiplier, model, optimizer, train

model.distill_heads = _dist.distill_heads
model.loss_weights = _dist.loss_weights
train.output_dir = "./output/demo/dist"
