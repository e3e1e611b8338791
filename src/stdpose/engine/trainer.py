"""Build the Lightning Trainer from a config and run a training: devices, nodes, strategy, precision,
accumulation, checkpoints (last every epoch, best by val mAP, one on interrupt) and the TensorBoard logger.

The same config runs on a laptop CPU, one GPU, several GPUs (`trainer.devices: 4`, `trainer.strategy: ddp`) and
several nodes (`trainer.num_nodes: 2`, launched by torchrun or SLURM; Lightning reads their environment).
Output layout under `output_dir`:
    config.yaml                the resolved config of the run (every default filled in)
    checkpoints/last.ckpt      refreshed at the end of every epoch (what `--resume auto` picks)
    checkpoints/best-*.ckpt    the best epoch by `checkpoint.monitor` (val/mAP)
    checkpoints/interrupted.ckpt   written on Ctrl-C or a crash, at the step where it happened
    tensorboard/               event files: every loss term, learning rate, val mAP per joint group
"""

from __future__ import annotations

import logging
import os
import signal
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning_fabric.utilities.exceptions import MisconfigurationException
from pytorch_lightning.callbacks import Checkpoint, ModelCheckpoint

from stdpose.atomic import atomic_path, atomic_write_text
from stdpose.engine.config import dump_config
from stdpose.errors import ConfigError, DataError

CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"
INTERRUPTED = "interrupted.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save through stdpose.atomic: a checkpoint file is either complete or absent (kill -9 safe)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        with atomic_path(Path(path)) as tmp:
            torch.save(checkpoint, tmp)


class InterruptCheckpoint(Checkpoint):
    """Save `interrupted.ckpt` when training stops on an exception (Ctrl-C, out of memory, NaN check, ...).

    Unlike Lightning's OnExceptionCheckpoint the file is kept when a later run finishes, and it is removed only
    when that run has written a newer last.ckpt, so `--resume auto` always finds the newest state."""

    def __init__(self, dirpath: Path):
        super().__init__()
        self.path = Path(dirpath) / INTERRUPTED
        self.saved = False

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if trainer.global_step == 0 and trainer.current_epoch == 0:
            return  # nothing trained yet: keep any older checkpoint as the thing to resume
        trainer.save_checkpoint(self.path)
        self.saved = True

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # last.ckpt (saved by the ModelCheckpoint that runs before this callback) is now the newer state.
        if trainer.is_global_zero and self.path.exists():
            self.path.unlink()


def resolve_precision(precision: str, accelerator: str) -> str:
    """'auto' -> bf16-mixed on a GPU that supports it, 16-mixed on other GPUs, 32-true on CPU."""
    if precision != "auto":
        return precision
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if not on_gpu:
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def checkpoint_callbacks(cfg: dict, ckpt_dir: Path) -> list[pl.Callback]:
    """last.ckpt every epoch (plus every N steps if configured), best by the monitored metric, interrupt."""
    ck = cfg["checkpoint"]
    last = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="epoch{epoch:03d}",
        auto_insert_metric_name=False,
        save_top_k=-1 if ck["keep_every_epoch"] else 0,
        save_last=True,
        every_n_epochs=1,
        save_on_train_epoch_end=True,
        enable_version_counter=False,
    )
    monitor = ck["monitor"]
    best = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="best-epoch{epoch:03d}-" + monitor.replace("/", "_") + "{" + monitor + ":.2f}",
        auto_insert_metric_name=False,
        monitor=monitor,
        mode=ck["mode"],
        save_top_k=1,
        save_last=False,
        enable_version_counter=False,
    )
    callbacks: list[pl.Callback] = [last, best]
    if ck["every_n_train_steps"]:
        callbacks.append(
            ModelCheckpoint(dirpath=ckpt_dir, filename="step-last", save_top_k=0, save_last=True,
                            every_n_train_steps=ck["every_n_train_steps"], enable_version_counter=False)
        )
    callbacks.append(InterruptCheckpoint(ckpt_dir))
    return callbacks


