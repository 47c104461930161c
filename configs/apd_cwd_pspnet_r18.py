"""APD + CWD: PSPNet-R101 → PSPNet-R18 on Cityscapes, CWD in the place of the logit KD term.

APD + PA (weights 10) and the teacher adapter's own objective as in ``apd_only_pspnet_r18.py``, plus
the CWD term of ``cwd_pspnet_r18.py`` (T = 4, weight 3). Logit KD is left out: CWD is the logit term.
To keep KD as well, add ``model.distill_heads.kd`` and ``model.loss_weights.loss_kd`` back.
"""
from .apd_only_pspnet_r18 import adapter_optimizer, dataloader, lr_multiplier, model, optimizer, train
from .cwd_pspnet_r18 import model as _cwd

model.distill_heads["cwd"] = _cwd.distill_heads["cwd"]
model.loss_weights.update(_cwd.loss_weights)
