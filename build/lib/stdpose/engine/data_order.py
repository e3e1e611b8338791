"""Training data order and randomness as a function of (seed, epoch, batch, rank) alone, so `--resume` is exact.

Lightning does not save the random number generators in a checkpoint, and a plain shuffling DataLoader draws its
order (and its workers' seeds) from the global torch RNG, so a resumed run would see other batches and
augmentations than an uninterrupted one. `EpochSeededSampler` fixes that:
- the shuffle order of an epoch comes from (seed, epoch) (as DistributedSampler; ranks take disjoint shares);
- before the indices of each batch are handed out, the process RNGs (python, numpy, torch) are reseeded from
  (seed, epoch, rank, batch), so augmentation drawn in the main process and dropout in that batch's training step
  do not depend on anything that happened before;
- the DataLoader's worker base seed comes from (seed, epoch, rank) through the loader's generator;
- after a restart in the middle of an epoch (the interrupt checkpoint), the batches that were already trained are
  skipped, once, so the epoch continues where it stopped.
`SeededDataModule` wraps the project's PoseDataModule and rebuilds its training DataLoader around this sampler;
validation loaders pass through unchanged.

Exactness: resuming from an end-of-epoch checkpoint (last.ckpt) is bit-exact; from a mid-epoch checkpoint too
when `data.num_workers` is 0. With worker processes the data order is still exact, but workers restart their
random streams at the resume point. `persistent_workers` is switched off for training because persistent workers
would carry their RNG state across epochs.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler


def epoch_seed(seed: int, epoch: int, rank: int, batch: int = -1) -> int:
    """A 63-bit seed mixing the run seed, the epoch, the rank (ranks augment differently) and the batch."""
    words = [int(seed), int(epoch), int(rank), int(batch) + 1]
    mixed = np.random.SeedSequence(words).generate_state(2, dtype=np.uint32)
    return (int(mixed[0]) << 31) ^ int(mixed[1])


def seed_process_rngs(seed: int) -> None:
    """Seed python's `random`, numpy's global RNG and torch (all devices) from one number."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class EpochSeededSampler(DistributedSampler):
    """DistributedSampler (also for one process) that reseeds the process RNGs per batch and can skip the batches
    of an interrupted epoch that were already trained. Lightning calls `set_epoch` before every epoch."""

    def __init__(self, dataset: Any, num_replicas: int, rank: int, shuffle: bool, seed: int, batch_size: int,
                 epoch: int = 0, skip_batches: int = 0, drop_last: bool = False):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self.batch_size = int(batch_size)
        self.generator = torch.Generator()
        self.skip_batches = int(skip_batches)  # applies to the next iteration only
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        # The loader draws its workers' base seed from this generator when an epoch's iterator is created.
        self.generator.manual_seed(epoch_seed(self.seed, epoch, self.rank))

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        skip, self.skip_batches = self.skip_batches, 0
        for position in range(skip * self.batch_size, len(indices)):
            if position % self.batch_size == 0:
                # the loader asks for a batch's indices just before it loads that batch
                seed_process_rngs(epoch_seed(self.seed, self.epoch, self.rank, position // self.batch_size))
            yield indices[position]


def reseeded_loader(loader: DataLoader, seed: int, epoch: int, num_replicas: int, rank: int,
                    skip_batches: int = 0) -> DataLoader:
    """A copy of `loader` (same dataset, batch size, collate, workers) drawing its order from EpochSeededSampler."""
    shuffle = isinstance(loader.sampler, (RandomSampler, DistributedSampler)) and getattr(
        loader.sampler, "shuffle", True
    )
    batch_size = loader.batch_size or 1
    sampler = EpochSeededSampler(loader.dataset, num_replicas=num_replicas, rank=rank, shuffle=bool(shuffle),
                                 seed=seed, batch_size=batch_size, epoch=epoch, skip_batches=skip_batches)
    kwargs: dict[str, Any] = {}
    if loader.num_workers > 0:
        kwargs.update(prefetch_factor=loader.prefetch_factor, multiprocessing_context=loader.multiprocessing_context)
    return DataLoader(
        loader.dataset,
        batch_size=batch_size,
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


def resume_position(trainer: pl.Trainer) -> tuple[int, int]:
    """(epoch about to run, batches of it already trained) from the trainer's restored loop state.

    Fresh start: (0, 0). After an end-of-epoch checkpoint: (next epoch, 0). After a mid-epoch checkpoint: (that
    epoch, the batches Lightning counts as done: it continues with the next batch index).
    """
    loop = trainer.fit_loop
    total = loop.epoch_progress.total
    epoch = loop.epoch_progress.current.processed
    mid_epoch = loop.restarting and total.started == total.ready and total.processed == total.started - 1
    done = loop.epoch_loop.batch_progress.current.processed if mid_epoch else 0
    return epoch, done


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
        if trainer is None:
            return reseeded_loader(loader, self.seed, 0, 1, 0)
        epoch, done = resume_position(trainer)
        return reseeded_loader(loader, self.seed, epoch, trainer.world_size, trainer.global_rank, skip_batches=done)

    def val_dataloader(self) -> Any:
        return self.inner.val_dataloader()

    def state_dict(self) -> dict:
        return self.inner.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.inner.load_state_dict(state_dict)

    def __getattr__(self, name: str) -> Any:
        # Attributes that LightningDataModule itself lacks (val_dataset, ...) come from the inner module.
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)
