"""Semantic-segmentation evaluators: Detectron2's, made to run with the installed libraries.

Two protocols give two different mIoUs on the same predictions (docs/RELIABILITY.md, "Which mIoU"):

- :class:`SemSegEvaluator` (Detectron2's): the mean over the classes that occur in the ground truth.
  A class the model predicts but that is absent from the ground truth does not count.
- :class:`CityscapesSemSegEvaluator` (the official ``cityscapesscripts`` protocol, on the 34-id
  ``*_gtFine_labelIds.png`` files): the mean over the 19 classes with TP + FP + FN > 0, so a class
  that is predicted but absent from the ground truth counts with IoU 0. Cityscapes papers report
  this one.
"""
import contextlib
import glob
import io
import math
import os
from collections import OrderedDict
from typing import Dict, Optional

import numpy as np
from tabulate import tabulate

from detectron2.data import MetadataCatalog
from detectron2.evaluation import CityscapesSemSegEvaluator as _D2CityscapesSemSegEvaluator
from detectron2.evaluation import SemSegEvaluator as _D2SemSegEvaluator
from detectron2.utils import comm
from detectron2.utils.file_io import PathManager

from ..errors import MissingFileError, UserError

__all__ = [
    "CityscapesSemSegEvaluator",
    "CityscapesEvalUnavailable",
    "SemSegEvaluator",
    "check_cityscapes_eval_compat",
    "format_per_class_table",
    "load_sem_seg_gt",
]


def format_per_class_table(results: Dict[str, Dict[str, float]]) -> str:
    """Per-class table (pipe format) of a semantic-segmentation result dict.

    Args:
        results: ``{"sem_seg": {...}}`` as returned by :class:`SemSegEvaluator` (keys
            ``IoU-<class>`` and ``ACC-<class>``) or :class:`CityscapesSemSegEvaluator` (keys
            ``IoU-<class>`` only), values in percent.

    Returns:
        The table with columns class, IoU and, when the results have accuracies, Acc; "" when
        there is no ``sem_seg`` entry or no per-class key. Classes without a score (absent from
        ground truth and prediction) show ``nan``.
    """
    sem = results.get("sem_seg") if results else None
    if not sem:
        return ""
    names = [key[len("IoU-"):] for key in sem if key.startswith("IoU-")]
    if not names:
        return ""
    with_acc = any(f"ACC-{name}" in sem for name in names)
    if with_acc:
        rows = [(name, sem[f"IoU-{name}"], sem.get(f"ACC-{name}", float("nan"))) for name in names]
        headers = ["class", "IoU", "Acc"]
    else:
        rows = [(name, sem[f"IoU-{name}"]) for name in names]
        headers = ["class", "IoU"]
    return tabulate(rows, headers=headers, tablefmt="pipe", floatfmt=".2f")


def load_sem_seg_gt(filename: str, dtype=int) -> np.ndarray:
    """Read a label PNG as an H×W array of ids (``sem_seg_loading_fn`` of Detectron2's evaluator).

    Detectron2's default loader calls ``np.array(..., copy=False)``, which NumPy 2 rejects for PIL
    images. Palette (``P``) PNGs give their indices, ``L`` PNGs their grey levels.
    """
    from PIL import Image

    with PathManager.open(filename, "rb") as f:
        return np.asarray(Image.open(f), dtype=dtype)


class SemSegEvaluator(_D2SemSegEvaluator):
    """Detectron2's ``SemSegEvaluator`` with a label loader that works with NumPy 2.

    Same arguments and results as Detectron2's (``sem_seg``: ``mIoU``, ``fwIoU``, ``mACC``,
    ``pACC``, ``IoU-<class>``, ``ACC-<class>``, in percent). The mIoU averages over the classes
    present in the ground truth of the evaluated images.
    """

    def __init__(self, dataset_name: str, distributed: bool = True, output_dir: Optional[str] = None,
                 *, sem_seg_loading_fn=load_sem_seg_gt, **kwargs):
        super().__init__(dataset_name, distributed, output_dir, sem_seg_loading_fn=sem_seg_loading_fn,
                         **kwargs)


class CityscapesEvalUnavailable(UserError, RuntimeError):
    """``cityscapesscripts`` cannot evaluate with the installed libraries (one-line message)."""


def check_cityscapes_eval_compat() -> None:
    """Raise :class:`CityscapesEvalUnavailable` if ``cityscapesscripts`` would crash mid-evaluation.

    cityscapesscripts 2.3.0 (the newest release) calls ``np.in1d``, which NumPy 2.4 removed; the
    call comes after the whole inference pass. ``pyproject.toml`` pins ``numpy<2.4`` for this.
    """
    if not hasattr(np, "in1d"):
        raise CityscapesEvalUnavailable(
            f"CityscapesSemSegEvaluator needs numpy<2.4: cityscapesscripts calls np.in1d, which "
            f"NumPy {np.__version__} no longer has. Run `pip install 'numpy>=2,<2.4'` (pinned in "
            "pyproject.toml) or evaluate with apd.evaluation.SemSegEvaluator."
        )
    try:
        import cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling  # noqa: F401
    except ImportError as err:
        raise CityscapesEvalUnavailable(
            f"CityscapesSemSegEvaluator needs cityscapesscripts (pip install cityscapesscripts): {err}"
        ) from err


