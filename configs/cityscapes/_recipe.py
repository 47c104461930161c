"""The dataset-dependent part of the Cityscapes configs (docs/METHOD.md §4): Cityscapes fine data (19
classes), sliding 713×713 test windows with flip, 200 epochs of 2,975 training images at batch 8 (74,375
iterations) and base lr 0.005. A config that swaps in a new model node applies it again."""
from ..common.data.cityscapes import dataloader
from ..common.data.constants import constants as _constants
from ..common.recipes import apply_dataset_recipe


def on_cityscapes(model, optimizer, train) -> None:
    """Set the Cityscapes classes, test protocol, schedule length and lr on a segmentation config."""
    apply_dataset_recipe(model, optimizer, train, dataloader, crop_size=_constants.cityscapes_crop_size,
                         epochs=200, train_images=2975, lr=0.005)
