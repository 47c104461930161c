"""Training hooks: the teacher's score before step 0, and checkpoint pruning that survives a resume.

The run-folder helpers (refuse/move an old run, metrics.json on resume) are in :mod:`apd.engine.run_dir`.
"""
import logging
from typing import Callable, Dict

from detectron2.engine import HookBase, hooks
from detectron2.utils import comm

from .run_dir import periodic_checkpoints

__all__ = ["PeriodicCheckpointer", "TeacherEvalHook", "check_schedule"]

logger = logging.getLogger(__name__)


class TeacherEvalHook(HookBase):
    """Evaluates the frozen teacher once, before the first step of a fresh run.

    The score goes to the log and to the event storage as ``teacher/<metric>`` (so metrics.json and
    TensorBoard show it next to the student's). A teacher far below its published score means wrong or
    mismatched weights: better known before a week of distillation. Skipped when resuming.

    Args:
        eval_function: () → nested dict of results (e.g. ``{"sem_seg": {"mIoU": ...}}``).
    """

    def __init__(self, eval_function: Callable[[], Dict]):
        self._func = eval_function
        self.results = None

    def before_train(self):
        if self.trainer.iter > 0 or getattr(self.trainer, "start_iter", 0) > 0:
            return
        results = self._func()
        comm.synchronize()
        self.results = results
        if not results:
            return
        flat = {}
        for task, metrics in results.items():
            for name, value in metrics.items():
                if isinstance(value, (int, float)):
                    flat[f"teacher/{task}/{name}"] = float(value)
        if comm.is_main_process():
            summary = ", ".join(f"{k}={v:.2f}" for k, v in flat.items() if "IoU" in k or "AP" in k)
            logger.info(f"Teacher score before distillation: {summary or flat}")
            storage = self.trainer.storage
            for k, v in flat.items():
                storage.put_scalar(k, v, smoothing_hint=False)


class PeriodicCheckpointer(hooks.PeriodicCheckpointer):
    """Detectron2's ``PeriodicCheckpointer`` whose ``max_to_keep`` also counts checkpoints written before a
    resume.

    fvcore's ``PeriodicCheckpointer`` only remembers the files it saved in this process, so after
    ``--resume`` the earlier ``model_<iter>.pth`` files were never deleted. Here ``before_train`` seeds
    that list with the periodic checkpoints already in the folder (by iteration) and deletes the oldest
    beyond ``max_to_keep`` at once, leaving what an uninterrupted run would hold. ``model_final.pth`` is
    never deleted.
    """

    def before_train(self):
        super().before_train()
        if self.max_to_keep is None:
            return
        known = set(self.recent_checkpoints)
        existing = [p for p in periodic_checkpoints(self.checkpointer.save_dir, self.file_prefix) if p not in known]
        self.recent_checkpoints = existing + self.recent_checkpoints
        while len(self.recent_checkpoints) > max(self.max_to_keep, 1):
            path = self.recent_checkpoints.pop(0)
            if self.path_manager.exists(path):
                self.path_manager.rm(path)
                logger.info(f"Deleted {path} (train.checkpointer.max_to_keep={self.max_to_keep})")


def check_schedule(cfg) -> None:
    """Refuse ``train.*`` numbers the training loop and these hooks cannot run with, before anything
    starts: ``max_iter`` and the periods ``log_period`` and ``checkpointer.period`` ≥ 1 (0 divided by
    zero at the first step; a negative ``max_iter`` ended at once with no checkpoint), ``eval_period``
    ≥ 0 (0: only the final evaluation), ``checkpointer.max_to_keep`` ≥ 1 or null.

    Raises:
        apd.config.ConfigValueError: one line naming the key and the allowed range.
    """
    from ..config import check_range, is_int

    for key in ("train.max_iter", "train.log_period", "train.checkpointer.period"):
        check_range(cfg, key, lambda v: is_int(v, 1), "an integer ≥ 1")
    check_range(cfg, "train.eval_period", lambda v: is_int(v, 0), "an integer ≥ 0 (0: evaluate at the end only)")
    check_range(cfg, "train.checkpointer.max_to_keep", lambda v: v is None or is_int(v, 1),
                "an integer ≥ 1, or null to keep every checkpoint")
