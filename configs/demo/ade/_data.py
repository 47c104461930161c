"""ADE20K-format benchmark data: the generated ADE20K-format set (150 classes, indoor/outdoor scenes of
~240-320 × 320-400, ``datasets/generate_demo_data.py --datasets ade20k``), read by the real ADE20K loader
(``ade20k_sem_seg_{train,val}``, ``annotations_detectron2``), CPU-sized as ``configs/demo/_data.py``.

``to_ade(model, train)`` turns a demo config (student alone or distiller) into its ADE20K-format twin: 150
classes, and the benchmark's own stand-ins and teacher (``checkpoints/demo/ade/``, made by
``tools/pretrain_standin.py --benchmark ade``; the stand-ins never saw ADE20K-format scenes).
"""
from detectron2.config import LazyConfig

from ...common.data.ade20k import dataloader
from .._data import dataloader as _demo_data

NUM_CLASSES = 150
STANDIN = "checkpoints/demo/ade/standin_r18_quarter.pth"
STANDIN_STUDENT = "checkpoints/demo/ade/standin_r18_quarter_student.pth"
STANDIN_HALF = "checkpoints/demo/ade/standin_r18_half.pth"
TEACHER = "checkpoints/demo/ade/teacher_pspnet_r18_half.pth"
STUDENT_ITERS = 80  # every student run (640 crops of the 400 training images: 1.6 epochs)

# Sizes fixed before the first result (docs/BENCHMARKS.md, "ADE20K-format benchmark"): the images are used at
# about half their size (val: longer side 160, ~0.45×; train: random scale 0.25-1×, around it as the recipe's
# 0.5-2× is around 1×), 96×96 crops, batch 8.
dataloader.train.mapper.augmentations.crop_size = (96, 96)
dataloader.train.mapper.augmentations.scale = (0.25, 1.0)
dataloader.train.total_batch_size = 8
dataloader.train.num_workers = 1
dataloader.test.mapper.augmentations.base_size = 160
dataloader.test.num_workers = 1
dataloader.evaluator = _demo_data.evaluator  # mIoU over the classes in the ground truth, on this val split


def to_ade(model, train, name):
    """Retarget a demo config in place: a student-alone ``model`` (a Segmentor) or a distiller (``model.student``
    / ``model.teacher``) to 150 classes and this benchmark's checkpoints; ``train.output_dir`` → ``name``."""
    train.max_iter = train.eval_period = train.checkpointer.period = STUDENT_ITERS
    if "student" in model:
        model.student = LazyConfig.load_rel("pspnet_r18_demo.py", "model")
        model.teacher = LazyConfig.load_rel("pspnet_r18_wide_demo.py", "model")
        model.teacher_weights = TEACHER
        train.init_checkpoint = STANDIN_STUDENT
    else:
        model.sem_seg_head.num_classes = NUM_CLASSES
        train.init_checkpoint = STANDIN
    train.output_dir = f"./output/demo/ade/{name}"