def build_trainer(cfg: dict, output_dir: str | Path, extra_callbacks: list[pl.Callback] | None = None) -> pl.Trainer:
    """A pl.Trainer for the `trainer:` and `checkpoint:` sections; Lightning's own errors become ConfigError."""
    from pytorch_lightning.loggers import TensorBoardLogger

    tr = cfg["trainer"]
    output_dir = Path(output_dir)
    ckpt_dir = output_dir / CHECKPOINT_DIR
    callbacks = checkpoint_callbacks(cfg, ckpt_dir) + list(extra_callbacks or [])
    logger = TensorBoardLogger(save_dir=str(output_dir), name="tensorboard", version="", default_hp_metric=False)
    kwargs = dict(
        accelerator=tr["accelerator"],
        devices=tr["devices"],
        num_nodes=tr["num_nodes"],
        strategy=tr["strategy"],
        precision=resolve_precision(tr["precision"], tr["accelerator"]),
        max_epochs=tr["max_epochs"],
        max_steps=tr["max_steps"],
        accumulate_grad_batches=tr["accumulate_grad_batches"],
        gradient_clip_val=tr["gradient_clip_val"],
        log_every_n_steps=tr["log_every_n_steps"],
        val_check_interval=_fraction_or_none(tr["val_check_interval"]),
        check_val_every_n_epoch=tr["check_val_every_n_epoch"],
        # None = Lightning's default (all batches) without its "100% of the batches will be used" notices.
        # An int is a number of batches (1 = one batch), a float a fraction (1.0 = all).
        limit_train_batches=_fraction_or_none(tr["limit_train_batches"]),
        limit_val_batches=_fraction_or_none(tr["limit_val_batches"]),
        num_sanity_val_steps=tr["num_sanity_val_steps"],
        deterministic=tr["deterministic"],
        enable_progress_bar=tr["enable_progress_bar"],
        sync_batchnorm=tr["sync_batchnorm"],
        benchmark=False,
        callbacks=callbacks,
        logger=logger,
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(output_dir),
        use_distributed_sampler=True,
    )
    try:
        return pl.Trainer(**kwargs)
    except (MisconfigurationException, ValueError, TypeError, RuntimeError) as err:
        # no GPU for accelerator=gpu, unknown strategy, bad device list, ...
        keys = "trainer.accelerator, trainer.devices, trainer.num_nodes, trainer.strategy, trainer.precision"
        raise ConfigError(f"the trainer settings are not usable here ({keys}): {err}") from None


def _fraction_or_none(value: int | float) -> int | float | None:
    return None if isinstance(value, float) and value == 1.0 else value


def find_resume_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest (by modification time) of checkpoints/{last,interrupted,step-last}.ckpt under `output_dir` and
    the hpc_ckpt_N.ckpt that Lightning writes there when SLURM signals a requeue (SIGUSR1)."""
    output_dir = Path(output_dir)
    ckpt_dir = output_dir / CHECKPOINT_DIR
    found = [p for p in (ckpt_dir / LAST, ckpt_dir / INTERRUPTED, ckpt_dir / "step-last.ckpt") if p.is_file()]
    found += [p for p in output_dir.glob("hpc_ckpt_*.ckpt") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def resolve_resume(resume: str | None, output_dir: str | Path) -> Path | None:
    """`None` -> fresh run; 'auto' -> the newest checkpoint in output_dir or a fresh run; else a checkpoint path."""
    if resume is None:
        return None
    if resume == "auto":
        return find_resume_checkpoint(output_dir)
    path = Path(resume)
    if path.is_dir():
        found = find_resume_checkpoint(path) or find_resume_checkpoint(path.parent)
        if found is None:
            raise DataError(path, f"no {LAST} or {INTERRUPTED} found in this folder or its checkpoints/ folder")
        return found
    if not path.is_file():
        raise DataError(path, "checkpoint to resume from not found")
    return path


@dataclass
class TrainResult:
    """Where a training run left its outputs, and how far it got."""

    output_dir: Path
    checkpoint_dir: Path
    log_dir: Path
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    best_score: float | None
    global_step: int
    epoch: int
    interrupted: bool
    metrics: dict[str, float] = field(default_factory=dict)


def check_data_paths(data: dict) -> None:
    """DataError before anything heavy starts when a configured annotation file/folder or image root is missing."""
    for split in ("train", "val"):
        spec = data.get(split)
        if not spec:
            continue
        for key in ("annotations", "image_root"):
            path = Path(spec[key])
            if not path.exists():
                raise DataError(path, f"not found (data.{split}.{key}; relative paths start from the current "
                                      f"directory {Path.cwd()})")


def build_datamodule(cfg: dict) -> pl.LightningDataModule:
    """The project's PoseDataModule for the `data:` section, wrapped so training order is seeded per epoch."""
    from stdpose.data.dataset import PoseDataModule
    from stdpose.engine.data_order import SeededDataModule

    if not cfg["data"].get("train"):
        raise ConfigError("data.train is required for training: {annotations: PATH, image_root: PATH}")
    check_data_paths(cfg["data"])
    return SeededDataModule(PoseDataModule(datamodule_config(cfg["data"])), seed=cfg["trainer"]["seed"])


