"""APD without logit KD (ablation): PSPNet-R101 → PSPNet-R18 on Cityscapes."""
from .apd_pspnet_r18 import adapter_optimizer, dataloader, lr_multiplier, model, optimizer, train

del model.distill_heads["kd"]
model.loss_weights = {"loss_apd": 10.0, "loss_pa": 10.0, "loss_adapt": 1.0}
