"""Helpers shared by the engine tests: the `tiny` synthetic data set, generated once per test session, and the
overrides that make any experiment config a seconds-long CPU run.

Tests take the data through conftest's `tiny_synthetic` session fixture (a few call `tiny_synthetic_dir` directly).
The data lives in one folder for the whole session (shared by pytest-xdist workers, guarded by a file lock), so
however many modules use it, it is generated once. `CtrlC` is a callback that interrupts training like Ctrl-C.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest
import pytorch_lightning as pl

REPO = Path(__file__).resolve().parents[1]


def _session_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def tiny_synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of the `tiny` synthetic preset (seed 0): annotations/{train,val}/*.json, images/... (image root)."""
    from stdpose.data.synthetic import generate_dataset

    root = _session_root(tmp_path_factory)
    out = root / "stdpose_tiny_synthetic"
    done = root / "stdpose_tiny_synthetic.done"
    with open(root / "stdpose_tiny_synthetic.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not done.exists():
                generate_dataset(out, "tiny", seed=0, progress=False)
                done.write_text("ok")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return out


def data_overrides(data_dir: Path) -> list[str]:
    """Point an experiment's data at the synthetic folder."""
    return [
        f"data.train={{annotations: {data_dir}/annotations/train, image_root: {data_dir}}}",
        f"data.val={{annotations: {data_dir}/annotations/val, image_root: {data_dir}}}",
    ]


def tiny_overrides(data_dir: Path, extra: dict[str, object] | None = None) -> list[str]:
    """Overrides that make any config a seconds-long CPU run: nano model at 64x48 on the synthetic data."""
    values: dict[str, object] = {
        "model.backbone": "nano",
        "model.pretrained": "null",
        "model.tff_depth": 1,
        "model.stda_depth": 1,
        "data.input_size": "[64,48]",
        "data.sigma": 1.0,
        "data.batch_size": 4,
        "data.num_workers": 0,
        "optim.warmup_steps": 0,
        "trainer.accelerator": "cpu",
        "trainer.devices": 1,
        "trainer.strategy": "auto",
        "trainer.precision": "32-true",
        "trainer.enable_progress_bar": "false",
        "trainer.log_every_n_steps": 1,
    }
    values.update(extra or {})
    return data_overrides(data_dir) + [f"{k}={v}" for k, v in values.items()]


class CtrlC(pl.Callback):
    """Press Ctrl-C (raise KeyboardInterrupt) when the optimizer step `at` has been taken."""

    def __init__(self, at: int):
        self.at = at

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.at:
            raise KeyboardInterrupt