class CityscapesSemSegEvaluator(_D2CityscapesSemSegEvaluator):
    """The official Cityscapes pixel-level evaluation (``cityscapesscripts``), via Detectron2.

    Predictions (trainIds 0..18, from ``output["sem_seg"].argmax(0)``) are written as label-id
    PNGs by Detectron2's ``process`` and scored against every
    ``<gt_dir>/<city>/*_gtFine_labelIds.png`` of the dataset (the files the release ships).

    Results (percent), under ``sem_seg``:
        - ``mIoU`` (= ``IoU``): class IoU averaged over the 19 classes with TP + FP + FN > 0. A class
          predicted somewhere but absent from the ground truth counts as 0 (Detectron2's
          :class:`SemSegEvaluator` would leave it out).
        - ``IoU-<class>``: per class (``nan`` when the class is in neither ground truth nor
          prediction), so :func:`format_per_class_table` works on these results.
        - ``iIoU``, ``IoU_sup``, ``iIoU_sup``: instance-weighted class IoU and category IoUs.

    Errors (raised on construction, before any inference):
        - :class:`CityscapesEvalUnavailable` when the installed NumPy lacks ``np.in1d`` (see
          :func:`check_cityscapes_eval_compat`).
        - ``FileNotFoundError`` naming the pattern when the dataset's ``gt_dir`` has no
          ``*_gtFine_labelIds.png``.
        - ``RuntimeError`` with cityscapesscripts' own message when it gives up during ``evaluate``
          (it calls ``sys.exit``, which would otherwise end the training process).

    Not for multi-machine runs (the predictions are written to a local temporary folder), as
    Detectron2's.
    """

    def __init__(self, dataset_name: str):
        check_cityscapes_eval_compat()
        super().__init__(dataset_name)
        gt_dir = PathManager.get_local_path(MetadataCatalog.get(dataset_name).gt_dir)
        pattern = os.path.join(gt_dir, "*", "*_gtFine_labelIds.png")
        if not glob.glob(pattern):
            raise MissingFileError(
                f"CityscapesSemSegEvaluator('{dataset_name}') found no {os.path.abspath(pattern)}: "
                "the official evaluation reads the labelIds files that Cityscapes ships (or that "
                "datasets/prepare_cityscapes.py writes where they are missing)."
            )
        self._gt_pattern = pattern

    def evaluate(self):
        comm.synchronize()
        if comm.get_rank() > 0:
            return None
        import cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling as cs_eval
        from cityscapesscripts.helpers.labels import labels as cs_labels

        args = cs_eval.args
        args.predictionPath = os.path.abspath(self._temp_dir)
        args.predictionWalk = None
        args.JSONOutput = False
        args.colorized = False
        self._logger.info(f"Evaluating results under {self._temp_dir} with cityscapesscripts ...")
        gt_files = sorted(glob.glob(self._gt_pattern))
        captured = io.StringIO()
        try:
            with contextlib.redirect_stdout(captured):
                predictions = [cs_eval.getPrediction(args, gt) for gt in gt_files]
                results = cs_eval.evaluateImgLists(predictions, gt_files, args)
        except SystemExit:
            # cityscapesscripts' printError prints "ERROR: ..." and calls sys.exit.
            lines = [line for line in captured.getvalue().splitlines() if line.strip()]
            message = next((line for line in reversed(lines) if "ERROR" in line), lines[-1] if lines else "")
            raise RuntimeError(f"cityscapesscripts stopped the evaluation: {message.strip()}") from None
        finally:
            self._working_dir.cleanup()

        ret = OrderedDict()
        sem = OrderedDict()
        sem["mIoU"] = 100.0 * results["averageScoreClasses"]
        sem["IoU"] = sem["mIoU"]
        sem["iIoU"] = 100.0 * results["averageScoreInstClasses"]
        sem["IoU_sup"] = 100.0 * results["averageScoreCategories"]
        sem["iIoU_sup"] = 100.0 * results["averageScoreInstCategories"]
        eval_labels = sorted(
            (label for label in cs_labels if not label.ignoreInEval and 0 <= label.trainId < 255),
            key=lambda label: label.trainId,
        )
        for label in eval_labels:
            score = results["classScores"].get(label.name, float("nan"))
            score = float(score)
            sem[f"IoU-{label.name}"] = 100.0 * score if not math.isnan(score) else float("nan")
        ret["sem_seg"] = sem
        return ret
