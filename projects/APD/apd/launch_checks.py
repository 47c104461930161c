"""Checks of a loaded config against what lies outside it, before anything is built or written: the data on
disk, the datasets' metadata, the number of processes, the device. Each mistake is one line naming the keys.

- :func:`check_datasets`: data on disk (every file of a user's own dataset).
- :func:`check_model_matches_data`: class counts, ignore ids, pixel formats of the model and the data.
- :func:`check_batch_divides`: a training batch the processes cannot share.
- :func:`resolve_device`: ``train.device``.
"""
from typing import Optional, Sequence

import torch
from detectron2.data import MetadataCatalog
from omegaconf import DictConfig, OmegaConf

from apd.errors import ConfigMismatchError, ConfigValueError, UserError

__all__ = ["DatasetError", "check_batch_divides", "check_datasets", "check_model_matches_data", "resolve_device"]


class DatasetError(UserError, ValueError):
    """A dataset file that training could not use (unreadable, wrong size, ids out of range): names the file."""


def _dataset_names(cfg: DictConfig, splits: Sequence[str], with_split: bool = False):
    """The names in ``dataloader.{split}.dataset.names`` (a string or a list), split by split."""
    for split in splits:
        names = OmegaConf.select(cfg, f"dataloader.{split}.dataset.names", default=None) or []
        for name in [names] if isinstance(names, str) else list(names):
            yield (split, name) if with_split else name


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
    for split, name in _dataset_names(cfg, splits, with_split=True):
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

    def found(keys):
        return {k: int(v) for k in keys if (v := OmegaConf.select(cfg, k, default=None)) is not None}

    student = "model.student" if OmegaConf.select(cfg, "model.student", default=None) is not None else "model"
    counts = found([f"{student}.sem_seg_head.num_classes", "model.teacher.sem_seg_head.num_classes"]
                   + [f"dataloader.{split}.mapper.num_classes" for split in splits])
    detection = found([f"{student}.roi_heads.num_classes", "model.teacher.roi_heads.num_classes"])
    counts.update(detection)
    classes_key = "thing_classes" if detection else "stuff_classes"
    ignores = found([f"{student}.sem_seg_head.ignore_value"] + [f"dataloader.{s}.mapper.ignore_value" for s in splits])
    for name in _dataset_names(cfg, splits):
        meta = MetadataCatalog.get(name)
        if meta.get(classes_key, None) is not None:
            counts[f"len(MetadataCatalog.get('{name}').{classes_key})"] = len(meta.get(classes_key))
        if meta.get("ignore_label", None) is not None and meta.get("stuff_classes", None) is not None:
            ignores[f"MetadataCatalog.get('{name}').ignore_label"] = int(meta.ignore_label)
    for what, values in (("Class counts", counts), ("Ignore ids", ignores)):
        if len(set(values.values())) > 1:
            (ref, n), *others = values.items()
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
