"""Config checks that turn typos into errors naming the key, before any heavy work."""
import inspect
from typing import Iterable, List

from detectron2.config import LazyConfig
from omegaconf import DictConfig, OmegaConf

__all__ = ["ConfigKeyError", "check_config", "check_overrides", "load_config"]

TOP_LEVEL_KEYS = {"model", "dataloader", "optimizer", "lr_multiplier", "train", "adapter_optimizer"}
TRAIN_KEYS = {
    "output_dir", "init_checkpoint", "max_iter", "amp", "ddp", "checkpointer", "eval_period",
    "log_period", "device", "seed", "eval_teacher", "cudnn_benchmark", "log_model", "compile",
}


class ConfigKeyError(KeyError):
    def __str__(self):  # KeyError quotes its message; show it plainly
        return str(self.args[0])


def _target_params(node) -> List[str]:
    """Keyword names accepted by a LazyCall node's target, or None when it takes **kwargs."""
    target = node.get("_target_") if isinstance(node, DictConfig) else None
    if target is None:
        return None
    if isinstance(target, str):
        from detectron2.utils.registry import locate

        target = locate(target)
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return [n for n in sig.parameters if n != "self"]


def check_overrides(cfg: DictConfig, overrides: Iterable[str]) -> None:
    """Raise :class:`ConfigKeyError` for a ``key=value`` override whose key does not exist in ``cfg``.

    A key may be new only when its parent is a LazyCall node whose target accepts that keyword.
    """
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if OmegaConf.select(cfg, key, default="__missing__") != "__missing__":
            continue
        parts = key.split(".")
        parent_key, name = ".".join(parts[:-1]), parts[-1]
        parent = OmegaConf.select(cfg, parent_key, default=None) if parent_key else cfg
        if isinstance(parent, DictConfig):
            accepted = _target_params(parent)
            if accepted is not None and name in accepted:
                continue
            valid = sorted(accepted) if accepted is not None else sorted(k for k in parent.keys())
            raise ConfigKeyError(
                f"Config key '{key}' does not exist. Valid keys under '{parent_key or '<root>'}': {valid}"
            )
        raise ConfigKeyError(f"Config key '{key}' does not exist ('{parent_key}' is not a config node)")


def check_config(cfg: DictConfig) -> None:
    """Reject unknown top-level and ``train.*`` keys (typos there are otherwise silently ignored)."""
    unknown = sorted(set(cfg.keys()) - TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigKeyError(f"Unknown top-level config keys {unknown}; expected a subset of {sorted(TOP_LEVEL_KEYS)}")
    unknown = sorted(set(cfg.train.keys()) - TRAIN_KEYS)
    if unknown:
        raise ConfigKeyError(f"Unknown config keys train.{unknown}; valid train keys: {sorted(TRAIN_KEYS)}")


def load_config(path: str, overrides: Iterable[str] = ()) -> DictConfig:
    """``LazyConfig.load`` + checked overrides + :func:`check_config`."""
    cfg = LazyConfig.load(path)
    overrides = list(overrides)
    check_overrides(cfg, overrides)
    cfg = LazyConfig.apply_overrides(cfg, overrides)
    check_config(cfg)
    return cfg
