"""Demo CWD baseline: the demo teacher → the demo student with channel-wise distillation only.

Same terms as ``configs/cwd_pspnet_r18.py`` (CWD on the logits, T = 4, weight 3: Shu et al., ICCV 2021),
on the demo models and schedule (benchmarks/accuracy.py).
"""
from detectron2.config import LazyCall as L

from apd.modeling.distill import CWDHead

from .kd_pspnet_r18_demo import adapter_optimizer, dataloader, lr_multiplier, model, optimizer, train

model.distill_heads = {"cwd": L(CWDHead)(temperature=4.0)}
model.loss_weights = {"loss_cwd": 3.0}
train.output_dir = "./output/demo/cwd"
