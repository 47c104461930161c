"""What the PASCAL-Context configs change in the Cityscapes config they start from (docs/METHOD.md §4):
the PASCAL-Context data (59 classes, background ignored; ``*_60.py`` switch to 60), sliding 473×473 test
windows with flip, 100 epochs of 4,998 training images at batch 12 (41,650 iterations) and base lr 0.00075."""
from ..common.data.constants import constants as _constants
from ..common.data.pascal_context import dataloader
from ..common.recipes import apply_dataset_recipe


def on_pascal_context(model, optimizer, train) -> None:
    """Turn a Cityscapes segmentation config (its model, optimizer and train nodes) into PASCAL-Context's."""
    apply_dataset_recipe(model, optimizer, train, dataloader, crop_size=_constants.pascal_context_crop_size,
                         epochs=100, train_images=4998, lr=0.00075)