def datamodule_config(data: dict) -> dict:
    """The `data:` section as PoseDataModule takes it (keys left unset are dropped so its defaults apply)."""
    return {k: v for k, v in data.items() if v is not None}


def train(cfg: dict, resume: str | None = None, output_dir: str | Path | None = None,
          extra_callbacks: list[pl.Callback] | None = None) -> TrainResult:
    """Train the experiment `cfg` (from load_config); `resume` is None, 'auto' or a checkpoint path."""
    from stdpose.engine.lit import StdposeModule

    output_dir = Path(output_dir or cfg["output_dir"]).absolute()
    cfg = {**cfg, "output_dir": str(output_dir)}
    ckpt_path = resolve_resume(resume, output_dir)
    quiet_lightning()
    pl.seed_everything(cfg["trainer"]["seed"], workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    module = StdposeModule(cfg)
    trainer = build_trainer(cfg, output_dir, extra_callbacks)
    if trainer.is_global_zero:
        atomic_write_text(output_dir / "config.yaml", dump_config(cfg))
    interrupted = False
    sigint = signal.getsignal(signal.SIGINT)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)
    except SystemExit:
        # Lightning handles Ctrl-C itself (checkpoint via InterruptCheckpoint, teardown), then calls sys.exit(1).
        if not trainer.interrupted:
            raise
        interrupted = True
    finally:
        if sigint is not None:
            signal.signal(signal.SIGINT, sigint)  # Lightning ignores further Ctrl-C while it shuts down
    ckpt_dir = output_dir / CHECKPOINT_DIR
    best = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint) and c.monitor), None)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1}
    return TrainResult(
        output_dir=output_dir,
        checkpoint_dir=ckpt_dir,
        log_dir=output_dir / "tensorboard",
        last_checkpoint=(ckpt_dir / LAST) if (ckpt_dir / LAST).exists() else None,
        best_checkpoint=Path(best.best_model_path) if best is not None and best.best_model_path else None,
        best_score=float(best.best_model_score) if best is not None and best.best_model_score is not None else None,
        global_step=int(trainer.global_step),
        epoch=int(trainer.current_epoch),
        interrupted=interrupted or trainer.interrupted,
        metrics=metrics,
    )


class _DropNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


def quiet_lightning() -> None:
    """Drop Lightning's advertising tip and a torch/Lightning version deprecation notice that users cannot act on."""
    logger = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    if not any(isinstance(f, _DropNotice) for f in logger.filters):
        logger.addFilter(_DropNotice())
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


def world_info() -> str:
    """One line naming the launcher environment Lightning will see (torchrun, SLURM or none)."""
    if "SLURM_NTASKS" in os.environ:
        return f"SLURM job {os.environ.get('SLURM_JOB_ID', '?')} with {os.environ['SLURM_NTASKS']} tasks"
    if "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ:
        return f"torchrun world of {os.environ['WORLD_SIZE']} processes"
    return "single launcher process (Lightning starts DDP workers itself when devices > 1)"
