"""A user's own dataset, registered from its data config: no code, no change to the package.

A data config names its dataset with a getter node in place of Detectron2's
``L(get_detection_dataset_dicts)(names=...)``::

    dataloader.train.dataset = L(sem_seg_folders)(
        names="my_data_train", image_root="data/images/train", sem_seg_root="data/labels/train",
        classes=["road", "car"], ignore_label=255)

The getter registers ``names`` in ``DatasetCatalog``/``MetadataCatalog`` from these values, then
returns ``get_detection_dataset_dicts(names)``, so registration happens when the loader is
instantiated, in whichever process builds it. :func:`apd.config.load_config` also registers every
such node when it loads a config (:func:`register_config_datasets`), so the checks, the evaluator and
the tools that read ``MetadataCatalog`` find the dataset before any loader exists.

- :func:`sem_seg_folders`: a folder of images and a folder of label PNGs (class id per pixel), read
  by Detectron2's ``load_sem_seg``; metadata ``stuff_classes``, ``ignore_label``,
  ``evaluator_type="sem_seg"``, ``image_root``, ``sem_seg_root``. An image without a label, or a
  label without an image, is an error naming the file (``load_sem_seg`` would silently keep the
  intersection).
- :func:`coco_json`: COCO-format instances, registered with Detectron2's ``register_coco_instances``,
  then read by the checked loader of :mod:`apd.data.datasets.coco`.

:func:`check_sem_seg_files` reads every pair once through :class:`~apd.data.dataset_mapper.SemSegDatasetMapper`
(what training does): unreadable files, size mismatches and ids outside the class list stop
``train_net.py`` before training, naming the file.
"""
import logging
import os
import time
from typing import Any, Dict, List, Optional, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog, get_detection_dataset_dicts
from detectron2.data.datasets import load_sem_seg, register_coco_instances
from detectron2.utils.file_io import PathManager
from omegaconf import DictConfig, OmegaConf

from apd.config import lazy_target
from apd.errors import MissingFileError

from .coco import use_checked_coco_loader

# ``${len:${..dataset.classes}}`` in a data config: the class count follows the class list.
if not OmegaConf.has_resolver("len"):
    OmegaConf.register_new_resolver("len", len)

__all__ = [
    "check_sem_seg_files",
    "coco_json",
    "register_coco_json",
    "register_config_datasets",
    "register_sem_seg_folders",
    "sem_seg_folders",
]

logger = logging.getLogger(__name__)


def _replace(name: str, metadata: Dict[str, Any]) -> bool:
    """True when ``name`` must be (re-)registered: absent, or registered with other metadata (a config
    override changed a folder within one process). An old registration is removed first."""
    if name in DatasetCatalog.list():
        old = MetadataCatalog.get(name).as_dict()
        if all(old.get(k) == v for k, v in metadata.items()):
            return False
        DatasetCatalog.remove(name)
    if name in MetadataCatalog.list():
        MetadataCatalog.remove(name)
    return True


def _ext(ext: str) -> str:
    return ext if ext.startswith(".") else "." + ext


def _pair_files(image_root: str, sem_seg_root: str, image_ext: str, gt_ext: str) -> None:
    """Every image has a label and every label an image (``load_sem_seg``'s matching: the file name
    without its extension, one folder level). Raises MissingFileError naming the first unmatched file."""
    for folder, key in ((image_root, "image_root"), (sem_seg_root, "sem_seg_root")):
        if not os.path.isdir(folder):
            raise MissingFileError(f"Dataset folder {os.path.abspath(folder)} (config key dataset.{key}) "
                                    "does not exist.")
    images = {f[: -len(image_ext)] for f in PathManager.ls(image_root) if f.endswith(image_ext)}
    labels = {f[: -len(gt_ext)] for f in PathManager.ls(sem_seg_root) if f.endswith(gt_ext)}
    if not images:
        raise MissingFileError(f"No '*{image_ext}' image in {os.path.abspath(image_root)} "
                                "(config keys dataset.image_root, dataset.image_ext).")
    for missing, have, root, ext, what in ((images - labels, images, sem_seg_root, gt_ext, "label"),
                                           (labels - images, labels, image_root, image_ext, "image")):
        if missing:
            first = sorted(missing)[0]
            other_root, other_ext = (image_root, image_ext) if what == "label" else (sem_seg_root, gt_ext)
            raise MissingFileError(
                f"{os.path.join(other_root, first + other_ext)} has no {what}: expected "
                f"{os.path.join(root, first + ext)} ({len(missing)} of {len(have)} files have none).")


