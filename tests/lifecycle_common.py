"""The run shared by test_checkpoint_lifecycle.py and its subprocess worker: the demo config at the tiny size,
2 epochs of 3 batches, a step checkpoint every 2 optimizer steps, an lr schedule that steps after epoch 0."""

from __future__ import annotations

from pathlib import Path

from conftest_engine import tiny_overrides

from stdpose.engine.config import load_config

LIFECYCLE = {"trainer.max_epochs": 2, "trainer.limit_train_batches": 3, "trainer.limit_val_batches": 1,
             "trainer.checkpoint_every_n_steps": 2, "optim.warmup_steps": 4, "optim.milestones": "[1]",
             "optim.gamma": 0.5}


def lifecycle_config(repo: Path, data: Path, **extra: object) -> dict:
    values = {**LIFECYCLE, **{k.replace("__", "."): v for k, v in extra.items()}}
    return load_config(repo / "configs" / "synthetic_demo.yaml", tiny_overrides(data, values))
