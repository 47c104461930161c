"""Our dataset registrations, and a check that a dataset's files exist before training.

Cityscapes, ADE20K and COCO come from Detectron2's own registrations
(``cityscapes_fine_sem_seg_{train,val}``, ``ade20k_sem_seg_{train,val}``,
``coco_2017_{train,val}``); this module adds what Detectron2 lacks (PASCAL-Context), and gives
Detectron2's COCO instance datasets the checked loader of :mod:`apd.data.datasets.coco` (unusable
boxes and polygons dropped and named, the same rule as ``apd.evaluation.COCOEvaluator``). Like
Detectron2, the root is ``$DETECTRON2_DATASETS`` (default ``datasets``) read at import time.
See ``datasets/README.md`` for the expected layouts and the preparation scripts.
"""
import glob
import os

from detectron2.data import DatasetCatalog, MetadataCatalog

from ...errors import MissingFileError
from .coco import use_checked_coco_loader
from .pascal_context import register_pascal_context

__all__ = ["register_all", "check_dataset_root"]


def register_all(root):
    """
    Register every dataset that Detectron2 does not ship, with files under ``root``, and swap
    the loader of Detectron2's COCO instance datasets (``coco_2014_*``, ``coco_2017_*``) for the
    checked one (their paths and metadata stay Detectron2's). Names already in ``DatasetCatalog``
    are skipped, so repeated calls register nothing new.

    Returns:
        list[str]: the names registered by this call.
    """
    coco = [n for n in DatasetCatalog.list()
            if n.startswith(("coco_2014_", "coco_2017_"))
            and MetadataCatalog.get(n).get("evaluator_type", None) == "coco"]
    use_checked_coco_loader(coco)
    return register_pascal_context(root)


# Metadata keys through which Detectron2 and we record where a dataset's files live.
_PATH_KEYS = ("image_dir", "gt_dir", "image_root", "sem_seg_root", "json_file")

# dataset name prefix -> what the user should do when its files are missing
_HOW_TO_GET = {
    "cityscapes": "run datasets/prepare_cityscapes.py",
    "ade20k": "run datasets/prepare_ade20k.py",
    "pascal_context": "run datasets/prepare_pascal_context.py",
    "coco": "download COCO 2017 into it",
}


def _how_to_get(dataset_name):
    for prefix, action in _HOW_TO_GET.items():
        if dataset_name.startswith(prefix):
            return action
    return "prepare the dataset"


def _missing(dataset_name, path, what="(not found)"):
    return MissingFileError(
        f"Dataset '{dataset_name}' expects {os.path.abspath(path)} {what}. "
        f"Set DETECTRON2_DATASETS or {_how_to_get(dataset_name)}; see datasets/README.md"
    )


def check_dataset_root(dataset_name):
    """
    Check that the files a registered dataset reads exist, before any loader is built.

    Args:
        dataset_name (str): a name in ``DatasetCatalog``, e.g. ``"cityscapes_fine_sem_seg_train"``.

    Raises:
        KeyError: if ``dataset_name`` is not registered.
        FileNotFoundError: a one-line message naming the missing path and the preparation
            script, e.g. "Dataset 'cityscapes_fine_sem_seg_train' expects
            /data/cityscapes/leftImg8bit/train (not found). Set DETECTRON2_DATASETS or run
            datasets/prepare_cityscapes.py; see datasets/README.md". For Cityscapes semantic
            segmentation it also requires the ``*_gtFine_labelTrainIds.png`` files that
            ``datasets/prepare_cityscapes.py`` writes, and the ``*_gtFine_labelIds.png`` files
            that the release ships (the script writes them where missing).
    """
    if dataset_name not in DatasetCatalog.list():
        raise KeyError(f"Dataset '{dataset_name}' is not registered in DatasetCatalog")
    meta = MetadataCatalog.get(dataset_name)
    for key in _PATH_KEYS:
        path = getattr(meta, key, None)
        if path and not os.path.exists(path):
            raise _missing(dataset_name, path)
    if getattr(meta, "evaluator_type", None) == "cityscapes_sem_seg":
        # labelTrainIds: what training and SemSegEvaluator read; labelIds: the official evaluation's
        # ground truth (CityscapesSemSegEvaluator), checked here so a run does not train for hours
        # and then fail in its final evaluation.
        images = sorted(glob.glob(os.path.join(meta.image_dir, "*", "*_leftImg8bit.png")))
        for suffix in ("labelTrainIds", "labelIds"):
            pattern = os.path.join(meta.gt_dir, "*", f"*_gtFine_{suffix}.png")
            if not glob.glob(pattern):
                raise _missing(dataset_name, pattern, "(no such files)")
            # Every image's label, by name: Detectron2 checks only the first image's, with an assertion
            # that names no file.
            labels = [os.path.join(meta.gt_dir, os.path.basename(os.path.dirname(image)),
                                   os.path.basename(image)[:-len("leftImg8bit.png")] + f"gtFine_{suffix}.png")
                      for image in images]
            absent = [label for label in labels if not os.path.isfile(label)]
            if absent:
                raise _missing(dataset_name, absent[0], f"(the label of {os.path.abspath(images[labels.index(absent[0])])}; "
                               f"{len(absent)} of {len(images)} images have no {suffix} label)")


_root = os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))
register_all(_root)
