"""COCO 2017: images and the instances json (boxes, polygons, all 80 categories)."""
import json
import os

import cv2
import numpy as np

from .rendering import render_image, save_rgb
from .scenes import generic_scene, rng_for
from .shapes import rasterize

# A subset of COCO's categories (real ids) that the scenes draw as instances.
VOCAB = {"person": 1, "bicycle": 2, "car": 3, "motorbike": 4, "airplane": 5, "bus": 6, "truck": 8,
         "boat": 9, "traffic light": 10, "stop sign": 13, "bench": 15, "bird": 16, "cat": 17,
         "dog": 18, "horse": 19, "sheep": 20, "cow": 21, "bottle": 44, "chair": 62, "sofa": 63,
         "plant": 64, "bed": 65, "table": 67, "tv": 72, "clock": 85}


def coco_polygons(mask):
    """COCO polygons ([x0, y0, x1, y1, ...], at least 3 points each) of a binary mask's outer contours."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        c = cv2.approxPolyDP(c, 0.8, True).reshape(-1, 2)
        if len(c) >= 3 and cv2.contourArea(c.astype(np.float32)) >= 4:
            polys.append([float(v) + 0.5 for v in c.reshape(-1)])  # pixel centres
    return polys


def categories():
    """The 80 thing categories of COCO (``{"supercategory", "id", "name"}``), checked against :data:`VOCAB`."""
    from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES

    cats = [{"supercategory": "object", "id": c["id"], "name": c["name"]} for c in COCO_CATEGORIES if c["isthing"]]
    names = {c["id"]: c["name"] for c in cats}
    coco_names = {"motorbike": "motorcycle", "sofa": "couch", "plant": "potted plant", "table": "dining table"}
    for concept, cid in VOCAB.items():
        assert names[cid] == coco_names.get(concept, concept), (concept, cid, names[cid])
    return cats


def write_sample(img_dir, image_id, image, shapes, objmap, annotations, first_id, min_area=64):
    """``<image_id:012d>.jpg`` (quality 90); appends to ``annotations`` one instance per labelled shape whose
    visible part covers at least ``min_area`` pixels and has a polygon (ids continue from
    ``first_id · 100``); returns the image record."""
    H, W = objmap.shape
    file_name = f"{image_id:012d}.jpg"
    save_rgb(os.path.join(img_dir, file_name), image, 90)
    for idx, shape in enumerate(shapes, start=1):
        if shape.label is None:
            continue
        mask = objmap == idx
        area = int(mask.sum())
        polys = coco_polygons(mask) if area >= min_area else []
        if not polys:
            continue
        ys, xs = np.nonzero(mask)
        annotations.append({
            "segmentation": polys, "area": float(area), "iscrowd": 0, "image_id": image_id,
            "bbox": [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
                     float(ys.max() - ys.min() + 1)],
            "category_id": int(shape.label), "id": len(annotations) + first_id * 100,
        })
    return {"license": 1, "file_name": file_name, "height": H, "width": W, "id": image_id}


def write_annotations(path, images, annotations, cats):
    """The instances json of one split."""
    data = {"info": {"description": "APD synthetic demo data in COCO format", "version": "1.0", "year": 2017},
            "licenses": [{"id": 1, "name": "CC BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"}],
            "images": images, "annotations": annotations, "categories": cats}
    with open(path, "w") as f:
        json.dump(data, f)


def write(root, seed, num_train, num_val, min_area=64):
    """``<root>/coco``: scenes with 3-9 instances each; returns that folder."""
    base = os.path.join(root, "coco")
    os.makedirs(os.path.join(base, "annotations"), exist_ok=True)
    cats = categories()
    for split, first_id, count in (("train", 1, num_train), ("val", 100001, num_val)):
        img_dir = os.path.join(base, f"{split}2017")
        os.makedirs(img_dir, exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            rng = rng_for(seed, "coco", split, i)
            H, W = int(rng.integers(240, 321)), int(rng.integers(320, 428))
            shapes = generic_scene(rng, H, W, VOCAB, other=None, num_things=(3, 9))
            objmap = rasterize(shapes, H, W)
            images.append(write_sample(img_dir, first_id + i, render_image(shapes, objmap, rng), shapes, objmap,
                                       annotations, first_id, min_area))
        write_annotations(os.path.join(base, "annotations", f"instances_{split}2017.json"), images, annotations, cats)
    return base
