"""Training data order and randomness depend on (seed, epoch, rank) only: the basis of an exact --resume."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from stdpose.engine.data_order import EpochSeededSampler, epoch_seed, reseeded_loader


class _Noisy(Dataset):
    """Items carry a draw from the global torch RNG (like the real dataset's augmentation)."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> tuple[int, float]:
        return i, float(torch.rand(()))


def _epoch(loader: DataLoader, epoch: int) -> tuple[list[int], list[float]]:
    loader.sampler.set_epoch(epoch)
    ids, noise = [], []
    for idx, val in loader:
        ids += idx.tolist()
        noise += val.tolist()
    return ids, noise


def test_epoch_seed_differs_by_seed_epoch_rank_and_batch():
    seeds = {epoch_seed(s, e, r, b) for s in (0, 1) for e in (0, 1, 2) for r in (0, 1) for b in (-1, 0, 1)}
    assert len(seeds) == 36
    assert epoch_seed(3, 4, 0) == epoch_seed(3, 4, 0)


def test_same_epoch_gives_same_order_and_same_augmentation_whatever_came_before():
    base = DataLoader(_Noisy(), batch_size=3, shuffle=True)
    a = reseeded_loader(base, seed=7, epoch=0, num_replicas=1, rank=0)
    first = _epoch(a, 2)
    # disturb every global RNG, run other epochs, then come back to epoch 2 (what a resumed run does)
    torch.manual_seed(123)
    np.random.seed(5)
    random.seed(9)
    other = _epoch(a, 3)
    b = reseeded_loader(base, seed=7, epoch=2, num_replicas=1, rank=0)
    again = _epoch(b, 2)
    assert first == again
    assert sorted(first[0]) == list(range(10))
    assert other[0] != first[0]  # another epoch shuffles differently


def test_each_batch_reseeds_process_rngs():
    sampler = EpochSeededSampler(list(range(6)), num_replicas=1, rank=0, shuffle=True, seed=1, batch_size=2, epoch=4)
    it = iter(sampler)
    next(it)
    x1 = (torch.rand(3), np.random.rand(), random.random())
    next(it)  # second index of batch 0: no reseed
    y = torch.rand(3)
    next(it)  # first index of batch 1: reseed
    x2 = torch.rand(3)
    torch.manual_seed(99)
    it = iter(sampler)
    next(it)
    assert torch.equal(x1[0], torch.rand(3)) and x1[1] == np.random.rand() and x1[2] == random.random()
    assert not torch.equal(y, x2)


def test_skip_batches_applies_to_one_iteration_and_keeps_the_rest_identical():
    data = list(range(10))
    full = EpochSeededSampler(data, num_replicas=1, rank=0, shuffle=True, seed=3, batch_size=3, epoch=2)
    order = list(full)
    skipping = EpochSeededSampler(data, num_replicas=1, rank=0, shuffle=True, seed=3, batch_size=3, epoch=2,
                                  skip_batches=2)
    assert len(skipping) == 10  # Lightning still counts the whole epoch
    assert list(skipping) == order[6:]
    assert list(skipping) == order  # the next epoch run is whole again


def test_ranks_split_the_data_and_no_shuffle_keeps_order():
    data = list(range(9))
    parts = [list(EpochSeededSampler(data, num_replicas=3, rank=r, shuffle=True, seed=0, batch_size=2))
             for r in range(3)]
    assert sorted(sum(parts, [])) == data
    plain = EpochSeededSampler(data, num_replicas=1, rank=0, shuffle=False, seed=0, batch_size=4)
    assert list(plain) == data


def test_reseeded_loader_keeps_the_loader_settings():
    def collate(batch):
        return batch

    base = DataLoader(_Noisy(), batch_size=4, shuffle=False, collate_fn=collate, drop_last=True)
    loader = reseeded_loader(base, seed=0, epoch=0, num_replicas=1, rank=0)
    assert loader.batch_size == 4 and loader.drop_last and loader.collate_fn is collate
    assert not loader.sampler.shuffle
    assert [i for batch in loader for i, _ in batch] == list(range(8))
