"""PASCAL-Context semantic segmentation (59 and 60 classes), which Detectron2 does not ship.

The official release (https://cs.stanford.edu/~roozbeh/pascal-context/) labels every VOC2010
image with 459 categories (``trainval/<image id>.mat``, key ``LabelMap``: 0 = unlabeled,
1..459 = line numbers of the release's ``labels.txt``). Everybody evaluates on the 59 most
frequent categories: ``PASCAL_CONTEXT_59_SOURCE_IDS`` lists their 459-class ids, in the same
order as ``PASCAL_CONTEXT_59_CLASSES`` (alphabetical, which is also ascending id order). This is
the subset used by the Detail API, PyTorch-Encoding, HRNet and MMSegmentation.

``datasets/prepare_pascal_context.py`` writes two label sets from the ``.mat`` files:

- ``pc60``: 0 = background (unlabeled pixels and the other 400 categories), 1..59 = the classes.
- ``pc59``: the same with background ignored: 255 = background, 0..58 = the classes.

Layout under ``root`` (the ``$DETECTRON2_DATASETS`` folder)::

    pascal_context/images/{train,val}/<image id>.jpg
    pascal_context/annotations_detectron2/pc59/{train,val}/<image id>.png
    pascal_context/annotations_detectron2/pc60/{train,val}/<image id>.png
"""
import os

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_sem_seg

__all__ = [
    "PASCAL_CONTEXT_59_CLASSES",
    "PASCAL_CONTEXT_60_CLASSES",
    "PASCAL_CONTEXT_59_SOURCE_IDS",
    "register_pascal_context",
]

# Ids in the 459-category labels.txt of the official release, one per class below.
PASCAL_CONTEXT_59_SOURCE_IDS = (
    2, 9, 18, 19, 22, 23, 25, 31, 33, 34, 44, 45, 46, 59, 65, 68, 72, 80, 85, 98,
    104, 105, 113, 115, 144, 158, 159, 162, 187, 189, 207, 220, 232, 258, 259, 260, 284, 295,
    296, 308, 324, 326, 347, 349, 354, 355, 360, 366, 368, 397, 415, 416, 420, 424, 427, 440,
    445, 454, 458,
)  # fmt: skip

PASCAL_CONTEXT_59_CLASSES = (
    "aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat", "book",
    "bottle", "building", "bus", "cabinet", "car", "cat", "ceiling", "chair", "cloth",
    "computer", "cow", "cup", "curtain", "dog", "door", "fence", "floor", "flower", "food",
    "grass", "ground", "horse", "keyboard", "light", "motorbike", "mountain", "mouse", "person",
    "plate", "platform", "pottedplant", "road", "rock", "sheep", "shelves", "sidewalk", "sign",
    "sky", "snow", "sofa", "table", "track", "train", "tree", "truck", "tvmonitor", "wall",
    "water", "window", "wood",
)  # fmt: skip

PASCAL_CONTEXT_60_CLASSES = ("background",) + PASCAL_CONTEXT_59_CLASSES

assert len(PASCAL_CONTEXT_59_SOURCE_IDS) == len(PASCAL_CONTEXT_59_CLASSES) == 59
assert list(PASCAL_CONTEXT_59_SOURCE_IDS) == sorted(PASCAL_CONTEXT_59_SOURCE_IDS)

# name -> (image folder, label folder, classes), relative to `root`
_PASCAL_CONTEXT_SPLITS = {
    f"pascal_context_{n}_sem_seg_{split}": (
        os.path.join("pascal_context", "images", split),
        os.path.join("pascal_context", "annotations_detectron2", f"pc{n}", split),
        classes,
    )
    for n, classes in ((59, PASCAL_CONTEXT_59_CLASSES), (60, PASCAL_CONTEXT_60_CLASSES))
    for split in ("train", "val")
}


def register_pascal_context(root):
    """
    Register ``pascal_context_{59,60}_sem_seg_{train,val}`` with image and label folders
    under ``root`` (see the module docstring). Names that are already registered are left
    untouched, so calling this twice is harmless.

    Returns:
        list[str]: the names registered by this call.
    """
    registered = []
    for name, (image_dir, gt_dir, classes) in _PASCAL_CONTEXT_SPLITS.items():
        if name in DatasetCatalog.list():
            continue
        image_dir = os.path.join(root, image_dir)
        gt_dir = os.path.join(root, gt_dir)
        DatasetCatalog.register(
            name, lambda x=image_dir, y=gt_dir: load_sem_seg(y, x, gt_ext="png", image_ext="jpg")
        )
        MetadataCatalog.get(name).set(
            stuff_classes=list(classes),
            image_root=image_dir,
            sem_seg_root=gt_dir,
            evaluator_type="sem_seg",
            ignore_label=255,
        )
        registered.append(name)
    return registered
