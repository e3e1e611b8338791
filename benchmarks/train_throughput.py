"""Training engine efficiency: `stdpose train` (Lightning, real data pipeline) vs a bare PyTorch loop.

Usage:
    python benchmarks/train_throughput.py --threads 1                      # synthetic bench data, nano model
    python benchmarks/train_throughput.py --data outputs/synthetic_tiny --backbone tiny --steps 20

Both runs train the same model (same config, seed and initial weights) with the same optimizer and loss:
1. engine: `stdpose.engine.trainer.train` - what `stdpose train` runs: Lightning with the project's DataModule
   (JPEG decode, augmentation, heatmap rendering in `--workers` DataLoader workers), logging to TensorBoard every
   `trainer.log_every_n_steps`, and last.ckpt at the end (no validation: it is not training time);
2. bare: a plain `for batch in batches: forward, backward, step` loop over batches that were loaded into memory
   beforehand from the same DataModule (so it measures only the model's compute), run before AND after the
   engine run; its speed is the mean of the two (load drift on a shared machine is not engine overhead).
Samples/s are taken over the steps after `--warmup` (the first steps build workers and allocate memory); the
engine's data-loading time per batch is how long each training step waited for its batch (from the end of one
step to the start of the next: Lightning's own overhead between steps is counted in it too). The ratio engine /
bare is what the engine loses (target >= 0.85). Writes `--out` (markdown) with machine, threads and date.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

HERE = Path(__file__).resolve().parent


class StepTimer(pl.Callback):
    """Wall time of every training step and of the wait for its batch."""

    def __init__(self) -> None:
        self.step_seconds: list[float] = []
        self.wait_seconds: list[float] = []
        self.batch_sizes: list[int] = []
        self._start = 0.0
        self._end: float | None = None

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        now = time.perf_counter()
        if self._end is not None:
            self.wait_seconds.append(now - self._end)
        self._start = now
        self.batch_sizes.append(int(batch["frames"].shape[0]))

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._end = time.perf_counter()
        self.step_seconds.append(self._end - self._start)


def experiment(args: argparse.Namespace, output_dir: Path) -> dict:
    from stdpose.engine.config import validate_config

    data_dir = args.data
    raw = {
        "description": "benchmarks/train_throughput.py",
        "output_dir": str(output_dir),
        "model": {"backbone": args.backbone, "variant": "f", "tff_depth": 1, "stda_depth": 1},
        "data": {
            "train": {"annotations": str(data_dir / "annotations" / "train"), "image_root": str(data_dir)},
            "task": "propagation", "interval": 7, "input_size": list(args.input_size), "sigma": 1.5,
            "batch_size": args.batch_size, "num_workers": args.workers, "crop": "segment",
            "augment": {"rotation": 20.0, "rotation_prob": 0.3, "scale_range": [0.8, 1.2], "half_body": False},
        },
        "optim": {"lr": 1e-3, "warmup_steps": 10},
        "trainer": {"max_steps": args.warmup + args.steps, "max_epochs": 1000, "seed": 0, "accelerator": "cpu",
                    "devices": 1, "limit_val_batches": 0, "enable_progress_bar": False},
    }
    return validate_config(raw, source="benchmarks/train_throughput.py")


def run_engine(cfg: dict, warmup: int) -> dict:
    """`stdpose train`'s engine on `cfg`; steps/s after `warmup` steps and the per-batch data wait."""
    from stdpose.engine.trainer import train

    timer = StepTimer()
    start = time.perf_counter()
    result = train(cfg, extra_callbacks=[timer])
    total = time.perf_counter() - start
    steps = timer.step_seconds[warmup:]
    waits = timer.wait_seconds[warmup:]  # wait i is before step i + 1
    samples = sum(timer.batch_sizes[warmup:])
    seconds = sum(steps) + sum(waits)
    return {"steps": len(steps), "samples": samples, "seconds": seconds, "samples_per_s": samples / seconds,
            "step_ms": 1000 * statistics.median(steps), "data_wait_ms": 1000 * statistics.median(waits),
            "data_wait_mean_ms": 1000 * float(np.mean(waits)), "wall_seconds": total,
            "global_step": result.global_step, "last_checkpoint": str(result.last_checkpoint)}


def preload(cfg: dict, count: int) -> list[dict]:
    """`count` training batches from the engine's own DataModule, held in memory (tensors only)."""
    from stdpose.engine.trainer import build_datamodule

    dm = build_datamodule({**cfg, "data": {**cfg["data"], "num_workers": 0}})
    dm.setup("fit")
    batches: list[dict] = []
    while len(batches) < count:
        for batch in dm.train_dataloader():
            batches.append({k: v for k, v in batch.items() if torch.is_tensor(v)})
            if len(batches) == count:
                break
    return batches


