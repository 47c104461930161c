"""Loading a config: its keys and the types of its values, each mistake one line naming the key.

- :func:`load_config`: ``LazyConfig.load`` + overrides checked for unknown keys and for values of the
  wrong type (:func:`check_overrides`) + unknown top-level/``train.*`` keys (:func:`check_config`).
- :func:`check_range`: a value's range, called by the value's owner.

What the config must agree with outside itself (the data, the processes, the device) is checked by
:mod:`apd.launch_checks`.
"""
import collections.abc as abc
import inspect
import os
import typing
from typing import Any, Callable, Iterable, List, Optional

from detectron2.config import LazyConfig
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from apd.errors import ConfigKeyError, ConfigValueError

__all__ = [
    "ConfigKeyError", "ConfigValueError", "check_config", "check_overrides", "check_range", "is_int", "lazy_target",
    "load_config", "student_overrides", "train_defaults",
]

TOP_LEVEL_KEYS = {"model", "dataloader", "optimizer", "lr_multiplier", "train", "adapter_optimizer"}
TRAIN_DEFAULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), *[os.pardir] * 3, "configs", "common",
                              "train.py")
_MISSING = object()


def train_defaults() -> DictConfig:
    """The ``train`` dict of ``configs/common/train.py`` (:data:`TRAIN_DEFAULTS`): its keys are the valid
    ``train.*`` keys, its values give their types."""
    return LazyConfig.load(os.path.normpath(TRAIN_DEFAULTS)).train


def _train_param(key: str, defaults: DictConfig) -> Optional[inspect.Parameter]:
    """``train.<key>[.…]`` as a parameter: its default from :func:`train_defaults`, and for a direct key
    the annotation of the :class:`~apd.engine.distill_trainer.DistillTrainer` keyword of that name, which
    ``train_net.py`` passes it to (``train.compile``: ``Union[bool, Mapping]``); None for an unknown key."""
    from apd.engine.distill_trainer import DistillTrainer

    default = OmegaConf.select(defaults, key, default=_MISSING)
    if default is _MISSING:
        return None
    trainer = inspect.signature(DistillTrainer).parameters.get(key)
    annotation = trainer.annotation if trainer is not None else inspect.Parameter.empty
    return inspect.Parameter(key.split(".")[-1], inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=annotation)


# ----------------------------------------------------------------------------------------- keys
def lazy_target(node) -> Any:
    """The callable a LazyCall node (a DictConfig or a plain mapping) builds: its ``_target_``, located when
    written as a string; None for anything else.

    Raises:
        ImportError, AttributeError: a string target that names nothing importable (Detectron2's ``locate``).
    """
    target = node.get("_target_") if isinstance(node, (DictConfig, abc.Mapping)) else None
    if isinstance(target, str):
        from detectron2.utils.registry import locate

        target = locate(target)
    return target


def _target_signature(node) -> Optional[inspect.Signature]:
    """Signature of a LazyCall node's target, or None (no target, or none to inspect)."""
    target = lazy_target(node)
    if target is None:
        return None
    try:
        return inspect.signature(target)
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------------------- values
_BOOL_WORDS = {"yes", "no", "on", "off", "y", "n"}
_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
               list: "a list", dict: "a mapping"}
_NONE = type(None)


def _kind(value):
    """bool/int/float/str/list/dict for a parsed or stored value, NoneType for None, else None."""
    if value is None:
        return _NONE
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind
    if isinstance(value, (list, tuple, ListConfig)):
        return list
    if isinstance(value, (dict, DictConfig)):
        return dict
    return None


def _kinds_of_annotation(annotation) -> Optional[set]:
    """Allowed kinds of a signature annotation (``Optional[str]`` → {str, NoneType}); None = unknown."""
    if annotation is inspect.Parameter.empty or isinstance(annotation, str):
        return None
    origin = typing.get_origin(annotation)
    if origin is typing.Union:
        subs = [_kinds_of_annotation(arg) for arg in typing.get_args(annotation)]
        return None if None in subs else set().union(*subs)
    if annotation is float:
        return {float, int}
    if annotation in (_NONE, bool, int, str, list, dict):
        return {annotation}
    if origin in (list, tuple, abc.Sequence) or annotation in (list, tuple):
        return {list}
    if origin in (dict, abc.Mapping) or annotation is abc.Mapping:
        return {dict}
    return None


