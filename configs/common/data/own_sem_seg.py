"""Your own semantic segmentation data: a folder of images and a folder of label PNGs, no code.

Set the keys below (here, in a leaf config, or as ``key=value`` overrides on the command line):

- ``dataloader.train.dataset.image_root`` / ``.sem_seg_root``: the training images and their labels,
  matched by file name without the extension (``images/train/a.jpg`` ↔ ``labels/train/a.png``); the
  same under ``dataloader.test.dataset`` for the validation split;
- ``dataloader.train.dataset.classes``: the class names in id order (a label pixel holds its class id
  0..K−1); the test split, the mappers' ``num_classes`` and the models built on this data follow it;
- ``dataloader.train.dataset.ignore_label``: the id of unlabelled pixels (255); ``image_ext`` (``.jpg``).

Detectron2's ``load_sem_seg`` reads the folders; ``apd.data.datasets.sem_seg_folders`` registers each
split under its ``names`` (with ``stuff_classes``, ``ignore_label``, ``evaluator_type="sem_seg"``) when the
config is loaded or the loader built. ``train_net.py`` reads every image and label once before training:
an image without a label, a label of another size than its image or an id outside the classes stops it
with one line naming the file. Training is the Cityscapes pipeline (cityscapes.py: random scale 0.5–2,
rotation ±10°, 512×512 crops, flip, blur); evaluation is Detectron2's ``SemSegEvaluator`` (mIoU over the
classes present in the ground truth) on whole images at their own size.
"""
from detectron2.config import LazyCall as L

from apd.data.datasets import sem_seg_folders
from apd.evaluation import SemSegEvaluator

from .cityscapes import dataloader

dataloader.train.dataset = L(sem_seg_folders)(
    names="own_sem_seg_train",
    image_root="datasets/own/images/train",
    sem_seg_root="datasets/own/labels/train",
    classes=["background", "foreground"],
    ignore_label=255,
    image_ext=".jpg",
    gt_ext=".png",
)
dataloader.test.dataset = L(sem_seg_folders)(
    names="own_sem_seg_val",
    image_root="datasets/own/images/val",
    sem_seg_root="datasets/own/labels/val",
    classes="${...train.dataset.classes}",
    ignore_label="${...train.dataset.ignore_label}",
    image_ext="${...train.dataset.image_ext}",
    gt_ext="${...train.dataset.gt_ext}",
)
dataloader.train.mapper.num_classes = "${len:${..dataset.classes}}"
dataloader.train.mapper.ignore_value = "${..dataset.ignore_label}"
dataloader.train.mapper.augmentations.crop_size = [512, 512]
dataloader.test.mapper.augmentations.base_size = None  # whole images at their own size
dataloader.evaluator = L(SemSegEvaluator)(dataset_name="${..test.dataset.names}")
