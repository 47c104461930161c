"""Detectron2 augmentations for the APD semantic-segmentation recipe (docs/METHOD.md §4)."""
from .augmentations import *  # noqa: F401,F403  (the names in augmentations.__all__)
from .augmentations import __all__  # noqa: F401