def run_bare(cfg: dict, batches: list[dict], warmup: int) -> dict:
    """A plain training loop on the same model, loss and optimizer as the engine (StdposeModule's)."""
    from stdpose.engine.lit import StdposeModule

    pl.seed_everything(cfg["trainer"]["seed"], workers=True, verbose=False)
    module = StdposeModule(cfg).train()
    optimizer = module.configure_optimizers()[0][0]
    times = []
    for batch in batches:
        start = time.perf_counter()
        out = module.model(batch["frames"], batch["aux_heatmaps"])
        loss = module.criterion(out, batch["target"], batch["target_weight"])["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        float(loss.detach())
        times.append(time.perf_counter() - start)
    steps = times[warmup:]
    samples = sum(int(b["frames"].shape[0]) for b in batches[warmup:])
    return {"steps": len(steps), "samples": samples, "seconds": sum(steps), "samples_per_s": samples / sum(steps),
            "step_ms": 1000 * statistics.median(steps)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("outputs/synthetic_bench"), help="a synthetic (or PoseTrack18) "
                   "data folder with annotations/train")
    p.add_argument("--backbone", default="nano")
    p.add_argument("--input-size", type=int, nargs=2, default=[192, 144], metavar=("H", "W"))
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=1, help="DataLoader workers of the engine run")
    p.add_argument("--steps", type=int, default=40, help="timed steps of each run")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", type=Path, default=Path("outputs/train_throughput"))
    p.add_argument("--out", type=Path, default=None, help="markdown results, e.g. "
                   "benchmarks/results/train_throughput.md")
    args = p.parse_args(argv)
    if not (args.data / "annotations" / "train").exists():
        from stdpose.data.synthetic import generate_dataset

        print(f"generating the synthetic bench data set -> {args.data}", flush=True)
        generate_dataset(args.data, "bench", seed=0, progress=False)
    torch.set_num_threads(args.threads)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    if args.work.exists():
        shutil.rmtree(args.work)
    cfg = experiment(args, args.work / "engine")

    t0 = time.perf_counter()
    batches = preload(cfg, args.warmup + args.steps)
    preload_s = time.perf_counter() - t0
    # bare - engine - bare: the bare speed is the mean of the runs before and after, so a change in the load of
    # a shared machine during the run does not pass for engine overhead
    bare_before = run_bare(cfg, batches, args.warmup)
    engine = run_engine(cfg, args.warmup)
    bare_after = run_bare(cfg, batches, args.warmup)
    del batches
    bare = {"samples_per_s": 0.5 * (bare_before["samples_per_s"] + bare_after["samples_per_s"]),
            "step_ms": 0.5 * (bare_before["step_ms"] + bare_after["step_ms"])}
    ratio = engine["samples_per_s"] / bare["samples_per_s"]
    load_ms = 1000 * preload_s / (args.warmup + args.steps)
    lines = [
        "# Training throughput: `stdpose train` engine vs a bare PyTorch loop",
        "",
        f"Written by `python benchmarks/train_throughput.py {' '.join(sys.argv[1:] if argv is None else argv)}` on "
        f"{started}; CPU ({os.cpu_count()} cores, shared with other jobs), {args.threads} torch thread(s), torch "
        f"{torch.__version__}, Lightning {pl.__version__}.",
        f"Model: {args.backbone} STDPose (variant f) at {args.input_size[0]}x{args.input_size[1]}, batch "
        f"{args.batch_size}; data: {args.data} (propagation triplets, segment crops, augmentation on); "
        f"{args.steps} timed steps after {args.warmup} warm-up steps in each run.",
        "",
        "| run | samples/s | median step (ms) | data wait per batch (ms, median / mean) | DataLoader workers |",
        "| --- | --- | --- | --- | --- |",
        f"| engine (`stdpose train`: Lightning + DataModule) | {engine['samples_per_s']:.2f} | "
        f"{engine['step_ms']:.0f} | {engine['data_wait_ms']:.0f} / {engine['data_wait_mean_ms']:.0f} | "
        f"{args.workers} |",
        f"| bare loop on pre-loaded tensors (mean of the runs before and after: "
        f"{bare_before['samples_per_s']:.2f}, {bare_after['samples_per_s']:.2f}) | {bare['samples_per_s']:.2f} | "
        f"{bare['step_ms']:.0f} | 0 | - |",
        "",
        f"Ratio engine / bare = **{ratio:.3f}** (target >= 0.85). Loading one batch in the main process "
        f"(decode + augmentation + heatmaps, no workers) took {load_ms:.0f} ms.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        from stdpose.atomic import atomic_write_text

        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, text)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
