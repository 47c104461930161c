"""What the ADE20K configs change in the Cityscapes config they start from (docs/METHOD.md §4): the
ADE20K data (150 classes), sliding 473×473 test windows with flip, 100 epochs of 20,210 training images
at batch 8 (252,625 iterations) and base lr 0.005."""
from ..common.data.ade20k import dataloader
from ..common.data.constants import constants as _constants
from ..common.recipes import apply_dataset_recipe


def on_ade20k(model, optimizer, train) -> None:
    """Turn a Cityscapes segmentation config (its model, optimizer and train nodes) into ADE20K's."""
    apply_dataset_recipe(model, optimizer, train, dataloader, crop_size=_constants.ade20k_crop_size,
                         epochs=100, train_images=20210, lr=0.005)
