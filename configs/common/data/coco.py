"""COCO 2017 detection / instance segmentation data for the R-CNN distiller (APD_SPEC §6).

Detectron2's own ``common/data/coco.py`` unchanged (multi-scale 640–800 train, 800 test, BGR,
instance masks, ``COCOEvaluator``), so runs compare directly with Detectron2's baselines. Leaf
configs change e.g. ``dataloader.train.mapper.image_format`` (the test mapper follows by
interpolation) or ``dataloader.train.mapper.use_instance_mask``.
"""
from detectron2 import model_zoo

dataloader = model_zoo.get_config("common/data/coco.py").dataloader
