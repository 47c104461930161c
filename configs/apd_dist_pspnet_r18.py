"""APD + DIST: PSPNet-R101 → PSPNet-R18 on Cityscapes, DIST in the place of the logit KD term.

APD + PA (weights 10) and the teacher adapter's own objective as in ``apd_only_pspnet_r18.py``, plus
the DIST term of ``dist_pspnet_r18.py`` (τ = 1, β = γ = 1, weight 1). Logit KD is left out: DIST is the
logit term. To keep KD as well, add ``model.distill_heads.kd`` and ``model.loss_weights.loss_kd`` back.
"""
from .apd_only_pspnet_r18 import adapter_optimizer, dataloader, lr_multiplier, model, optimizer, train
from .dist_pspnet_r18 import model as _dist

model.distill_heads["dist"] = _dist.distill_heads["dist"]
model.loss_weights.update(_dist.loss_weights)
