"""Logit KD only (no APD): PSPNet-R101 → PSPNet-R18 on Cityscapes, weight 10, T = 1 (docs/METHOD.md §3d)."""
from .apd_pspnet_r18 import dataloader, lr_multiplier, model, optimizer, train

del model.distill_heads["apd"]
model.loss_weights = {"loss_kd": 10.0}
adapter_optimizer = None  # no teacher adapter
