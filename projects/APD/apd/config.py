"""Config checks of ``train_net.py``: each turns a mistake into one line naming the key, before heavy work.

- :func:`load_config`: ``LazyConfig.load`` + overrides checked for unknown keys and for values of the
  wrong type (:func:`check_overrides`) + unknown top-level/``train.*`` keys (:func:`check_config`).
- :func:`check_weights`: ``--eval-only`` without weights, checkpoint paths that do not exist.
- :func:`check_datasets`, :func:`check_model_matches_data`: data on disk (every file of a user's own
  segmentation dataset), class counts, ignore ids, pixel formats.
- :func:`check_batch_per_process`: one image per process under plain (unsynchronised) BN.
- :func:`resolve_device`.
"""
import collections.abc as abc
import inspect
import os
import typing
from typing import Any, Callable, Iterable, List, Optional, Sequence

import torch
from detectron2.config import LazyConfig
from detectron2.data import MetadataCatalog
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from apd.errors import ConfigKeyError, ConfigMismatchError, ConfigValueError, MissingFileError, UserError

__all__ = [
    "ConfigKeyError", "ConfigMismatchError", "ConfigValueError", "DatasetError",
    "check_batch_divides", "check_batch_per_process", "check_config", "check_datasets", "check_model_matches_data",
    "check_overrides", "check_range", "check_weights", "is_int", "load_config", "resolve_device",
    "student_overrides",
]

TOP_LEVEL_KEYS = {"model", "dataloader", "optimizer", "lr_multiplier", "train", "adapter_optimizer"}
TRAIN_KEYS = {
    "output_dir", "init_checkpoint", "max_iter", "amp", "ddp", "checkpointer", "eval_period",
    "log_period", "device", "seed", "eval_teacher", "cudnn_benchmark", "log_model", "compile",
}


class DatasetError(UserError, ValueError):
    """A dataset file that training could not use (unreadable, wrong size, ids out of range): names the file."""


# ----------------------------------------------------------------------------------------- keys
def _target_signature(node) -> Optional[inspect.Signature]:
    """Signature of a LazyCall node's target, or None (no target, or none to inspect)."""
    target = node.get("_target_") if isinstance(node, DictConfig) else None
    if target is None:
        return None
    if isinstance(target, str):
        from detectron2.utils.registry import locate

        target = locate(target)
    try:
        return inspect.signature(target)
    except (TypeError, ValueError):
        return None


def _target_params(node) -> Optional[List[str]]:
    """Keyword names accepted by a LazyCall node's target, or None when it takes **kwargs."""
    sig = _target_signature(node)
    if sig is None or any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return [n for n in sig.parameters if n != "self"]


# --------------------------------------------------------------------------------------- values
_BOOL_WORDS = {"yes", "no", "on", "off", "y", "n"}
_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
               list: "a list", dict: "a mapping"}


def _kind(value):
    """bool/int/float/str/list/dict for a parsed or stored value, type(None) for None, else None."""
    if value is None:
        return type(None)
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
        kinds = set()
        for arg in typing.get_args(annotation):
            sub = _kinds_of_annotation(arg)
            if sub is None:
                return None
            kinds |= sub
        return kinds
    if annotation is type(None):
        return {type(None)}
    if annotation in (bool, int, str, list, dict):
        return {annotation}
    if annotation is float:
        return {float, int}
    if origin in (list, tuple, abc.Sequence) or annotation in (list, tuple):
        return {list}
    if origin in (dict, abc.Mapping):
        return {dict}
    return None


# Counters that must stay integers (range(), modulo); other int values (loss weights 10, ...) take floats.
_INTEGER_KEYS = {
    "train.max_iter", "train.eval_period", "train.log_period", "train.seed", "train.checkpointer.period",
    "train.checkpointer.max_to_keep", "dataloader.train.total_batch_size", "dataloader.train.num_workers",
    "dataloader.test.num_workers", "dataloader.test.batch_size",
}


