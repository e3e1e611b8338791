"""Trainer and data settings that the other engine tests pin to one value (32-bit, one device, no workers, last +
best checkpoints only): `precision: auto`, `sync_batchnorm`, `keep_every_epoch`, `num_workers > 0`."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from conftest import REPO
from conftest_engine import tiny_overrides

from stdpose.engine import trainer as trainer_module
from stdpose.engine.config import load_config
from stdpose.engine.trainer import build_trainer, train

CONFIG = REPO / "configs" / "synthetic_demo.yaml"


def _cfg(data: Path, **extra: object) -> dict:
    return load_config(CONFIG, tiny_overrides(data, {k.replace("__", "."): v for k, v in extra.items()}))


def test_precision_auto_is_32_bit_on_cpu_and_mixed_on_a_gpu(tiny_synthetic, tmp_path, monkeypatch):
    cfg = _cfg(tiny_synthetic, trainer__precision="auto")
    assert build_trainer(cfg, tmp_path).precision == "32-true"
    # the GPU branch, without a GPU: what `auto` asks Lightning for
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert trainer_module.resolve_precision("auto", "gpu") == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert trainer_module.resolve_precision("auto", "cuda") == "16-mixed"
    assert trainer_module.resolve_precision("16-mixed", "cpu") == "16-mixed"  # an explicit value is kept


@pytest.mark.parametrize("sync", [False, True])
def test_sync_batchnorm_makes_the_trainer_convert_batchnorm_layers(tiny_synthetic, tmp_path, sync):
    from stdpose.engine.lit import StdposeModule

    # 1 process: no launch
    cfg = _cfg(tiny_synthetic, trainer__sync_batchnorm=str(sync).lower(), trainer__strategy="ddp")
    trainer = build_trainer(cfg, tmp_path)
    layer_sync = trainer.strategy._layer_sync  # what Lightning's DDP strategies apply to the model at setup
    assert (layer_sync is not None) == sync
    if sync:
        module = layer_sync.apply(StdposeModule(cfg))
        kinds = {type(m) for m in module.modules()}
        assert torch.nn.SyncBatchNorm in kinds and torch.nn.BatchNorm2d not in kinds  # the heads' BatchNorm


@pytest.mark.parametrize("keep", [False, True])
def test_keep_every_epoch_keeps_one_checkpoint_per_epoch(tiny_synthetic, tmp_path, keep):
    cfg = _cfg(tiny_synthetic, trainer__max_epochs=2, trainer__limit_train_batches=1, trainer__limit_val_batches=1,
               checkpoint__keep_every_epoch=str(keep).lower())
    result = train(cfg, output_dir=tmp_path / "run")
    assert result.epoch == 2 and not result.interrupted
    names = sorted(p.name for p in result.checkpoint_dir.glob("epoch*.ckpt"))
    assert names == (["epoch000.ckpt", "epoch001.ckpt"] if keep else [])
    if keep:
        for epoch, name in enumerate(names):
            assert torch.load(result.checkpoint_dir / name, weights_only=False)["epoch"] == epoch
    assert result.last_checkpoint is not None and result.last_checkpoint.is_file()


class _Samples(pl.Callback):
    def __init__(self) -> None:
        self.seen: list[tuple[int, int, int]] = []
        self.pixels: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        meta = batch["meta"]
        self.seen += list(zip(meta["video_index"].tolist(), meta["frame_index"].tolist(),
                              meta["person_index"].tolist()))
        self.pixels.append(batch["frames"].double().sum(dim=(1, 2, 3, 4)))  # the augmented crops, per sample


def test_worker_processes_load_the_same_batches_as_the_main_process(tiny_synthetic, tmp_path, monkeypatch):
    import os

    from stdpose.data.dataset import TripletDataset

    (tmp_path / "pids").mkdir()
    getitem = TripletDataset.__getitem__

    def recording(self, index):
        if torch.utils.data.get_worker_info() is not None:
            (tmp_path / "pids" / str(os.getpid())).touch()
        return getitem(self, index)

    monkeypatch.setattr(TripletDataset, "__getitem__", recording)
    seen = {}
    for workers in (0, 2):
        cfg = _cfg(tiny_synthetic, trainer__max_epochs=1, trainer__limit_train_batches=3, trainer__limit_val_batches=1,
                   data__num_workers=workers)
        record = _Samples()
        result = train(cfg, output_dir=tmp_path / f"w{workers}", extra_callbacks=[record])
        assert result.global_step == 3 and not result.interrupted
        seen[workers] = record.seen, torch.cat(record.pixels)
    assert len(seen[0][0]) == 12 and seen[2][0] == seen[0][0]  # same samples in the same order
    # the samples were loaded in worker processes (their augmentation streams differ from the main process's,
    # as data_order.py documents, so only the order is compared)
    assert len(list((tmp_path / "pids").iterdir())) >= 2
