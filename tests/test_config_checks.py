import pytest
from detectron2.config import LazyConfig

from apd.config import ConfigKeyError, check_config, check_overrides


def _cfg():
    return LazyConfig.load("configs/common/optim.py")


def test_unknown_override_key_names_the_key():
    cfg = _cfg()
    with pytest.raises(ConfigKeyError, match="SGD.momentun"):
        check_overrides(cfg, ["SGD.momentun=0.5"])
    with pytest.raises(ConfigKeyError, match="SGD.params.base_lrr"):
        check_overrides(cfg, ["SGD.params.base_lrr=0.5"])


def test_existing_keys_and_accepted_kwargs_pass():
    cfg = _cfg()
    check_overrides(cfg, ["SGD.momentum=0.5", "SGD.nesterov=True", "SGD.params.head_lr_multiplier=1"])


def test_unknown_train_key_is_rejected():
    cfg = LazyConfig.load("configs/common/train.py")
    cfg.train.max_itr = 5
    for k in ("model", "dataloader", "optimizer", "lr_multiplier"):
        cfg[k] = {}
    with pytest.raises(ConfigKeyError, match="max_itr"):
        check_config(cfg)
