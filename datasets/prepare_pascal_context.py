#!/usr/bin/env python
"""Build PASCAL-Context 59/60-class label PNGs from the official release.

Input (``--src``, default ``$DETECTRON2_DATASETS/VOCdevkit/VOC2010``)::

    JPEGImages/<id>.jpg                       VOC2010 images (VOC2012's JPEGImages also work)
    trainval/<id>.mat                         PASCAL-Context trainval.tar.gz: key "LabelMap",
                                              uint16 H×W, 0 = unlabeled, 1..459 = labels.txt ids
    ImageSets/SegmentationContext/{train,val}.txt   split files, one image id per line
        (if absent: ImageSets/Main/{train,val}.txt, i.e. VOC2010's 4998/5105 split,
         which is PASCAL-Context's train/val split)
    labels.txt                                optional, "<id>: <name>" (459 lines); if present,
                                              the 59 class names are checked against it

Output (``--dst``, default ``$DETECTRON2_DATASETS/pascal_context``)::

    images/{train,val}/<id>.jpg
    annotations_detectron2/pc60/{train,val}/<id>.png   0 = background, 1..59 = classes
    annotations_detectron2/pc59/{train,val}/<id>.png   0..58 = classes, 255 = background (ignored)

The 59 classes are the usual subset of the 459 (Detail API / PyTorch-Encoding / MMSegmentation);
their ids are ``apd.data.datasets.PASCAL_CONTEXT_59_SOURCE_IDS``. Every other id, and 0, is
background.

Usage::

    python datasets/prepare_pascal_context.py
    python datasets/prepare_pascal_context.py --src /data/VOCdevkit/VOC2010 --dst /data/pascal_context
"""
import argparse
import os
import shutil
import sys

import numpy as np
import scipy.io
from PIL import Image

from apd.data.datasets.pascal_context import PASCAL_CONTEXT_59_CLASSES, PASCAL_CONTEXT_59_SOURCE_IDS

NUM_FULL_CLASSES = 459
IGNORE_LABEL = 255

# 459-class id (0..459) -> 60-class label (0 = background, 1..59)
_FULL_TO_PC60 = np.zeros(NUM_FULL_CLASSES + 1, dtype=np.uint8)
_FULL_TO_PC60[list(PASCAL_CONTEXT_59_SOURCE_IDS)] = np.arange(1, 60, dtype=np.uint8)


def full_to_pc60(label_map, source="<array>"):
    """H×W ints in 0..459 -> uint8 H×W in 0..59 (0 = background); ``source`` names the file in errors."""
    label_map = np.asarray(label_map)
    if label_map.ndim != 2 or label_map.dtype.kind not in "iu":
        raise ValueError(f"{source}: LabelMap must be a 2-D integer array, got "
                         f"shape {label_map.shape} dtype {label_map.dtype}")
    if label_map.size and (label_map.min() < 0 or label_map.max() > NUM_FULL_CLASSES):
        raise ValueError(f"{source}: LabelMap values must be in [0, {NUM_FULL_CLASSES}], got "
                         f"[{int(label_map.min())}, {int(label_map.max())}]")
    return _FULL_TO_PC60[label_map]


def pc60_to_pc59(pc60):
    """60-class labels -> 59-class labels: class c becomes c - 1, background (0) becomes 255."""
    pc59 = np.asarray(pc60).astype(np.int16) - 1
    pc59[pc59 < 0] = IGNORE_LABEL
    return pc59.astype(np.uint8)


def read_label_map(mat_file):
    mat = scipy.io.loadmat(mat_file)
    if "LabelMap" not in mat:
        raise ValueError(f"{mat_file} has no 'LabelMap' (is it a PASCAL-Context trainval .mat?)")
    return mat["LabelMap"]


def check_labels_txt(labels_file):
    """Check that the release's ``labels.txt`` names our 59 ids as we do; raises ValueError otherwise."""
    names = {}
    with open(labels_file) as f:
        for line in f:
            if line.strip():
                idx, name = line.split(":", 1)
                names[int(idx)] = name.strip()
    for idx, name in zip(PASCAL_CONTEXT_59_SOURCE_IDS, PASCAL_CONTEXT_59_CLASSES):
        if names.get(idx) != name:
            raise ValueError(f"{labels_file}: id {idx} is {names.get(idx)!r}, expected {name!r}; "
                             "this is not the 459-class labels.txt of PASCAL-Context")


def read_split(split_file):
    if not os.path.isfile(split_file):
        raise FileNotFoundError(f"PASCAL-Context split file {os.path.abspath(split_file)} not found "
                                "(see datasets/README.md)")
    with open(split_file) as f:
        return [line.strip() for line in f if line.strip()]


def _default_split_dir(src):
    context = os.path.join(src, "ImageSets", "SegmentationContext")
    return context if os.path.isdir(context) else os.path.join(src, "ImageSets", "Main")


