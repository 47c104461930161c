"""Demo logit KD: the demo teacher → the demo student with KD only (weight 10, T = 1)."""
from .apd_pspnet_r18_demo import dataloader, lr_multiplier, model, optimizer, train

del model.distill_heads["apd"]
model.loss_weights = {"loss_kd": 10.0}
adapter_optimizer = None
train.output_dir = "./output/demo/kd"
