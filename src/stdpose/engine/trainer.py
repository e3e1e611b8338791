"""Build the Lightning Trainer from a config and run a training: devices, nodes, strategy, precision,
accumulation, checkpoints (last every epoch, every N steps if asked, best by val mAP, one on interrupt or
SIGTERM) and the TensorBoard logger.

The same config runs on a laptop CPU, one GPU, several GPUs (`trainer.devices: 4`, `trainer.strategy: ddp`) and
several nodes (`trainer.num_nodes: 2`, launched by torchrun or SLURM; Lightning reads their environment).
Output layout under `output_dir`:
    config.yaml                the resolved config of the run (every default filled in)
    checkpoints/last.ckpt      refreshed at the end of every epoch
    checkpoints/step-last.ckpt every `trainer.checkpoint_every_n_steps` optimizer steps (0 = never)
    checkpoints/best-*.ckpt    the best epoch by `checkpoint.monitor` (val/mAP)
    checkpoints/interrupted.ckpt   written on Ctrl-C, SIGTERM or a crash, at the step where it happened
    (`--resume auto` picks the newest of last / step-last / interrupted)
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
STEP_LAST = "step-last.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save through stdpose.atomic: a checkpoint file is either complete or absent (kill -9 safe); every
    load (Lightning's `--resume` included) is `weights_only=True`, so a planted pickle is refused, never run."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        with atomic_path(Path(path)) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict:
        return super().load_checkpoint(path, map_location=map_location or "cpu", weights_only=True)


class LifecycleCheckpoint(Checkpoint):
    """The resume checkpoints, written by us (Lightning 2.6's `save_last` writes last.ckpt only when a top-k save
    happens at the same step, i.e. never with save_top_k=0 until training ends):

    - `last.ckpt` at the end of every training epoch (after that epoch's validation), plus `epochNNN.ckpt` when
      `checkpoint.keep_every_epoch`; once it is written, the older `interrupted.ckpt` / `step-last.ckpt` are
      removed (they are superseded, never deleted before something newer exists);
    - `step-last.ckpt` every `trainer.checkpoint_every_n_steps` optimizer steps, saved at the end of a training
      batch (the state Lightning restores mid-epoch; the data order continues exactly, see data_order.py);
    - `interrupted.ckpt` when training stops on an exception (Ctrl-C, SIGTERM, out of memory, NaN check).
    """

    def __init__(self, dirpath: Path, every_n_steps: int = 0, keep_every_epoch: bool = False):
        super().__init__()
        self.dirpath = Path(dirpath)
        self.every_n_steps = int(every_n_steps)
        self.keep_every_epoch = bool(keep_every_epoch)
        self._last_step_saved = -1

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        step = trainer.global_step
        if self.every_n_steps and step > 0 and step % self.every_n_steps == 0 and step != self._last_step_saved:
            self._last_step_saved = step  # accumulation: several batches end at the same optimizer step
            trainer.save_checkpoint(self.dirpath / STEP_LAST, weights_only=False)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        trainer.save_checkpoint(self.dirpath / LAST, weights_only=False)
        if self.keep_every_epoch:
            trainer.save_checkpoint(self.dirpath / f"epoch{trainer.current_epoch:03d}.ckpt", weights_only=False)
        if trainer.is_global_zero:
            for stale in (INTERRUPTED, STEP_LAST):  # both older than the last.ckpt just written
                (self.dirpath / stale).unlink(missing_ok=True)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if trainer.global_step == 0 and trainer.current_epoch == 0:
            return  # nothing trained yet: keep any older checkpoint as the thing to resume
        trainer.save_checkpoint(self.dirpath / INTERRUPTED, weights_only=False)


class StopOnSigterm(pl.Callback):
    """SIGTERM (a scheduler's or `kill`'s stop; the one signal a `nohup ... &` job still gets) stops training like
    Ctrl-C: save interrupted.ckpt, then exit. The stop happens at the end of the running training batch (the state a
    mid-epoch resume continues exactly); a second SIGTERM stops at once.

    Lightning's own SIGTERM handler is replaced while training runs (it would stop mid-validation); Lightning puts
    the original handler back at teardown."""

    def __init__(self) -> None:
        self.requested = False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        import threading

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt


def resolve_precision(precision: str, accelerator: str) -> str:
    """'auto' -> bf16-mixed on a GPU that supports it, 16-mixed on other GPUs, 32-true on CPU."""
    if precision != "auto":
        return precision
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if not on_gpu:
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def checkpoint_callbacks(cfg: dict, ckpt_dir: Path) -> list[pl.Callback]:
    """last.ckpt every epoch, step-last.ckpt every N steps if configured, best by the monitored metric, interrupt."""
    ck = cfg["checkpoint"]
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
    every = cfg["trainer"].get("checkpoint_every_n_steps") or ck["every_n_train_steps"]
    lifecycle = LifecycleCheckpoint(ckpt_dir, every_n_steps=every, keep_every_epoch=ck["keep_every_epoch"])
    return [best, lifecycle, StopOnSigterm()]


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
    found = [p for p in (ckpt_dir / LAST, ckpt_dir / INTERRUPTED, ckpt_dir / STEP_LAST) if p.is_file()]
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
        check_synth_complete(Path(spec["annotations"]))


def check_synth_complete(annotations: Path) -> None:
    """DataError when `annotations` lies in a `stdpose synth` output that was stopped part-way (its
    synth_info.json says complete: false): training on it would silently use a partial data set."""
    import json

    from stdpose.data.synthetic import INFO_FILE

    for folder in [annotations, *annotations.absolute().parents][:4]:
        info = folder / INFO_FILE
        if info.is_file():
            try:
                complete = json.loads(info.read_text(encoding="utf-8")).get("complete", True)
            except (OSError, ValueError, AttributeError):
                return
            if complete is False:
                raise DataError(folder, f"this `stdpose synth` data set is incomplete (the run was stopped part-way, "
                                        f"see {INFO_FILE}); finish it with: stdpose synth --out {folder} ...")
            return


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
    if ckpt_path is not None:
        from stdpose.engine.checkpoints import check_resume_checkpoint

        check_resume_checkpoint(ckpt_path, cfg)
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
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None,
                    weights_only=True)
    except SystemExit:
        # Lightning handles Ctrl-C itself (checkpoint via LifecycleCheckpoint, teardown), then calls sys.exit(1).
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
    # Resuming into the same folder is what --resume does; mid-epoch resume is exact through data_order.py.
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    warnings.filterwarnings("ignore", message=r".*checkpoint that ended before the epoch ended.*")


def world_info() -> str:
    """One line naming the launcher environment Lightning will see (torchrun, SLURM or none)."""
    if "SLURM_NTASKS" in os.environ:
        return f"SLURM job {os.environ.get('SLURM_JOB_ID', '?')} with {os.environ['SLURM_NTASKS']} tasks"
    if "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ:
        return f"torchrun world of {os.environ['WORLD_SIZE']} processes"
    return "single launcher process (Lightning starts DDP workers itself when devices > 1)"
