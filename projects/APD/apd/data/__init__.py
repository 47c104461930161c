"""Data: dataset registrations, augmentations, the segmentation and detection mappers, the resumable loader."""
from . import datasets  # noqa: F401  (registers PASCAL-Context, checks Detectron2's COCO loaders)
from . import dataset_mapper, detection_mapper, image_io, samplers, transforms  # noqa: F401
