"""CWD baseline (Shu et al., ICCV 2021; T = 4, weight 3): PSPNet-R101 → PSPNet-R18 on PASCAL-Context (59 classes)."""
from detectron2.config import LazyCall as L

from apd.modeling.distill import CWDHead

from .kd_pspnet_r18 import adapter_optimizer, dataloader, lr_multiplier, model, optimizer, train

model.distill_heads = {"cwd": L(CWDHead)(temperature=4.0)}
model.loss_weights = {"loss_cwd": 3.0}
