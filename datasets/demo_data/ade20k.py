"""ADE20K: the ADEChallengeData2016 layout (label 0 = other, 1..150), then ``prepare_ade20k``."""
import os

import numpy as np
from PIL import Image

from ._prepare import prepare_script
from .rendering import render_image, save_rgb
from .scenes import INDOOR, OUTDOOR, THING_SHAPES, generic_scene, rng_for
from .shapes import rasterize


def vocabulary():
    """Scene concept → ADE20K class id (1..150), for the concepts ADE20K has."""
    from detectron2.data.datasets.builtin_meta import ADE20K_SEM_SEG_CATEGORIES

    index = {name.split(",")[0].strip(): i + 1 for i, name in enumerate(ADE20K_SEM_SEG_CATEGORIES)}
    aliases = {"sign": "signboard", "stop sign": "signboard", "airplane": "plane", "dog": "animal",
               "cat": "animal", "horse": "animal", "cow": "animal", "sheep": "animal", "bird": "animal",
               "motorbike": "minibike"}
    concepts = set(THING_SHAPES) | {c for roles in (OUTDOOR, INDOOR) for k in ("top", "back", "ground")
                                    for c in roles[k]}
    return {c: index[aliases.get(c, c)] for c in concepts if aliases.get(c, c) in index}


def write_sample(img_dir, ann_dir, name, image, shapes, objmap):
    """``<name>.jpg`` (quality 90) and the uint8 label ``<name>.png`` (0 where no shape, else the shape's
    ``label``, an ADE20K id)."""
    labels = np.array([0] + [s.label for s in shapes], np.uint8)[objmap]
    save_rgb(os.path.join(img_dir, f"{name}.jpg"), image, 90)
    Image.fromarray(labels).save(os.path.join(ann_dir, f"{name}.png"))


def write(root, seed, num_train, num_val):
    """``<root>/ADEChallengeData2016``: indoor / outdoor scenes, then prepare_ade20k; returns that folder."""
    base = os.path.join(root, "ADEChallengeData2016")
    vocab = vocabulary()
    for split, folder, prefix, count in (("train", "training", "ADE_train", num_train),
                                         ("val", "validation", "ADE_val", num_val)):
        img_dir = os.path.join(base, "images", folder)
        ann_dir = os.path.join(base, "annotations", folder)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(count):
            rng = rng_for(seed, "ade20k", split, i)
            H, W = int(rng.integers(240, 321)), int(rng.integers(320, 401))
            shapes = generic_scene(rng, H, W, vocab, other=lambda r: 0)
            objmap = rasterize(shapes, H, W)
            write_sample(img_dir, ann_dir, f"{prefix}_{i + 1:08d}", render_image(shapes, objmap, rng), shapes, objmap)
    prepare_script("prepare_ade20k").prepare_ade20k(base)
    return base
