# Learning-rate multipliers (consumed by detectron2's LRScheduler hook, scaled to train.max_iter).
from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import PolynomialDecayParamScheduler


def poly_schedule(power: float = 0.9, warmup_length: float = 0.0, warmup_factor: float = 1.0):
    """Poly LR, lr = base · (1 − it/max_iter)^power (APD/PSPNet recipe), optional linear warmup.

    warmup_length is a fraction of max_iter (0 = no warmup, as the official recipe).
    """
    return L(WarmupParamScheduler)(
        scheduler=L(PolynomialDecayParamScheduler)(base_value=1.0, power=power),
        warmup_length=warmup_length,
        warmup_factor=warmup_factor,
    )


lr_multiplier = poly_schedule()
