"""Move a segmentation recipe to another dataset (docs/METHOD.md §4).

The ADE20K and PASCAL-Context configs start from the Cityscapes config of the same model and change only
what follows the dataset: the classes (read from the dataset's data config, their one source), the test
windows, the schedule length and the learning rate. ``configs/<dataset>/_recipe.py`` holds those values
once per dataset.
"""


def epochs_to_iterations(epochs: int, train_images: int, batch_size: int) -> int:
    """Iterations of ``epochs`` passes over ``train_images`` at ``batch_size`` images per step,
    e.g. 100 × 20210 / 8 = 252,625 (ADE20K). The official recipes count epochs; Detectron2 counts steps."""
    return round(epochs * train_images / batch_size)


def apply_dataset_recipe(model, optimizer, train, dataloader, *, crop_size, epochs: int, train_images: int,
                         lr: float) -> None:
    """Set, in place, the dataset-dependent parts of a segmentation config whose data is ``dataloader``:
    ``num_classes`` from the data config, sliding-window + flip test protocol on ``crop_size`` windows,
    ``train.max_iter`` from epochs, and the base learning rate."""
    model.sem_seg_head.num_classes = dataloader.train.mapper.num_classes
    model.sliding_window = dict(crop_size=tuple(crop_size), flip=True)
    train.max_iter = epochs_to_iterations(epochs, train_images, dataloader.train.total_batch_size)
    optimizer.lr = lr
