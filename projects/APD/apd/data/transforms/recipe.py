"""Training and test augmentations for semantic segmentation (docs/METHOD.md §4).

The official APD recipe (semseg ``util/transform.py`` usage in ``tool/train.py``) applies, in
order: random scale [0.5, 2.0] → random rotation [−10°, 10°] (p = 0.5, image padded with the
ImageNet mean, labels with 255) → Gaussian blur (p = 0.5, 5×5 kernel) → horizontal flip → pad to
the crop size, centred (mean / 255) → uniform random crop, every resampling with OpenCV as there
(bilinear without antialiasing). :func:`build_train_augmentations` returns that list as Detectron2
:class:`Augmentation` objects inside one :class:`RecipeAugmentations`, which draws them in order and
computes only the crop window (``window.py``); Detectron2's own ``RandomFlip``, ``RandomCrop`` and
``RandomCrop_CategoryAreaConstraint`` are reused where they already do the job. What still differs
from the official code is listed in docs/METHOD.md §4a.

Conventions (every module of this package):
- Images are H×W×C arrays (uint8, 0–255, channels in the data mapper's ``image_format``); every
  image pad value is given in that channel order (``IMAGENET_MEAN_RGB`` for the default ``"RGB"``).
- Segmentation maps are H×W integer arrays; geometric transforms use nearest-neighbour
  interpolation on them, so a transform never creates a class id that was not in the input (pads
  use the ignore id).
- Randomness comes from ``np.random``, as in Detectron2, so ``seed_all_rng`` and the data loader's
  worker seeding apply.
"""
from typing import List, Optional, Sequence

import numpy as np

from detectron2.data import transforms as T

from .common import IMAGENET_MEAN_RGB, PadValue
from .crop import PadToCrop
from .geometry import RandomRotationWithIgnore, RandomScale, ResizeLongestEdge
from .photometric import RandomGaussianBlur
from .window import RecipeAugmentations

__all__ = ["build_train_augmentations", "build_test_augmentations"]


def build_train_augmentations(
    crop_size: Sequence[int],
    scale: Optional[Sequence[float]] = (0.5, 2.0),
    rotate: Optional[Sequence[float]] = (-10.0, 10.0),
    blur_prob: float = 0.5,
    flip: bool = True,
    pad_value: PadValue = IMAGENET_MEAN_RGB,
    ignore_value: int = 255,
    cat_max_area: float = 1.0,
    *,
    rotate_prob: float = 0.5,
    blur_kernel_size: int = 5,
    pad_center: bool = True,
) -> List[T.Augmentation]:
    """The APD training augmentations, in the official order: scale, rotate, blur, flip, pad, crop.

    Args:
        crop_size: (h, w) of the training crop: (713, 713) for Cityscapes, (473, 473) otherwise.
        scale: (min, max) random scale factor; None disables scaling.
        rotate: (min, max) rotation in degrees; None disables rotation.
        blur_prob: probability of the Gaussian blur; 0 disables it.
        flip: add a horizontal flip with probability 0.5.
        pad_value: image pad colour in the mapper's image format order (ImageNet mean, RGB, 0–255).
        ignore_value: label id for padded pixels; also ignored by the crop's area constraint.
        cat_max_area: < 1 uses Detectron2's ``RandomCrop_CategoryAreaConstraint`` (retry up to 10
            windows until no single class covers more than this fraction, as d2's DeepLab
            configs with 0.75); 1.0 is the plain uniform crop of the APD recipe.
        rotate_prob: probability of rotating (APD/semseg default 0.5).
        blur_kernel_size: Gaussian kernel side (APD/semseg ``RandomGaussianBlur(radius=5)``).
        pad_center: split the crop padding between both sides, top/left ⌊pad/2⌋ (the official
            ``Crop``); False pads bottom/right.

    Returns:
        A one-element list for :class:`apd.data.dataset_mapper.SemSegDatasetMapper`: the
        :class:`RecipeAugmentations` of the augmentations above in order (its ``augs``).
    """
    crop_size = tuple(int(v) for v in crop_size)
    # Plain floats: a config's ListConfig would go through omegaconf's attribute lookups on every pad.
    pad_value = float(pad_value) if np.isscalar(pad_value) else tuple(float(v) for v in pad_value)
    augs: List[T.Augmentation] = []
    if scale is not None:
        augs.append(RandomScale(float(scale[0]), float(scale[1])))
    if rotate is not None:
        augs.append(
            RandomRotationWithIgnore(
                angle=tuple(float(a) for a in rotate),
                image_pad=pad_value,
                seg_pad=ignore_value,
                prob=rotate_prob,
            )
        )
    if blur_prob > 0:
        augs.append(RandomGaussianBlur(prob=blur_prob, kernel_size=blur_kernel_size))
    if flip:
        augs.append(T.RandomFlip(prob=0.5, horizontal=True, vertical=False))
    augs.append(PadToCrop(crop_size, image_pad=pad_value, seg_pad=ignore_value, center=pad_center))
    if cat_max_area < 1.0:
        augs.append(
            T.RandomCrop_CategoryAreaConstraint(
                "absolute",
                crop_size,
                single_category_max_area=cat_max_area,
                ignored_category=ignore_value,
            )
        )
    else:
        augs.append(T.RandomCrop("absolute", crop_size))
    return [RecipeAugmentations(augs)]


def build_test_augmentations(base_size: Optional[int] = None) -> List[T.Augmentation]:
    """Test-time augmentations: none, or a resize of the longer side to ``base_size``."""
    return [] if base_size is None else [ResizeLongestEdge(int(base_size))]
