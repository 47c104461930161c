"""Demo PKD baseline: the demo teacher → the demo student with Pearson-correlation imitation of the classifier
feature only (the terms of ``configs/pkd_pspnet_r18.py``, weight 6); the heads are 128 and 64 wide, so a 1×1
adapter (64 → 128, trained with the student) maps the student's channels."""
from detectron2.config import LazyConfig

from .kd_pspnet_r18_demo import adapter_optimizer, dataloader, lr_multiplier, model, optimizer, train

_pkd = LazyConfig.load_rel("../pkd_pspnet_r18.py", "model")
model.distill_heads, model.loss_weights = _pkd.distill_heads, _pkd.loss_weights
train.output_dir = "./output/demo/pkd"