def _expected_kinds(old, param: Optional[inspect.Parameter]) -> Optional[set]:
    """Kinds a new value may have (None: anything goes).

    The kind of the value it replaces, or, where that is None or the key is new, of the signature's default;
    widened by the signature's annotation (``Union[bool, Mapping]`` also takes a mapping). An int takes an
    int, a float also an int; a list or a node also ``null`` (off), as does a value that is None in the config or
    in the signature's default.
    """
    annotated = _kinds_of_annotation(param.annotation) if param is not None else None
    default = param.default if param is not None else inspect.Parameter.empty
    ref = old if old not in (None, _MISSING) else default
    if ref is None or ref is inspect.Parameter.empty:
        return annotated
    kinds = {_kind(ref)}
    if None in kinds:
        return None
    kinds |= annotated or set()
    if float in kinds:
        kinds.add(int)
    if kinds & {list, dict} or default is None or old is None:
        kinds.add(_NONE)
    return kinds


def _describe(kinds: set) -> str:
    names = [_KIND_NAMES[k] for k in (bool, int, float, str, list, dict) if k in kinds
             and not (k is int and float in kinds)]
    return " or ".join(names + (["null"] if _NONE in kinds else []))


def _check_value(key: str, value, old, param: Optional[inspect.Parameter], item: str) -> None:
    kinds = _expected_kinds(old, param)
    got = _kind(value)
    if kinds is None or got in kinds:
        return
    if got is str and value == "None" and _NONE in kinds:
        raise ConfigValueError(f"Config override '{item}' is the string \"None\"; write {key}=null.")
    if bool in kinds and got is str and value.strip().lower() in _BOOL_WORDS:
        raise ConfigValueError(
            f"Config override '{item}' is a word, not a boolean (it would be the truthy string "
            f"'{value}'); write {key}=true or {key}=false.")
    shown = f"'{value}'" if isinstance(value, str) else repr(value)
    hint = f" (quote it to mean the string: {key}='{value}')" if str in kinds and got is not str else ""
    raise ConfigValueError(
        f"Config override '{item}': expected {_describe(kinds)}, got {shown}{hint}.")


def _parse(overrides: List[str]):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    parsed = []
    for item in overrides:
        try:
            (o,) = parser.parse_overrides([item])
        except Exception as e:  # hydra's OverrideParseException, one line
            key, _, value = item.partition("=")
            hint = ""
            if value and not (value[0] == value[-1] and value[0] in "'\"") and (
                    not value.isascii() or any(c.isspace() or c in "()[]{}:,=$'\"\\" for c in value)):
                hint = (f" Quote a value with spaces, non-ASCII or special characters for the override grammar, "
                        f"inside the shell's quotes: \"{key}='{value}'\"")
            raise ConfigValueError(
                f"Cannot parse config override '{item}': {str(e).splitlines()[0]}.{hint}") from None
        if o.is_sweep_override():
            raise ConfigValueError(
                f"Config override '{item}' is a sweep (a comma outside brackets); write a list as [a,b] or quote it.")
        parsed.append((o.key_or_group, o.value(), item))
    return parsed


def check_overrides(cfg: DictConfig, overrides: Iterable[str]) -> None:
    """Check ``key=value`` overrides against ``cfg`` before they are applied.

    - The key must exist, or its parent must be a LazyCall node whose target accepts that keyword
      (else :class:`ConfigKeyError` listing the valid keys).
    - The value (parsed as ``LazyConfig.apply_overrides`` does, Hydra's grammar) must have the type of
      the value it replaces: bool (only ``true``/``false`` in any case; ``yes``/``no``/``on``/``off`` are
      refused), int, float (an int is accepted), str, list, mapping; ``null`` where the old value is a
      list or node or the target's signature allows None. Where the old value is None or the key is new,
      the target's signature (a non-None default, or the annotation) decides; with neither, anything goes.
      An annotation widens the kinds (``Union[bool, Mapping]``). ``train.*`` keys are typed by
      :func:`train_defaults` and the trainer's signature (:func:`_train_param`).
      Else :class:`ConfigValueError`, one line naming the key.
    """
    defaults = train_defaults()
    for key, value, item in _parse(list(overrides)):
        parts = key.split(".")
        parent_key, name = ".".join(parts[:-1]), parts[-1]
        parent = OmegaConf.select(cfg, parent_key, default=None) if parent_key else cfg
        sig = _target_signature(parent)
        param = sig.parameters.get(name) if sig is not None else None
        if parts[0] == "train":
            param = _train_param(key[len("train."):], defaults)
        old = OmegaConf.select(cfg, key, default=_MISSING, throw_on_resolution_failure=False)
        if old is _MISSING and param is None:
            if not isinstance(parent, DictConfig):
                raise ConfigKeyError(f"Config key '{key}' does not exist ('{parent_key}' is not a config node)")
            accepted = None if sig is None or any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()) \
                else [n for n in sig.parameters if n != "self"]
            if accepted is None or name not in accepted:
                valid = sorted(accepted) if accepted is not None else sorted(k for k in parent.keys())
                raise ConfigKeyError(
                    f"Config key '{key}' does not exist. Valid keys under '{parent_key or '<root>'}': {valid}")
        _check_value(key, value, old, param, item)