def prepare_pascal_context(src, dst, splits=("train", "val"), image_dir=None, mat_dir=None,
                           split_dir=None, labels_file=None, link=False):
    """
    Write images and pc59/pc60 labels under ``dst`` (layout in the module docstring).

    Args:
        src (str): VOC folder with ``JPEGImages``, ``trainval`` and ``ImageSets``.
        dst (str): output folder (``$DETECTRON2_DATASETS/pascal_context``).
        splits (iterable[str]): split names; ``<split_dir>/<split>.txt`` lists the image ids.
        image_dir, mat_dir, split_dir (str or None): override ``src/JPEGImages``,
            ``src/trainval`` and the split folder.
        labels_file (str or None): ``labels.txt`` to check the class names against;
            default ``src/labels.txt`` if it exists.
        link (bool): symlink the images instead of copying them.

    Nothing of the release is modified: the ``.mat`` files and images are only read, and an image
    that already is its own output (``image_dir`` inside ``dst``) is left in place.

    Returns:
        dict[str, int]: number of images written per split.
    """
    image_dir = image_dir or os.path.join(src, "JPEGImages")
    mat_dir = mat_dir or os.path.join(src, "trainval")
    split_dir = split_dir or _default_split_dir(src)
    for folder in (image_dir, mat_dir):
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"PASCAL-Context input folder {os.path.abspath(folder)} not found "
                                    "(see datasets/README.md)")
    if labels_file is None and os.path.isfile(os.path.join(src, "labels.txt")):
        labels_file = os.path.join(src, "labels.txt")
    if labels_file is not None:
        check_labels_txt(labels_file)

    counts = {}
    kept = 0
    for split in splits:
        ids = read_split(os.path.join(split_dir, f"{split}.txt"))
        out_images = os.path.join(dst, "images", split)
        out_labels = {n: os.path.join(dst, "annotations_detectron2", f"pc{n}", split) for n in (59, 60)}
        for folder in (out_images, *out_labels.values()):
            os.makedirs(folder, exist_ok=True)
        for image_id in ids:
            image_file = os.path.join(image_dir, f"{image_id}.jpg")
            mat_file = os.path.join(mat_dir, f"{image_id}.mat")
            for f in (image_file, mat_file):
                if not os.path.isfile(f):
                    raise FileNotFoundError(f"{f} (listed in split '{split}') not found")
            pc60 = full_to_pc60(read_label_map(mat_file), source=mat_file)
            Image.fromarray(pc60).save(os.path.join(out_labels[60], f"{image_id}.png"))
            Image.fromarray(pc60_to_pc59(pc60)).save(os.path.join(out_labels[59], f"{image_id}.png"))
            out_image = os.path.join(out_images, f"{image_id}.jpg")
            if os.path.exists(out_image) and os.path.samefile(out_image, image_file):
                # --images points into the output (or a link to it): the source is the output.
                # Removing or copying over it would delete or fail on the only copy.
                kept += 1
            elif link:
                if os.path.lexists(out_image):
                    os.remove(out_image)
                os.symlink(os.path.abspath(image_file), out_image)
            else:
                shutil.copyfile(image_file, out_image)
        counts[split] = len(ids)
    if kept:
        print(f"Kept {kept} image(s) already in {os.path.join(dst, 'images')} (they are the source files)")
    return counts


def main(argv=None):
    root = os.getenv("DETECTRON2_DATASETS", "datasets")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", default=os.path.join(root, "VOCdevkit", "VOC2010"),
                        help="VOC folder with JPEGImages/, trainval/, ImageSets/ (default: %(default)s)")
    parser.add_argument("--dst", default=os.path.join(root, "pascal_context"),
                        help="output folder (default: %(default)s)")
    parser.add_argument("--images", default=None, help="JPEGImages folder (default: SRC/JPEGImages)")
    parser.add_argument("--mats", default=None, help="folder of <id>.mat files (default: SRC/trainval)")
    parser.add_argument("--split-dir", default=None,
                        help="folder with train.txt/val.txt (default: SRC/ImageSets/SegmentationContext, "
                             "else SRC/ImageSets/Main)")
    parser.add_argument("--labels", default=None, help="labels.txt to check names (default: SRC/labels.txt if present)")
    parser.add_argument("--splits", default="train,val")
    parser.add_argument("--link", action="store_true", help="symlink images instead of copying")
    args = parser.parse_args(argv)
    try:
        counts = prepare_pascal_context(
            args.src, args.dst, args.splits.split(","), image_dir=args.images, mat_dir=args.mats,
            split_dir=args.split_dir, labels_file=args.labels, link=args.link,
        )
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    print(f"Wrote {counts} images with pc59/pc60 labels under {args.dst}")


if __name__ == "__main__":
    main()
