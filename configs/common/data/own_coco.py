"""Your own detection / instance segmentation data in COCO format: a json and an image folder, no code.

Set ``dataloader.train.dataset.json_file`` / ``.image_root`` and the same under ``dataloader.test.dataset``
(here, in a leaf config or as ``key=value`` overrides), and the model's ``roi_heads.num_classes`` to the
number of categories in the json. ``apd.data.datasets.coco_json`` registers each split under its ``names``
with Detectron2's ``register_coco_instances`` (classes from the json's categories) and reads it with the
checked loader (apd/data/datasets/coco.py: unusable boxes and polygons dropped and named).
``train_net.py`` reads the json before training: a file that is not COCO json, an annotation of an
unknown category or a class count other than the model's stops it with one line. The rest is coco.py
(Detectron2's COCO pipeline, ``COCOEvaluator`` with box and mask AP).
"""
from detectron2.config import LazyCall as L

from apd.data.datasets import coco_json

from .coco import dataloader

dataloader.train.dataset = L(coco_json)(
    names="own_coco_train",
    json_file="datasets/own_coco/annotations/train.json",
    image_root="datasets/own_coco/images/train",
)
dataloader.test.dataset = L(coco_json)(
    names="own_coco_val",
    json_file="datasets/own_coco/annotations/val.json",
    image_root="datasets/own_coco/images/val",
    filter_empty=False,
)
