"""What the configs of your own segmentation data (../common/data/own_sem_seg.py) change in the
Cityscapes config they start from: the classes and ignore id follow the data config's class list (so a
model built on it always matches), 512×512 sliding test windows with flip (the crop), 20,000 iterations
at batch 8 (set ``train.max_iter`` to about 100 epochs of your training images), lr 0.005."""
from ..common.data.own_sem_seg import dataloader


def on_own_data(model, optimizer, train, name: str) -> None:
    """Turn a Cityscapes segmentation config (its model, optimizer and train nodes) into one on your data,
    writing to ``output/own/<name>``."""
    model.sem_seg_head.num_classes = "${dataloader.train.mapper.num_classes}"
    model.sem_seg_head.ignore_value = "${dataloader.train.mapper.ignore_value}"
    model.sliding_window = dict(crop_size=(512, 512), flip=True)
    train.max_iter = 20000
    train.eval_period = train.checkpointer.period = 2000
    train.output_dir = f"./output/own/{name}"
    optimizer.lr = 0.005
