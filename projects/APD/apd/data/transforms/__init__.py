"""Detectron2 augmentations for the APD semantic-segmentation recipe (docs/METHOD.md §4)."""
from .common import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB
from .crop import ColorPadTransform, PadToCrop
from .geometry import (
    LinearResizeTransform,
    RandomRotationWithIgnore,
    RandomScale,
    ResizeLongestEdge,
    RotationWithPadTransform,
)
from .photometric import GaussianBlurTransform, RandomGaussianBlur
from .recipe import build_test_augmentations, build_train_augmentations
from .window import RecipeAugmentations, RecipeWindowTransform

__all__ = [
    "IMAGENET_MEAN_RGB",
    "IMAGENET_STD_RGB",
    "LinearResizeTransform",
    "RotationWithPadTransform",
    "GaussianBlurTransform",
    "ColorPadTransform",
    "RandomScale",
    "RandomRotationWithIgnore",
    "RandomGaussianBlur",
    "PadToCrop",
    "ResizeLongestEdge",
    "RecipeAugmentations",
    "RecipeWindowTransform",
    "build_train_augmentations",
    "build_test_augmentations",
]
