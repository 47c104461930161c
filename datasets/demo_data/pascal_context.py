"""PASCAL-Context: the release layout (VOC JPEGImages, trainval/*.mat with 459-category label maps, split
files), then ``prepare_pascal_context`` into ``<root>/pascal_context``."""
import os

import numpy as np
import scipy.io

from ._prepare import prepare_script
from .rendering import render_image, save_rgb
from .scenes import INDOOR, OUTDOOR, THING_SHAPES, generic_scene, rng_for
from .shapes import rasterize


def vocabulary():
    """(scene concept → PASCAL-Context source id for the 59 classes, a function rng → one of the other 400
    source ids, which are background)."""
    from apd.data.datasets.pascal_context import PASCAL_CONTEXT_59_CLASSES, PASCAL_CONTEXT_59_SOURCE_IDS

    index = dict(zip(PASCAL_CONTEXT_59_CLASSES, PASCAL_CONTEXT_59_SOURCE_IDS))
    aliases = {"tv": "tvmonitor", "plant": "pottedplant", "airplane": "aeroplane", "shelf": "shelves",
               "earth": "ground", "lamp": "light", "stop sign": "sign", "house": "building",
               "skyscraper": "building"}
    concepts = set(THING_SHAPES) | {c for roles in (OUTDOOR, INDOOR) for k in ("top", "back", "ground")
                                    for c in roles[k]}
    vocab = {c: index[aliases.get(c, c)] for c in concepts if aliases.get(c, c) in index}
    # the other 400 categories of the 459 (which ones is arbitrary here) are background
    others = np.array(sorted(set(range(1, 460)) - set(PASCAL_CONTEXT_59_SOURCE_IDS)))
    return vocab, lambda rng: int(others[rng.integers(len(others))])


def write_sample(img_dir, mat_dir, image_id, image, shapes, objmap):
    """``<image_id>.jpg`` (quality 90) and ``<image_id>.mat`` holding ``LabelMap`` (uint16: 0 where no shape,
    else the shape's ``label``, a source id)."""
    label_map = np.array([0] + [s.label for s in shapes], np.uint16)[objmap]
    save_rgb(os.path.join(img_dir, f"{image_id}.jpg"), image, 90)
    scipy.io.savemat(os.path.join(mat_dir, f"{image_id}.mat"), {"LabelMap": label_map}, do_compression=True)


def write(root, seed, num_train, num_val):
    """``<root>/VOCdevkit/VOC2010`` and, prepared from it, ``<root>/pascal_context``; returns the latter."""
    src = os.path.join(root, "VOCdevkit", "VOC2010")
    img_dir, mat_dir = os.path.join(src, "JPEGImages"), os.path.join(src, "trainval")
    split_dir = os.path.join(src, "ImageSets", "SegmentationContext")
    for d in (img_dir, mat_dir, split_dir):
        os.makedirs(d, exist_ok=True)
    vocab, other = vocabulary()
    for split, year, count in (("train", 2008, num_train), ("val", 2009, num_val)):
        ids = []
        for i in range(count):
            rng = rng_for(seed, "pascal_context", split, i)
            H, W = int(rng.integers(240, 301)), int(rng.integers(300, 381))
            shapes = generic_scene(rng, H, W, vocab, other=other)
            objmap = rasterize(shapes, H, W)
            image_id = f"{year}_{i + 1:06d}"
            write_sample(img_dir, mat_dir, image_id, render_image(shapes, objmap, rng), shapes, objmap)
            ids.append(image_id)
        with open(os.path.join(split_dir, f"{split}.txt"), "w") as f:
            f.write("".join(f"{image_id}\n" for image_id in ids))
    dst = os.path.join(root, "pascal_context")
    prepare_script("prepare_pascal_context").prepare_pascal_context(src, dst)
    return dst
