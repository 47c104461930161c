"""Detectron2 augmentations for the APD semantic-segmentation recipe (docs/METHOD.md §4)."""
from .augmentations import (  # noqa: F401
    IMAGENET_MEAN_RGB,
    IMAGENET_STD_RGB,
    ColorPadTransform,
    GaussianBlurTransform,
    PadToCrop,
    RandomGaussianBlur,
    RandomRotationWithIgnore,
    RandomScale,
    ResizeLongestEdge,
    RotationWithPadTransform,
    build_test_augmentations,
    build_train_augmentations,
)
