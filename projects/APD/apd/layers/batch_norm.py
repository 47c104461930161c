"""Which BatchNorm layers cannot train on one image per process, and the norm a multi-process run needs.

The norm is chosen in the config, as in Detectron2 (``get_norm``): ``"BN"`` normalises each process's own
images; ``"SyncBN"`` (``torch.nn.SyncBatchNorm``, CUDA / NCCL only: DDP refuses it on CPU modules) and
``"naiveSyncBN"`` (Detectron2's ``NaiveSyncBatchNorm``, any backend, gloo included) normalise over the
global batch when several processes train, and are plain BN in one process or in eval mode. The recipe
configs say ``"SyncBN"`` (the official recipe: 8 images on 4 GPUs); the CPU demo configs ``"naiveSyncBN"``.
"""
from typing import Iterable, List, Sequence

from detectron2.layers import NaiveSyncBatchNorm
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..errors import ConfigMismatchError, ConfigValueError

__all__ = ["check_batch_per_process", "single_value_batchnorms", "torch_sync_batchnorms"]


def torch_sync_batchnorms(module: nn.Module) -> List[str]:
    """Names of the ``torch.nn.SyncBatchNorm`` layers of ``module`` (CUDA-only under DDP)."""
    return [name for name, m in module.named_modules() if isinstance(m, nn.SyncBatchNorm)]


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


def check_batch_per_process(cfg: DictConfig, model: nn.Module, *, world_size: int,
                            skip: Sequence[nn.Module] = (), device: str = "cpu") -> None:
    """Refuse a norm the processes cannot run, and one image per process where a BN layer would then
    normalise one value per channel.

    Args:
        cfg: reads ``dataloader.train.total_batch_size``.
        model: the built model; BN layers after a global pool (PSPNet's 1×1 bin, ASPP's image pooling) are
            looked for (:func:`single_value_batchnorms`). With several processes,
            synchronised layers (``SyncBN``, ``naiveSyncBN``) see the global batch and pass; with one
            process every BN counts.
        world_size: number of training processes.
        skip: sub-modules that never train (a distiller's frozen teacher).
        device: "cpu" or "cuda[:i]".

    Raises:
        ConfigValueError: ``SyncBN`` with several CPU processes (DDP refuses it there).
        ConfigMismatchError: one line naming the batch size, a layer and the fixes.
    """
    sync = torch_sync_batchnorms(model) if world_size > 1 and not str(device).startswith("cuda") else []
    if sync:
        raise ConfigValueError(
            f"norm 'SyncBN' ({sync[0]}{f' and {len(sync) - 1} more' if len(sync) > 1 else ''}) is torch's "
            f"SyncBatchNorm, which needs CUDA; with {world_size} CPU processes set the norm to 'naiveSyncBN' "
            "(e.g. model.backbone.norm=naiveSyncBN, model.student.backbone.norm=naiveSyncBN for a distiller).")
    total = OmegaConf.select(cfg, "dataloader.train.total_batch_size", default=None)
    if total is None or int(total) // max(world_size, 1) != 1:
        return
    layers = single_value_batchnorms(model, skip=skip, synced=world_size == 1)
    if not layers:
        return
    where = f"{world_size} processes and per-process BN" if world_size > 1 else "1 process"
    raise ConfigMismatchError(
        f"dataloader.train.total_batch_size={total} with {where} gives 1 image per process, and BatchNorm after a "
        f"global pool ({layers[0]}{f' and {len(layers) - 1} more' if len(layers) > 1 else ''}) would normalise one "
        "value per channel. Use a batch of at least 2 per process, or several processes (--num-gpus N) with a "
        "synchronised norm: model.backbone.norm=SyncBN (CUDA) or naiveSyncBN (any device).")
