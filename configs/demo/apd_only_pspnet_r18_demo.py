"""Demo APD without logit KD (ablation, as ``configs/apd_only_pspnet_r18.py``): APD + PA (weights 10)
and the teacher adapter's own objective, on the demo models and schedule (benchmarks/accuracy.py)."""
from .apd_pspnet_r18_demo import adapter_optimizer, dataloader, lr_multiplier, model, optimizer, train

del model.distill_heads["kd"]
model.loss_weights = {"loss_apd": 10.0, "loss_pa": 10.0, "loss_adapt": 1.0}
train.output_dir = "./output/demo/apd_only"
