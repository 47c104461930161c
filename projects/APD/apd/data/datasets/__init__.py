"""Dataset registrations (importing this registers PASCAL-Context under $DETECTRON2_DATASETS)."""
from .builtin import check_dataset_root, register_all
from .own import (
    check_sem_seg_files,
    coco_json,
    register_coco_json,
    register_config_datasets,
    register_sem_seg_folders,
    sem_seg_folders,
)
from .pascal_context import (
    PASCAL_CONTEXT_59_CLASSES,
    PASCAL_CONTEXT_59_SOURCE_IDS,
    PASCAL_CONTEXT_60_CLASSES,
    register_pascal_context,
)

__all__ = [
    "check_dataset_root",
    "check_sem_seg_files",
    "coco_json",
    "register_coco_json",
    "register_config_datasets",
    "register_sem_seg_folders",
    "sem_seg_folders",
    "register_all",
    "register_pascal_context",
    "PASCAL_CONTEXT_59_CLASSES",
    "PASCAL_CONTEXT_59_SOURCE_IDS",
    "PASCAL_CONTEXT_60_CLASSES",
]