def register_sem_seg_folders(names: str, image_root: str, sem_seg_root: str, classes: Sequence[str],
                             ignore_label: int = 255, image_ext: str = ".jpg", gt_ext: str = ".png") -> str:
    """Register ``names`` as the pairs of ``image_root/<stem><image_ext>`` and
    ``sem_seg_root/<stem><gt_ext>`` (Detectron2's ``load_sem_seg``).

    Args:
        names: the dataset name (one name; the config key of ``get_detection_dataset_dicts``).
        image_root, sem_seg_root: folders of images and of label maps (H×W PNGs of class ids, the size
            of their image: ids 0..len(classes)−1, ``ignore_label`` for unlabelled pixels).
        classes: the class names, in id order.
        ignore_label: the id of unlabelled pixels.
        image_ext, gt_ext: file endings of images and labels (with or without the dot).

    Returns:
        ``names``. Registering again with the same values does nothing; with other values replaces
        the registration. The loader raises apd.errors.MissingFileError naming an unmatched file.
    """
    image_ext, gt_ext = _ext(image_ext), _ext(gt_ext)
    metadata = dict(stuff_classes=list(classes), ignore_label=int(ignore_label), evaluator_type="sem_seg",
                    image_root=str(image_root), sem_seg_root=str(sem_seg_root))
    if _replace(names, metadata):

        def load(i=str(image_root), g=str(sem_seg_root)):
            _pair_files(i, g, image_ext, gt_ext)
            return load_sem_seg(g, i, gt_ext=gt_ext, image_ext=image_ext)

        DatasetCatalog.register(names, load)
        MetadataCatalog.get(names).set(**metadata)
    return names


def sem_seg_folders(names: str, image_root: str, sem_seg_root: str, classes: Sequence[str],
                    ignore_label: int = 255, image_ext: str = ".jpg", gt_ext: str = ".png") -> List[dict]:
    """The dataset node of a folder dataset: :func:`register_sem_seg_folders`, then its dataset dicts
    (``file_name``, ``sem_seg_file_name``) through ``get_detection_dataset_dicts``."""
    register_sem_seg_folders(names, image_root, sem_seg_root, classes, ignore_label, image_ext, gt_ext)
    return get_detection_dataset_dicts(names, filter_empty=False)


def register_coco_json(names: str, json_file: str, image_root: str) -> str:
    """Register ``names`` with Detectron2's ``register_coco_instances`` (``thing_classes`` come from the
    json's categories when it is read) and the checked loader of :mod:`apd.data.datasets.coco`.

    Returns ``names``; same values again do nothing, other values replace the registration."""
    metadata = dict(json_file=str(json_file), image_root=str(image_root), evaluator_type="coco")
    if _replace(names, metadata):
        register_coco_instances(names, {}, str(json_file), str(image_root))
        use_checked_coco_loader([names])
    return names


def coco_json(names: str, json_file: str, image_root: str, filter_empty: bool = True) -> List[dict]:
    """The dataset node of a COCO-json dataset: :func:`register_coco_json`, then its dataset dicts
    (``filter_empty``: leave out images without annotations, for training)."""
    register_coco_json(names, json_file, image_root)
    return get_detection_dataset_dicts(names, filter_empty=filter_empty)


_REGISTER = {sem_seg_folders: register_sem_seg_folders, coco_json: register_coco_json}


def _registering_node(node) -> Optional[Any]:
    try:
        target = lazy_target(node) if isinstance(node, DictConfig) else None
    except Exception:
        return None
    return _REGISTER.get(target)


def register_config_datasets(cfg: DictConfig, splits: Sequence[str] = ("train", "test")) -> List[str]:
    """Register the datasets of ``cfg.dataloader.{split}.dataset`` that are :func:`sem_seg_folders` or
    :func:`coco_json` nodes, from their config values (interpolations resolved). Returns their names."""
    names = []
    for split in splits:
        node = OmegaConf.select(cfg, f"dataloader.{split}.dataset", default=None)
        register = _registering_node(node)
        if register is not None:
            kwargs = OmegaConf.to_container(node, resolve=True)
            kwargs.pop("_target_")
            kwargs.pop("filter_empty", None)
            names.append(register(**kwargs))
    return names


def check_sem_seg_files(names: str, num_classes: int, ignore_value: int = 255) -> int:
    """Read every image and label of a registered segmentation dataset once, as training does
    (:class:`~apd.data.dataset_mapper.SemSegDatasetMapper` without augmentations).

    Returns the number of pairs checked.

    Raises:
        apd.errors.MissingFileError: an image without a label or a label without an image.
        FileNotFoundError: a missing file.
        apd.data.dataset_mapper.BadSampleError: naming the file: unreadable, label size ≠ image size,
            label ids outside [0, num_classes) ∪ {ignore_value}, a JPEG label, an EXIF-rotated image.
    """
    from apd.data.dataset_mapper import SemSegDatasetMapper

    start = time.perf_counter()
    records = DatasetCatalog.get(names)
    mapper = SemSegDatasetMapper(is_train=False, augmentations=[], num_classes=num_classes,
                                 ignore_value=ignore_value)
    for record in records:
        mapper(record)
    logger.info(f"Dataset '{names}': {len(records)} images and labels checked in {time.perf_counter() - start:.1f} s")
    return len(records)
