#!/usr/bin/env python
"""Convert ADE20K (SceneParsing, ADEChallengeData2016) labels to Detectron2's format.

The release stores ``annotations/{training,validation}/ADE_*.png`` with 0 = "other objects" and
1..150 = the classes. Detectron2's ``ade20k_sem_seg_{train,val}`` read
``annotations_detectron2/{training,validation}/ADE_*.png`` with the classes as 0..149 and
255 = ignore (the format of Detectron2's own ``prepare_ade20k_sem_seg.py``): value v becomes v - 1,
and 0 becomes 255.

Usage::

    python datasets/prepare_ade20k.py                  # $DETECTRON2_DATASETS/ADEChallengeData2016
    python datasets/prepare_ade20k.py --root /data/ADEChallengeData2016
"""
import argparse
import glob
import os
import sys

import numpy as np
from PIL import Image

NUM_CLASSES = 150
IGNORE_LABEL = 255
SPLITS = ("training", "validation")


def to_detectron2_labels(label, source="<array>"):
    """uint8 H×W in {0..150} -> uint8 H×W in {0..149, 255}; ``source`` names the file in errors."""
    label = np.asarray(label)
    if label.ndim != 2 or label.dtype != np.uint8:
        raise ValueError(f"{source}: expected a single-channel uint8 label image, got "
                         f"shape {label.shape} dtype {label.dtype}")
    if label.size and label.max() > NUM_CLASSES:
        raise ValueError(f"{source}: label value {int(label.max())} > {NUM_CLASSES}")
    out = label.astype(np.int16) - 1
    out[label == 0] = IGNORE_LABEL
    return out.astype(np.uint8)


def convert_file(src, dst):
    label = to_detectron2_labels(np.asarray(Image.open(src)), source=src)
    Image.fromarray(label).save(dst)


def prepare_ade20k(root, splits=SPLITS):
    """Write ``annotations_detectron2/<split>/*.png`` for each split; returns the file count."""
    count = 0
    for split in splits:
        src_dir = os.path.join(root, "annotations", split)
        files = sorted(glob.glob(os.path.join(src_dir, "*.png")))
        if not files:
            raise FileNotFoundError(
                f"No ADE20K annotations in {os.path.abspath(src_dir)} "
                "(expected <root>/annotations/<split>/ADE_*.png; see datasets/README.md)"
            )
        dst_dir = os.path.join(root, "annotations_detectron2", split)
        os.makedirs(dst_dir, exist_ok=True)
        for f in files:
            convert_file(f, os.path.join(dst_dir, os.path.basename(f)))
        count += len(files)
    return count


def main(argv=None):
    default_root = os.path.join(os.getenv("DETECTRON2_DATASETS", "datasets"), "ADEChallengeData2016")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=default_root, help="ADEChallengeData2016 folder (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        n = prepare_ade20k(args.root)
    except FileNotFoundError as e:
        sys.exit(f"error: {e}")
    print(f"Wrote {n} label images under {os.path.join(args.root, 'annotations_detectron2')}")


if __name__ == "__main__":
    main()
