"""Small helpers around Detectron2's evaluators."""
from typing import Dict

from tabulate import tabulate

__all__ = ["format_per_class_table"]


def format_per_class_table(results: Dict[str, Dict[str, float]]) -> str:
    """Per-class IoU/accuracy table from SemSegEvaluator results (``IoU-<class>``, ``ACC-<class>``)."""
    sem = results.get("sem_seg") if results else None
    if not sem:
        return ""
    rows = []
    for key, value in sem.items():
        if key.startswith("IoU-"):
            name = key[len("IoU-"):]
            rows.append((name, value, sem.get(f"ACC-{name}", float("nan"))))
    if not rows:
        return ""
    return tabulate(rows, headers=["class", "IoU", "Acc"], tablefmt="pipe", floatfmt=".2f")


def load_sem_seg_gt(filename: str, dtype=int):
    """Read a label PNG for ``SemSegEvaluator(sem_seg_loading_fn=...)``.

    Detectron2's default loader calls ``np.array(..., copy=False)``, which NumPy 2 rejects for PIL images.
    """
    import numpy as np
    from detectron2.utils.file_io import PathManager
    from PIL import Image

    with PathManager.open(filename, "rb") as f:
        return np.asarray(Image.open(f), dtype=dtype)
