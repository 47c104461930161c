"""Cityscapes: leftImg8bit + gtFine polygons / instanceIds / labelIds as the release ships them, then
``prepare_cityscapes`` (which adds labelTrainIds and keeps the labelIds)."""
import json
import os

import cv2
import numpy as np
from PIL import Image

from ._prepare import prepare_script
from .rendering import render_image, save_rgb
from .scenes import rng_for, street_scene
from .shapes import rasterize

CITIES = {"train": ("aachen", "bochum", "bremen"), "val": ("frankfurt", "lindau")}


def write_sample(img_dir, gt_dir, stem, image, shapes, objmap):
    """One scene: ``<stem>_leftImg8bit.png`` (H×W×3 uint8 RGB ``image``) in ``img_dir``; the polygons json,
    instanceIds (labelId·1000 + k for classes with instances, labelId otherwise) and labelIds in ``gt_dir``.
    ``shapes`` carry Cityscapes label names; ``objmap`` is :func:`~.shapes.rasterize`'s H×W map."""
    from cityscapesscripts.helpers.labels import name2label

    H, W = objmap.shape
    save_rgb(os.path.join(img_dir, f"{stem}_leftImg8bit.png"), image)
    annotation = {"imgHeight": H, "imgWidth": W,
                  "objects": [{"label": s.label, "polygon": s.polygons[0]} for s in shapes]}
    with open(os.path.join(gt_dir, f"{stem}_gtFine_polygons.json"), "w") as f:
        json.dump(annotation, f, indent=1)
    lut = np.zeros(len(shapes) + 1, np.int64)
    counts = {}
    for idx, shape in enumerate(shapes, start=1):
        label = name2label[shape.label]
        if label.hasInstances:
            k = counts.get(label.id, 0)
            counts[label.id] = k + 1
            lut[idx] = label.id * 1000 + k
        else:
            lut[idx] = label.id
    instance_ids = lut[objmap].astype(np.uint16)
    if not cv2.imwrite(os.path.join(gt_dir, f"{stem}_gtFine_instanceIds.png"), instance_ids):
        raise OSError(f"could not write instanceIds for {stem}")
    # labelIds ship with the release too (the official evaluation's ground truth)
    label_ids = np.where(instance_ids >= 1000, instance_ids // 1000, instance_ids).astype(np.uint8)
    Image.fromarray(label_ids).save(os.path.join(gt_dir, f"{stem}_gtFine_labelIds.png"))


def write(root, seed, num_train, num_val, size=(256, 512)):
    """``<root>/cityscapes``: street scenes, then prepare_cityscapes; returns that folder."""
    H, W = size
    base = os.path.join(root, "cityscapes")
    for split, count in (("train", num_train), ("val", num_val)):
        cities = CITIES[split]
        for i in range(count):
            city = cities[i % len(cities)]
            img_dir = os.path.join(base, "leftImg8bit", split, city)
            gt_dir = os.path.join(base, "gtFine", split, city)
            os.makedirs(img_dir, exist_ok=True)
            os.makedirs(gt_dir, exist_ok=True)
            rng = rng_for(seed, "cityscapes", split, i)
            shapes = street_scene(rng, H, W)
            objmap = rasterize(shapes, H, W)
            write_sample(img_dir, gt_dir, f"{city}_{i // len(cities):06d}_000019", render_image(shapes, objmap, rng),
                         shapes, objmap)
    prepare_script("prepare_cityscapes").prepare_cityscapes(base, ("train", "val"))
    return base
