"""A training loader whose every sample is a pure function of (seed, position in the stream).

Detectron2's TrainingSampler restarts its permutation and each worker restarts its augmentation RNG when a
run is resumed, so a resumed run sees other crops than an uninterrupted one. Here position ``p`` of the
infinite stream always maps to the same dataset index (a seeded permutation per epoch) and the same
augmentation randomness (python/numpy/torch RNGs seeded from ``(seed, p)`` just before mapping). Global
batch ``i`` is positions ``[i·B, (i+1)·B)``; rank ``r`` of ``W`` takes the positions ``≡ r (mod W)``, so a
2-process run sees exactly the batches of a 1-process run with the same total batch. Resuming at
iteration ``i`` is ``loader.set_start_iter(i)``.

The dataset list is serialised once into one buffer (Detectron2's ``DatasetFromList(serialize=True)``):
forked workers that read a plain list of dicts touch every object's reference count and so copy the
whole list page by page, one copy per worker; reading the buffer copies nothing
(benchmarks/data_pipeline.py, item ``memory``).
"""
import logging
import random
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
import torch.utils.data as torchdata
from detectron2.data.common import DatasetFromList
from detectron2.utils import comm

__all__ = ["ResumableTrainLoader", "build_resumable_train_loader", "check_loaders"]

logger = logging.getLogger(__name__)

_MAX_RETRIES = 50


def _position_seed(seed: int, position: int) -> int:
    return (seed * 1_000_003 + position * 7_919 + 12_345) % (2**31 - 1)


class _PositionStream(torchdata.IterableDataset):
    def __init__(self, dataset, mapper, seed, shuffle, batch_size, start_iter, rank, world):
        self.dataset = dataset
        self.mapper = mapper
        self.seed = seed
        self.shuffle = shuffle
        self.batch_size = batch_size  # per rank
        self.start_iter = start_iter
        self.rank = rank
        self.world = world
        self._perm_epoch, self._perm = -1, None

    def _index(self, position: int) -> int:
        n = len(self.dataset)
        epoch, offset = divmod(position, n)
        if not self.shuffle:
            return offset
        if epoch != self._perm_epoch:
            self._perm = np.random.RandomState(_position_seed(self.seed, -1 - epoch)).permutation(n)
            self._perm_epoch = epoch
        return int(self._perm[offset])

    def _sample(self, position: int):
        seed = _position_seed(self.seed, position)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        idx = self._index(position)
        rng = np.random.RandomState(seed)
        for _ in range(_MAX_RETRIES):
            out = self.mapper(self.dataset[idx])  # a fresh copy of the record (DatasetFromList)
            if out is not None:
                return out
            idx = int(rng.randint(len(self.dataset)))  # the mapper skipped a bad sample
        raise RuntimeError(f"The mapper rejected {_MAX_RETRIES} samples in a row; check the dataset.")

    def __iter__(self):
        info = torchdata.get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        global_batch = self.batch_size * self.world
        k = worker
        while True:
            it = self.start_iter + k
            first = it * global_batch + self.rank
            yield [self._sample(first + j * self.world) for j in range(self.batch_size)]
            k += num_workers


class ResumableTrainLoader:
    """Iterable of per-rank batches (lists of mapped dataset dicts), infinite, resumable.

    Args:
        dataset: list of dataset dicts (e.g. ``get_detection_dataset_dicts(names)``), or a Detectron2
            ``DatasetFromList``; a list is serialised into a ``DatasetFromList(copy=True,
            serialize=True)`` (one pickled buffer, each read a fresh copy of its record).
        mapper: callable dict → dict or None (None = skip, another sample is drawn deterministically).
        total_batch_size: batch size summed over all processes; must divide by the world size.
        num_workers: DataLoader worker processes.
        seed: base seed; None draws one on rank 0 and shares it (not reproducible across runs).
        shuffle: a new permutation per epoch (True) or dataset order (False).
    """

    def __init__(
        self,
        dataset: Sequence[dict],
        mapper: Callable,
        total_batch_size: int,
        *,
        num_workers: int = 0,
        seed: Optional[int] = 0,
        shuffle: bool = True,
    ):
        world = comm.get_world_size()
        if total_batch_size <= 0 or total_batch_size % world != 0:
            raise ValueError(
                f"total_batch_size ({total_batch_size}) must be a positive multiple of the number of "
                f"processes ({world})"
            )
        if len(dataset) == 0:
            raise ValueError("ResumableTrainLoader: the dataset is empty")
        if not isinstance(dataset, DatasetFromList):
            dataset = DatasetFromList(list(dataset), copy=True, serialize=True)
        if seed is None:
            seed = comm.shared_random_seed()
        self.dataset = dataset
        self.mapper = mapper
        self.total_batch_size = total_batch_size
        self.batch_size = total_batch_size // world
        self.num_workers = num_workers
        self.seed = int(seed)
        self.shuffle = shuffle
        self.start_iter = 0
        self.rank, self.world = comm.get_rank(), world

    def set_start_iter(self, start_iter: int) -> None:
        """Start the stream at global iteration ``start_iter`` (call before iterating)."""
        self.start_iter = int(start_iter)

    def __iter__(self):
        stream = _PositionStream(
            self.dataset, self.mapper, self.seed, self.shuffle, self.batch_size,
            self.start_iter, self.rank, self.world,
        )
        loader = torchdata.DataLoader(
            stream,
            batch_size=None,
            num_workers=self.num_workers,
            collate_fn=_identity,
            persistent_workers=False,
        )
        return iter(loader)


def _identity(batch: List[dict]) -> List[dict]:
    return batch


def build_resumable_train_loader(dataset, mapper, total_batch_size, *, num_workers=0, seed=0, shuffle=True):
    """LazyCall-friendly constructor of :class:`ResumableTrainLoader`."""
    return ResumableTrainLoader(
        dataset, mapper, total_batch_size, num_workers=num_workers, seed=seed, shuffle=shuffle
    )


def check_loaders(cfg, splits: Sequence[str] = ("train", "test")) -> None:
    """Refuse loader numbers before anything starts: ``dataloader.<split>.num_workers`` an integer ≥ 0,
    ``dataloader.train.total_batch_size`` ≥ 1, and the training crop
    (``dataloader.train.mapper.augmentations.crop_size``) two integers ≥ 1 (torch's and the augmentations'
    own errors came at the first step and named no key).

    Raises:
        apd.config.ConfigValueError: one line naming the key and the allowed range.
    """
    from ..config import check_range, is_int

    for split in splits:
        check_range(cfg, f"dataloader.{split}.num_workers", lambda v: is_int(v, 0), "an integer ≥ 0")
    if "train" in splits:
        check_range(cfg, "dataloader.train.total_batch_size", lambda v: is_int(v, 1), "an integer ≥ 1")
        check_range(cfg, "dataloader.train.mapper.augmentations.crop_size",
                    lambda v: v is None or (len(v) == 2 and all(is_int(x, 1) for x in v)),
                    "(height, width), two integers ≥ 1")
