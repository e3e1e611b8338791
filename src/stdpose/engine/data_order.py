"""Training data order and randomness as a function of (seed, epoch, rank) alone, so `--resume` is exact.

Lightning does not save the random number generators in a checkpoint, and a plain shuffling DataLoader draws its
order (and its workers' seeds) from the global torch RNG, so a resumed run would see different batches and
augmentations than an uninterrupted one. `EpochSeededSampler` fixes that: at the start of every epoch it derives
the shuffle order, the DataLoader's worker base seed and the process RNGs (python, numpy, torch: augmentation in
the main process, dropout) from (seed, epoch, rank). `SeededDataModule` wraps the project's PoseDataModule and
rebuilds its training DataLoader around that sampler; validation loaders pass through unchanged.

Limits: resuming from an end-of-epoch checkpoint (last.ckpt) is bit-exact. A mid-epoch checkpoint (interrupt)
continues at its step, but the interrupted epoch's data is drawn again from its start. `persistent_workers` is
switched off for training because persistent workers would carry their RNG state across epochs.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """A 63-bit seed mixing the run seed, the epoch and the rank (different ranks augment differently)."""
    mixed = np.random.SeedSequence([int(seed), int(epoch), int(rank)]).generate_state(2, dtype=np.uint32)
    return int(mixed[0]) << 31 ^ int(mixed[1])


def seed_process_rngs(seed: int) -> None:
    """Seed python's `random`, numpy's global RNG and torch (all devices) from one number."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class EpochSeededSampler(DistributedSampler):
    """DistributedSampler (also for one process) that, when an epoch's iteration starts, reseeds the process RNGs
    and the DataLoader's generator from (seed, epoch, rank). Lightning calls `set_epoch` before every epoch."""

    def __init__(self, dataset: Any, num_replicas: int, rank: int, shuffle: bool, seed: int, epoch: int = 0,
                 drop_last: bool = False):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self.generator = torch.Generator()
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        # The loader draws its workers' base seed from this generator when an epoch's iterator is created.
        self.generator.manual_seed(epoch_seed(self.seed, epoch, self.rank) + 1)

    def __iter__(self):
        seed_process_rngs(epoch_seed(self.seed, self.epoch, self.rank))
        return super().__iter__()


def reseeded_loader(loader: DataLoader, seed: int, epoch: int, num_replicas: int, rank: int) -> DataLoader:
    """A copy of `loader` (same dataset, batch size, collate, workers) drawing its order from EpochSeededSampler."""
    shuffle = isinstance(loader.sampler, (RandomSampler, DistributedSampler)) and getattr(
        loader.sampler, "shuffle", True
    )
    sampler = EpochSeededSampler(loader.dataset, num_replicas=num_replicas, rank=rank, shuffle=bool(shuffle),
                                 seed=seed, epoch=epoch, drop_last=False)
    kwargs: dict[str, Any] = {}
    if loader.num_workers > 0:
        kwargs.update(prefetch_factor=loader.prefetch_factor, multiprocessing_context=loader.multiprocessing_context)
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=sampler,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        generator=sampler.generator,
        persistent_workers=False,
        **kwargs,
    )


class SeededDataModule(pl.LightningDataModule):
    """Wraps a LightningDataModule: training batches come from EpochSeededSampler, the rest is delegated."""

    def __init__(self, inner: pl.LightningDataModule, seed: int):
        super().__init__()
        self.inner = inner
        self.seed = int(seed)

    def prepare_data(self) -> None:
        self.inner.prepare_data()

    def setup(self, stage: str) -> None:
        self.inner.trainer = self.trainer
        self.inner.setup(stage)

    def teardown(self, stage: str) -> None:
        self.inner.teardown(stage)

    def train_dataloader(self) -> DataLoader:
        loader = self.inner.train_dataloader()
        trainer = self.trainer
        # The epoch about to run: restored from the checkpoint when resuming, 0 on a fresh start.
        epoch = trainer.fit_loop.epoch_progress.current.processed if trainer is not None else 0
        world = trainer.world_size if trainer is not None else 1
        rank = trainer.global_rank if trainer is not None else 0
        return reseeded_loader(loader, self.seed, epoch, world, rank)

    def val_dataloader(self) -> Any:
        return self.inner.val_dataloader()

    def state_dict(self) -> dict:
        return self.inner.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.inner.load_state_dict(state_dict)

    def __getattr__(self, name: str) -> Any:
        # Attributes that LightningDataModule itself lacks (val_videos, datasets, ...) come from the inner module.
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)