def check_config(cfg: DictConfig) -> None:
    """Reject unknown top-level keys and ``train.*`` keys that ``configs/common/train.py`` does not define
    (:func:`train_defaults`): typos there are otherwise silently ignored."""
    unknown = sorted(set(cfg.keys()) - TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigKeyError(f"Unknown top-level config keys {unknown}; expected a subset of {sorted(TOP_LEVEL_KEYS)}")
    valid = sorted(train_defaults().keys())
    unknown = sorted(set(cfg.train.keys()) - set(valid))
    if unknown:
        raise ConfigKeyError(f"Unknown config keys train.{unknown}; valid train keys: {valid}")


def check_range(cfg: DictConfig, key: str, ok: Callable[[Any], bool], allowed: str) -> None:
    """Refuse the value at ``key`` unless ``ok(value)`` (nothing to check when the key is absent).

    The owners of the values call it (``apd.engine.hooks.check_schedule``, ``apd.solver.check_optimizers``,
    ``apd.data.samplers.check_loaders``), before anything is built or written.

    Raises:
        ConfigValueError: ``"<key>=<value> is out of range: <allowed>"``.
    """
    try:
        value = OmegaConf.select(cfg, key, default=_MISSING)
    except OmegaConfBaseException:  # a list on the way (R-CNN augmentations): not this key
        return
    if value is _MISSING:
        return
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value)
    try:
        good = ok(value)
    except (TypeError, ValueError):
        good = False
    if not good:
        raise ConfigValueError(f"{key}={value!r} is out of range: {allowed}.")


def is_int(value, low: int) -> bool:
    """``value`` is an int (not a bool) of at least ``low``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


# Keys of the evaluated model that a distillation config keeps under ``model.student``: written
# ``model.<key>`` they mean the student there, so one override works for plain and distillation configs.
STUDENT_KEYS = ("sliding_window",)


def student_overrides(cfg: DictConfig, overrides: Iterable[str]) -> List[str]:
    """``overrides`` with ``model.<key>[.…]=…`` turned into ``model.student.<key>[.…]=…`` for each key of
    :data:`STUDENT_KEYS` when ``cfg`` is a distillation config (it has ``model.student``); e.g.
    ``model.sliding_window=null`` switches the sliding window off in ``configs/demo/pspnet_r18_demo.py`` and in
    ``configs/apd_pspnet_r18.py`` alike. Other overrides are returned unchanged."""
    if OmegaConf.select(cfg, "model.student", default=None) is None:
        return list(overrides)
    out = []
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if any(key == f"model.{k}" or key.startswith(f"model.{k}.") for k in STUDENT_KEYS):
            item = "model.student." + item.strip()[len("model."):]
        out.append(item)
    return out


def load_config(path: str, overrides: Iterable[str] = ()) -> DictConfig:
    """``LazyConfig.load`` + :func:`check_overrides` + overrides applied + :func:`check_config`, then the
    datasets the config itself defines (a user's own data, ``apd.data.datasets.own``) are registered
    from its values. ``model.sliding_window`` overrides reach a distiller's student
    (:func:`student_overrides`)."""
    from apd.data.datasets import register_config_datasets

    cfg = LazyConfig.load(path)
    overrides = student_overrides(cfg, overrides)
    check_overrides(cfg, overrides)
    cfg = LazyConfig.apply_overrides(cfg, overrides)
    check_config(cfg)
    register_config_datasets(cfg)
    return cfg
