"""Synchronised BatchNorm for multi-process training, and the one-image-per-process check.

Every segmentation config normalises with ``norm="BN"``. With several processes each BN would then
see only its own process's images: at the recipe's total batch 8 on 8 GPUs, one image, and PSPNet's
1×1 pyramid bin or ASPP's image pooling then normalises one value per channel (torch raises
``Expected more than 1 value per channel when training``). The official recipe trains with SyncBN
(docs/METHOD.md §4), so ``train_net.py`` converts the trainable BN layers when more than one process
trains (``train.sync_bn``, default True):

- on CUDA to ``torch.nn.SyncBatchNorm`` (NCCL);
- on CPU to Detectron2's ``NaiveSyncBatchNorm`` (gloo), because torch's ``SyncBatchNorm`` refuses CPU
  modules under DDP ("SyncBatchNorm layers only work with GPU modules").

``NaiveSyncBatchNorm`` all-reduces each process's per-channel mean and mean of squares and divides by
the world size: with equal N×H×W on every process (fixed training crops) that is the global batch's
mean and E[x²], so var = E[x²] − mean² is the global (biased) variance. A 1×1 map with one image per
process is fine: each process contributes one value per channel and the statistics are those of the
global batch. It stores the biased running variance (a relative difference of 1/(n − 1) from torch's,
n = values per channel over the global batch). The frozen teacher is skipped: it is always in eval
mode, where SyncBN uses the running statistics and does not communicate.
"""
import logging
from typing import Iterable, List, Optional

from detectron2.layers import NaiveSyncBatchNorm
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["convert_sync_batchnorm", "naive_sync_batchnorm", "single_value_batchnorms"]

logger = logging.getLogger(__name__)


def _copy_state(old: _BatchNorm, new: _BatchNorm) -> _BatchNorm:
    """``new`` takes over ``old``'s Parameter objects, buffers and mode (optimisers built before and
    checkpoints written before stay valid)."""
    if old.affine:
        new.weight = old.weight
        new.bias = old.bias
    if old.track_running_stats:
        new.running_mean = old.running_mean
        new.running_var = old.running_var
        new.num_batches_tracked = old.num_batches_tracked
    new.train(old.training)
    return new


def _convert_to(cls, module: _BatchNorm) -> _BatchNorm:
    """A ``cls`` BatchNorm (``NaiveSyncBatchNorm`` or ``nn.SyncBatchNorm``) with ``module``'s
    hyper-parameters, taking over its state (:func:`_copy_state`)."""
    new = cls(
        module.num_features,
        eps=module.eps,
        momentum=module.momentum,
        affine=module.affine,
        track_running_stats=module.track_running_stats,
    )
    return _copy_state(module, new)


def _to_naive(module: _BatchNorm) -> NaiveSyncBatchNorm:
    return _convert_to(NaiveSyncBatchNorm, module)


def _to_torch_sync(module: _BatchNorm) -> nn.SyncBatchNorm:
    return _convert_to(nn.SyncBatchNorm, module)


def _replace(module: nn.Module, convert, skip_ids) -> nn.Module:
    if id(module) in skip_ids:
        return module
    new = convert(module)
    if new is not None:
        return new
    for name, child in module.named_children():
        new_child = _replace(child, convert, skip_ids)
        if new_child is not child:
            setattr(module, name, new_child)
    return module


def naive_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.SyncBatchNorm`` in ``module`` by a ``NaiveSyncBatchNorm`` sharing its state.

    For configs that set ``norm="SyncBN"`` and train on CPU with several processes. Other modules are
    untouched.

    Returns:
        ``module`` itself (modified in place), or the new layer when ``module`` is a SyncBatchNorm.
    """
    return _replace(module, lambda m: _to_naive(m) if isinstance(m, nn.SyncBatchNorm) else None, set())


def convert_sync_batchnorm(module: nn.Module, device: str, *, skip: Iterable[nn.Module] = ()) -> nn.Module:
    """Synchronise the BatchNorm layers of ``module`` across processes, in place.

    Args:
        module: the model (student, adapters; a distiller's teacher goes in ``skip``).
        device: "cuda[:i]" → every ``_BatchNorm`` (1d/2d/3d, not FrozenBatchNorm2d) becomes
            ``torch.nn.SyncBatchNorm``; "cpu" → every ``BatchNorm2d`` and ``SyncBatchNorm`` becomes
            Detectron2's ``NaiveSyncBatchNorm`` (4-D inputs only; a ``BatchNorm1d``/``3d`` stays per-process
            and is logged).
        skip: sub-modules left as they are (the frozen teacher).

    Returns:
        ``module`` (or the new layer when ``module`` itself is a BN). Parameters and buffers are the
        same objects as before, so an optimiser built earlier stays valid.
    """
    skip_ids = {id(m) for m in skip if m is not None}
    kept: List[str] = []

    def convert(m: nn.Module) -> Optional[nn.Module]:
        if not isinstance(m, _BatchNorm):
            return None
        if str(device).startswith("cuda"):
            return m if type(m) is nn.SyncBatchNorm else _to_torch_sync(m)
        if isinstance(m, NaiveSyncBatchNorm):
            return m
        if isinstance(m, (nn.BatchNorm2d, nn.SyncBatchNorm)):
            return _to_naive(m)
        kept.append(type(m).__name__)
        return m

    out = _replace(module, convert, skip_ids)
    if kept:
        logger.warning(f"{len(kept)} BatchNorm layers ({sorted(set(kept))}) stay per-process on CPU: "
                       "NaiveSyncBatchNorm handles 4-D inputs only")
    return out


def _is_global_pool(m: nn.Module) -> bool:
    if not isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return False
    size = m.output_size
    return tuple(size) == (1, 1) if isinstance(size, (tuple, list)) else size == 1


def single_value_batchnorms(module: nn.Module, *, skip: Iterable[nn.Module] = (), synced: bool = True) -> List[str]:
    """Names of the training-mode BN layers that see one value per channel per image.

    Found from the structure: a BN inside an ``nn.Sequential`` after a global pooling layer
    (``AdaptiveAvg/MaxPool2d(1)``), as PSPNet's 1×1 pyramid bin and ASPP's image pooling are built.
    With one image per process and no synchronisation such a layer cannot normalise (torch raises
    "Expected more than 1 value per channel when training").

    Args:
        module: the model; ``skip``: sub-modules not searched (the frozen teacher).
        synced: also list ``nn.SyncBatchNorm``/``NaiveSyncBatchNorm`` layers (False: only per-process
            BN, for a run with several processes, where those see the whole global batch).
    """
    skip_ids = {id(m) for m in skip if m is not None}
    found: List[str] = []

    def visit(m: nn.Module, prefix: str) -> None:
        if id(m) in skip_ids:
            return
        if isinstance(m, nn.Sequential):
            pooled = False
            for name, child in m.named_children():
                path = f"{prefix}{name}"
                if _is_global_pool(child):
                    pooled = True
                elif pooled:
                    found.extend(
                        f"{path}.{n}" if n else path for n, sub in child.named_modules()
                        if isinstance(sub, _BatchNorm) and sub.training
                        and (synced or not isinstance(sub, (nn.SyncBatchNorm, NaiveSyncBatchNorm)))
                    )
                    continue
                visit(child, path + ".")
            return
        for name, child in m.named_children():
            visit(child, f"{prefix}{name}.")

    visit(module, "")
    return found
