"""Data: dataset registrations, augmentations, the semantic-segmentation mapper, the resumable loader."""
from . import datasets  # noqa: F401  (registers PASCAL-Context)
from . import dataset_mapper, samplers, transforms  # noqa: F401
