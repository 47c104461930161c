"""Numbers shared by the data and model configs (docs/METHOD.md §4).

ImageNet statistics come from ``apd.data.transforms`` so that the augmentation defaults and the
configs cannot drift apart; keys follow Detectron2's ``common/data/constants.py``.
"""
from apd.data.transforms import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB

constants = dict(
    # ImageNet mean/std in 0-255: (0.485, 0.456, 0.406)·255 and (0.229, 0.224, 0.225)·255.
    imagenet_rgb256_mean=list(IMAGENET_MEAN_RGB),
    imagenet_rgb256_std=list(IMAGENET_STD_RGB),
    imagenet_bgr256_mean=list(reversed(IMAGENET_MEAN_RGB)),
    imagenet_bgr256_std=list(reversed(IMAGENET_STD_RGB)),
    # Label id of unlabelled pixels and of all padding.
    ignore_value=255,
    # Classes per dataset: the one source the data configs and the model configs read.
    cityscapes_num_classes=19,
    ade20k_num_classes=150,
    pascal_context_num_classes=59,  # background ignored
    pascal_context_60_num_classes=60,  # background = class 0, the official APD setting
    # Training crops (h, w) of the official recipe.
    cityscapes_crop_size=[713, 713],
    ade20k_crop_size=[473, 473],
    pascal_context_crop_size=[473, 473],
    # Test "base_size": the longer image side before (sliding-window) inference. Cityscapes
    # images are already 2048 wide, so there it is a no-op.
    cityscapes_test_base_size=2048,
    ade20k_test_base_size=512,
    pascal_context_test_base_size=512,
)
