import gc
import itertools
import weakref

import pytest
import torch

from apd.data.samplers import ResumableTrainLoader, _PositionStream


def _mapper(d):
    # augmentation randomness drawn from the global RNGs, as detectron2's augmentations do
    return {"idx": d["idx"], "noise": float(torch.rand(1))}


DATA = [{"idx": i} for i in range(7)]


def _take(loader, n):
    return list(itertools.islice(iter(loader), n))


def test_stream_is_deterministic_and_each_epoch_is_a_permutation():
    a = _take(ResumableTrainLoader(DATA, _mapper, 7, seed=3), 2)
    b = _take(ResumableTrainLoader(DATA, _mapper, 7, seed=3), 2)
    assert a == b
    assert sorted(x["idx"] for x in a[0]) == list(range(7))
    c = _take(ResumableTrainLoader(DATA, _mapper, 7, seed=4), 1)
    assert c[0] != a[0]


def test_set_start_iter_continues_the_same_stream():
    full = _take(ResumableTrainLoader(DATA, _mapper, 3, seed=0), 5)
    resumed = ResumableTrainLoader(DATA, _mapper, 3, seed=0)
    resumed.set_start_iter(3)
    assert _take(resumed, 2) == full[3:5]


def test_two_ranks_see_the_one_rank_global_batch():
    one = _PositionStream(DATA, _mapper, 0, True, 4, 0, rank=0, world=1)
    r0 = _PositionStream(DATA, _mapper, 0, True, 2, 0, rank=0, world=2)
    r1 = _PositionStream(DATA, _mapper, 0, True, 2, 0, rank=1, world=2)
    for b, b0, b1 in itertools.islice(zip(one, r0, r1), 3):
        key = lambda x: (x["idx"], x["noise"])  # noqa: E731
        assert sorted(map(key, b)) == sorted(map(key, b0 + b1))


def test_worker_processes_keep_the_order():
    serial = _take(ResumableTrainLoader(DATA, _mapper, 2, seed=0), 4)
    parallel = _take(ResumableTrainLoader(DATA, _mapper, 2, seed=0, num_workers=2), 4)
    assert serial == parallel


def test_skipped_samples_are_replaced_deterministically():
    def picky(d):
        return None if d["idx"] == 2 else _mapper(d)

    a = _take(ResumableTrainLoader(DATA, picky, 7, seed=0), 2)
    assert all(x["idx"] != 2 for batch in a for x in batch)
    assert a == _take(ResumableTrainLoader(DATA, picky, 7, seed=0), 2)


def test_batch_must_divide_world_and_dataset_not_empty():
    with pytest.raises(ValueError, match="empty"):
        ResumableTrainLoader([], _mapper, 2)
    with pytest.raises(ValueError, match="total_batch_size"):
        ResumableTrainLoader(DATA, _mapper, 0)


class _Record(dict):
    """A dict that a weak reference can point to."""


def test_the_loader_keeps_one_serialised_buffer_not_the_records():
    """Forked workers reading Python dicts copy them (reference counts); the loader holds none of them."""
    records = [_Record(idx=i, annotations=[{"bbox": [i, 0, 1, 1]}]) for i in range(7)]
    refs = [weakref.ref(r) for r in records]
    loader = ResumableTrainLoader(records, _mapper, 7, seed=0)
    del records
    gc.collect()
    assert all(ref() is None for ref in refs)
    # The stream is unchanged: the same indices and records as from the plain list.
    assert _take(loader, 2) == _take(ResumableTrainLoader(DATA, _mapper, 7, seed=0), 2)


def test_a_mapper_that_changes_its_record_changes_no_later_read():
    def popping(d):
        out = _mapper(d)
        d.pop("idx")
        return out

    batches = _take(ResumableTrainLoader(DATA, popping, 7, seed=0), 3)  # three epochs: every record reread
    assert sorted(x["idx"] for x in batches[2]) == list(range(7))