# Plain-dict keys whose documented values take more than one type (configs/common/train.py).
_ALSO_ACCEPTED = {"train.compile": {dict}}


def _expected_kinds(key: str, old, param: Optional[inspect.Parameter]) -> Optional[set]:
    """Kinds a new value may have: from the value it replaces, else from the target's signature."""
    if old is not None and old is not _MISSING:
        kind = _kind(old)
        if kind is None:
            return None
        kinds = {kind} | _ALSO_ACCEPTED.get(key, set())
        if kind is float:
            kinds.add(int)
        integer_only = key in _INTEGER_KEYS or (param is not None and param.annotation is int)
        if kind is int and not integer_only:
            kinds.add(float)
        if kind in (list, dict):
            kinds.add(type(None))  # "off" for a node or a list (e.g. augmentations.rotate=null)
        if param is not None:
            if param.default is None:
                kinds.add(type(None))
            more = _kinds_of_annotation(param.annotation)
            if more and type(None) in more:
                kinds.add(type(None))
        return kinds
    if param is None:
        return None
    if param.default is not inspect.Parameter.empty and param.default is not None:
        return _expected_kinds(key, param.default, param)
    return _kinds_of_annotation(param.annotation)


def _describe(kinds: set) -> str:
    names = [_KIND_NAMES[k] for k in (bool, int, float, str, list, dict) if k in kinds
             and not (k is int and float in kinds)]
    if type(None) in kinds:
        names.append("null")
    return " or ".join(names)


def _check_value(key: str, value, old, param: Optional[inspect.Parameter], item: str) -> None:
    kinds = _expected_kinds(key, old, param)
    if kinds is None:
        return
    got = _kind(value)
    if got in kinds or (got is int and float in kinds):
        return
    if got is str and value == "None" and type(None) in kinds:
        raise ConfigValueError(f"Config override '{item}' is the string \"None\"; write {key}=null.")
    if bool in kinds and got is str and value.strip().lower() in _BOOL_WORDS:
        raise ConfigValueError(
            f"Config override '{item}' is a word, not a boolean (it would be the truthy string "
            f"'{value}'); write {key}=true or {key}=false.")
    shown = f"'{value}'" if isinstance(value, str) else repr(value)
    hint = f" (quote it to mean the string: {key}='{value}')" if str in kinds and got is not str else ""
    raise ConfigValueError(
        f"Config override '{item}': expected {_describe(kinds)}, got {shown}{hint}.")


_MISSING = object()


