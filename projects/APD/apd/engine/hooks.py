"""Training hooks specific to distillation."""
import contextlib
import logging
import os
from typing import Callable, Dict, Iterator

from detectron2.engine import HookBase
from detectron2.utils import comm

from ..checkpoint.atomic import atomic_write_bytes

__all__ = ["TeacherEvalHook", "check_output_dir", "keep_run_config"]

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


_CHECKPOINT_MARKERS = ("last_checkpoint", "model_final.pth")


def check_output_dir(output_dir: str, *, resume: bool, overwrite: bool) -> None:
    """Refuse to start a new run into a folder that holds another run's checkpoints.

    Raises:
        FileExistsError: ``output_dir`` has checkpoints and neither ``resume`` nor ``overwrite`` is set.
    """
    if resume or overwrite or not output_dir or not os.path.isdir(output_dir):
        return
    found = [f for f in sorted(os.listdir(output_dir)) if f in _CHECKPOINT_MARKERS or
             (f.startswith("model_") and f.endswith(".pth"))]
    if found:
        raise FileExistsError(
            f"Output directory '{output_dir}' already holds checkpoints of another run ({', '.join(found[:5])}). "
            "Use --resume to continue it, choose another train.output_dir, or pass --overwrite to replace them."
        )


@contextlib.contextmanager
def keep_run_config(output_dir: str, name: str = "config.yaml", moved_to: str = "config_eval.yaml") -> Iterator[None]:
    """Keep a training run's ``config.yaml`` when something inside the block rewrites it.

    ``--eval-only`` into a training folder goes through Detectron2's ``default_setup``, which writes the
    evaluation's config over the run's. On leaving the block, a changed ``<output_dir>/<name>`` is
    moved to ``<moved_to>`` and the run's own file is put back (both writes atomic). No-op when the
    folder has no ``<name>`` yet.
    """
    path = os.path.join(output_dir or "", name)
    original = None
    if output_dir and os.path.isfile(path):
        with open(path, "rb") as f:
            original = f.read()
    try:
        yield
    finally:
        if original is not None and os.path.isfile(path):
            with open(path, "rb") as f:
                written = f.read()
            if written != original:
                atomic_write_bytes(os.path.join(output_dir, moved_to), written)
                atomic_write_bytes(path, original)
                logger.info(f"Kept the run's {name} in {output_dir}; this evaluation's config is {moved_to}")
