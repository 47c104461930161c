"""SyncBN on CPU: torch's ``nn.SyncBatchNorm`` needs CUDA, Detectron2's ``NaiveSyncBatchNorm`` does not.

``norm="SyncBN"`` in a config becomes ``torch.nn.SyncBatchNorm`` (Detectron2's ``get_norm``). PyTorch
refuses it on CPU as soon as more than one process trains: ``DistributedDataParallel`` raises
"SyncBatchNorm layers only work with GPU modules" when it wraps the model. ``train_net.py`` therefore
swaps every ``nn.SyncBatchNorm`` for Detectron2's ``NaiveSyncBatchNorm`` (``norm="naiveSyncBN"``) when
it trains on CPU with several processes (gloo). Both normalise with the statistics of the whole global
batch when every process has the same N×H×W (fixed-size training crops); they differ in the running
variance (NaiveSyncBatchNorm stores the biased one, a relative difference of 1/(N·H·W − 1)) and in
speed. On CUDA nothing is swapped. See docs/RELIABILITY.md ("Distributed").
"""
from detectron2.layers import NaiveSyncBatchNorm
from torch import nn

__all__ = ["naive_sync_batchnorm"]


def naive_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.SyncBatchNorm`` in ``module`` by a ``NaiveSyncBatchNorm`` sharing its state.

    The new layers take over the parameter objects and buffers (so optimisers built before and
    checkpoints written before stay valid) and the training mode. Other modules are untouched.

    Returns:
        ``module`` itself (modified in place), or the new layer when ``module`` is a SyncBatchNorm.
    """
    if isinstance(module, nn.SyncBatchNorm):
        new = NaiveSyncBatchNorm(
            module.num_features,
            eps=module.eps,
            momentum=module.momentum,
            affine=module.affine,
            track_running_stats=module.track_running_stats,
        )
        if module.affine:
            new.weight = module.weight
            new.bias = module.bias
        if module.track_running_stats:
            new.running_mean = module.running_mean
            new.running_var = module.running_var
            new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        new_child = naive_sync_batchnorm(child)
        if new_child is not child:
            setattr(module, name, new_child)
    return module