def _parse(overrides: List[str]):
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser
    except ImportError:  # pragma: no cover (hydra-core is a detectron2 dependency)
        return None
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
      Else :class:`ConfigValueError`, one line naming the key.
    """
    overrides = list(overrides)
    parsed = _parse(overrides)
    if parsed is None:
        parsed = [(item.split("=", 1)[0].strip(), _MISSING, item) for item in overrides]
    for key, value, item in parsed:
        parts = key.split(".")
        parent_key, name = ".".join(parts[:-1]), parts[-1]
        parent = OmegaConf.select(cfg, parent_key, default=None) if parent_key else cfg
        sig = _target_signature(parent)
        param = sig.parameters.get(name) if sig is not None else None
        old = OmegaConf.select(cfg, key, default=_MISSING, throw_on_resolution_failure=False)
        if old is _MISSING:
            if isinstance(parent, DictConfig):
                accepted = _target_params(parent)
                if accepted is None or name not in accepted:
                    valid = sorted(accepted) if accepted is not None else sorted(k for k in parent.keys())
                    raise ConfigKeyError(
                        f"Config key '{key}' does not exist. Valid keys under '{parent_key or '<root>'}': {valid}")
            else:
                raise ConfigKeyError(f"Config key '{key}' does not exist ('{parent_key}' is not a config node)")
        if value is not _MISSING:
            _check_value(key, value, old, param, item)


def check_config(cfg: DictConfig) -> None:
    """Reject unknown top-level and ``train.*`` keys (typos there are otherwise silently ignored)."""
    unknown = sorted(set(cfg.keys()) - TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigKeyError(f"Unknown top-level config keys {unknown}; expected a subset of {sorted(TOP_LEVEL_KEYS)}")
    unknown = sorted(set(cfg.train.keys()) - TRAIN_KEYS)
    if unknown:
        raise ConfigKeyError(f"Unknown config keys train.{unknown}; valid train keys: {sorted(TRAIN_KEYS)}")


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


# -------------------------------------------------------------------------------------- weights
def _is_local(path: str) -> bool:
    return "://" not in path


def check_weights(cfg: DictConfig, *, eval_only: bool, resume: bool = False, need_teacher: bool = True) -> None:
    """Refuse weights that cannot be what the user meant, before anything is built or written.

    Raises:
        ConfigValueError: ``eval_only`` and ``train.init_checkpoint`` is empty (a random model would be
            scored).
        MissingFileError: ``train.init_checkpoint`` (when it will be loaded: not when ``resume`` finds a
            checkpoint in ``train.output_dir``) or ``model.teacher_weights`` (when ``need_teacher``) is a
            local path that does not exist.
    """
    init = OmegaConf.select(cfg, "train.init_checkpoint", default="") or ""
    if eval_only and not init:
        raise ConfigValueError(
            "--eval-only needs weights: train.init_checkpoint is empty, so a randomly initialised model would "
            "be scored. Pass train.init_checkpoint=PATH (a training checkpoint or an exported model).")
    output_dir = OmegaConf.select(cfg, "train.output_dir", default="") or ""
    resuming = resume and not eval_only and os.path.isfile(os.path.join(output_dir, "last_checkpoint"))
    if init and not resuming and _is_local(init) and not os.path.isfile(init):
        hint = "" if eval_only else (
            " For ImageNet weights convert them with tools/convert_torchvision_backbone.py (see MODEL_ZOO.md); "
            "to train from random weights pass train.init_checkpoint=\"\".")
        raise MissingFileError(f"Checkpoint not found: '{init}' (config key train.init_checkpoint).{hint}")
    teacher = OmegaConf.select(cfg, "model.teacher_weights", default=None)
    if need_teacher and isinstance(teacher, str) and teacher and _is_local(teacher) and not os.path.isfile(teacher):
        raise MissingFileError(
            f"Teacher weights not found: '{teacher}' (config key model.teacher_weights). Train the teacher first "
            "or convert a published checkpoint (see MODEL_ZOO.md).")


# ----------------------------------------------------------------------------------------- data
def check_datasets(cfg: DictConfig, splits: Sequence[str] = ("train", "test")) -> None:
    """Fail fast, with the expected path and the prepare script, when a dataset is not on disk.

    A user's own dataset (``dataloader.{split}.dataset`` a ``sem_seg_folders`` or ``coco_json`` node,
    registered by :func:`load_config`) is read in full: every segmentation image and label through the
    training mapper with ``dataloader.{split}.mapper.num_classes`` / ``ignore_value``, a COCO json
    through the checked loader (which also sets its ``thing_classes`` for :func:`check_model_matches_data`).

    Raises:
        MissingFileError: from :func:`apd.data.datasets.check_dataset_root`, or a missing file or an image
            without a label, one line.
        DatasetError: a file training could not use, one line naming it.
    """
    from apd.data.dataset_mapper import BadSampleError
    from apd.data.datasets import check_dataset_root, check_sem_seg_files, register_config_datasets

    own = set(register_config_datasets(cfg, splits))
    for split in splits:
        names = OmegaConf.select(cfg, f"dataloader.{split}.dataset.names", default=None)
        if names is None:
            continue
        for name in [names] if isinstance(names, str) else list(names):
            check_dataset_root(name)
            if name not in own:
                continue
            try:
                if MetadataCatalog.get(name).get("evaluator_type", None) == "sem_seg":
                    mapper = OmegaConf.select(cfg, f"dataloader.{split}.mapper")
                    check_sem_seg_files(name, int(mapper.num_classes), int(mapper.get("ignore_value", 255)))
                else:
                    from detectron2.data import DatasetCatalog

                    DatasetCatalog.get(name)
            except (BadSampleError, ValueError) as e:
                raise DatasetError(f"Dataset '{name}': {e}") from e


def check_model_matches_data(cfg: DictConfig, splits: Sequence[str] = ("train", "test")) -> None:
    """Fail fast when the model and the data disagree on the class count or the pixel format.

    Compares (when present) ``model[.student|.teacher].sem_seg_head.num_classes``,
    ``dataloader.{split}.mapper.num_classes`` and ``len(stuff_classes)`` of every dataset's metadata; for
    R-CNNs ``model[.student|.teacher].roi_heads.num_classes`` and ``len(thing_classes)``;
    the student head's ``ignore_value``, the mappers' and the metadata's ``ignore_label`` of a
    segmentation dataset;
    ``dataloader.{split}.mapper.image_format`` with the student's ``input_format``, which the teacher's
    must equal or be convertible to (RGB<->BGR).

    Raises:
        ConfigMismatchError: naming both keys.
    """
    from apd.modeling.meta_arch.teacher import needs_channel_swap

    student = "model.student" if OmegaConf.select(cfg, "model.student", default=None) is not None else "model"
    counts = {}
    keys = [f"{student}.sem_seg_head.num_classes", "model.teacher.sem_seg_head.num_classes"]
    keys += [f"dataloader.{split}.mapper.num_classes" for split in splits]
    detection = [f"{student}.roi_heads.num_classes", "model.teacher.roi_heads.num_classes"]
    classes_key = "thing_classes" if any(OmegaConf.select(cfg, k, default=None) is not None
                                         for k in detection) else "stuff_classes"
    for key in keys + detection:
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None:
            counts[key] = int(value)
    ignores = {}
    for key in [f"{student}.sem_seg_head.ignore_value"] + [f"dataloader.{s}.mapper.ignore_value" for s in splits]:
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None:
            ignores[key] = int(value)
    for split in splits:
        names = OmegaConf.select(cfg, f"dataloader.{split}.dataset.names", default=None) or []
        for name in [names] if isinstance(names, str) else list(names):
            meta = MetadataCatalog.get(name)
            classes = meta.get(classes_key, None)
            if classes is not None:
                counts[f"len(MetadataCatalog.get('{name}').{classes_key})"] = len(classes)
            if meta.get("ignore_label", None) is not None and meta.get("stuff_classes", None) is not None:
                ignores[f"MetadataCatalog.get('{name}').ignore_label"] = int(meta.ignore_label)
    for what, found in (("Class counts", counts), ("Ignore ids", ignores)):
        if found and len(set(found.values())) > 1:
            (ref, n), *others = found.items()
            bad = ", ".join(f"{k}={v}" for k, v in others if v != n)
            raise ConfigMismatchError(f"{what} disagree: {ref}={n} but {bad}.")
    fmt_key = f"{student}.input_format"
    fmt = OmegaConf.select(cfg, fmt_key, default=None)
    for split in splits:
        key = f"dataloader.{split}.mapper.image_format"
        data_fmt = OmegaConf.select(cfg, key, default=None)
        if fmt is not None and data_fmt is not None and data_fmt != fmt:
            raise ConfigMismatchError(f"Pixel formats disagree: {key}={data_fmt} but {fmt_key}={fmt}.")
    teacher_fmt = OmegaConf.select(cfg, "model.teacher.input_format", default=None)
    try:
        needs_channel_swap(fmt, teacher_fmt)
    except ValueError as e:
        raise ConfigMismatchError(f"model.teacher.input_format={teacher_fmt}, {fmt_key}={fmt}: {e}") from e


def check_batch_divides(cfg: DictConfig, *, world_size: int) -> None:
    """Refuse a training batch that the processes cannot share equally, before any process starts.

    Args:
        cfg: reads ``dataloader.train.total_batch_size`` (absent: nothing to check).
        world_size: number of training processes (``--num-gpus`` × ``--num-machines``).

    Raises:
        ConfigValueError: one line naming the key, its value and the process count.
    """
    total = OmegaConf.select(cfg, "dataloader.train.total_batch_size", default=None)
    if total is None:
        return
    world_size = max(int(world_size), 1)
    if int(total) <= 0 or int(total) % world_size != 0:
        raise ConfigValueError(
            f"dataloader.train.total_batch_size={total} must be a positive multiple of the number of processes "
            f"({world_size} = --num-gpus × --num-machines): every process loads total_batch_size / {world_size} "
            "images per step.")


def check_batch_per_process(cfg: DictConfig, model: torch.nn.Module, *, world_size: int,
                            skip: Sequence[torch.nn.Module] = (), device: str = "cpu") -> None:
    """Refuse a norm the processes cannot run, and one image per process where a BN layer would then
    normalise one value per channel.

    Args:
        cfg: reads ``dataloader.train.total_batch_size``.
        model: the built model; BN layers after a global pool (PSPNet's 1×1 bin, ASPP's image pooling) are
            looked for (:func:`apd.layers.batch_norm.single_value_batchnorms`). With several processes,
            synchronised layers (``SyncBN``, ``naiveSyncBN``) see the global batch and pass; with one
            process every BN counts.
        world_size: number of training processes.
        skip: sub-modules that never train (a distiller's frozen teacher).
        device: "cpu" or "cuda[:i]".

    Raises:
        ConfigValueError: ``SyncBN`` with several CPU processes (DDP refuses it there).
        ConfigMismatchError: one line naming the batch size, a layer and the fixes.
    """
    from apd.layers.batch_norm import single_value_batchnorms, torch_sync_batchnorms

    sync = torch_sync_batchnorms(model) if world_size > 1 and not str(device).startswith("cuda") else []
    if sync:
        raise ConfigValueError(
            f"norm 'SyncBN' ({sync[0]}{f' and {len(sync) - 1} more' if len(sync) > 1 else ''}) is torch's "
            f"SyncBatchNorm, which needs CUDA; with {world_size} CPU processes set the norm to 'naiveSyncBN' "
            "(e.g. model.backbone.norm=naiveSyncBN, model.student.backbone.norm=naiveSyncBN for a distiller).")
    total = OmegaConf.select(cfg, "dataloader.train.total_batch_size", default=None)
    if total is None or int(total) // max(world_size, 1) != 1:
        return
    layers = single_value_batchnorms(model, skip=skip, synced=world_size == 1)
    if not layers:
        return
    where = f"{world_size} processes and per-process BN" if world_size > 1 else "1 process"
    raise ConfigMismatchError(
        f"dataloader.train.total_batch_size={total} with {where} gives 1 image per process, and BatchNorm after a "
        f"global pool ({layers[0]}{f' and {len(layers) - 1} more' if len(layers) > 1 else ''}) would normalise one "
        "value per channel. Use a batch of at least 2 per process, or several processes (--num-gpus N) with a "
        "synchronised norm: model.backbone.norm=SyncBN (CUDA) or naiveSyncBN (any device).")


def resolve_device(device: Optional[str]) -> str:
    """``"auto"``/``""``/None → "cuda" when available, else "cpu"; other values are returned as given.

    Raises:
        ConfigValueError: ``train.device`` asks for CUDA on a machine without it.
    """
    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigValueError(f"train.device={device} but CUDA is not available; use train.device=cpu (or auto)")
    return device
