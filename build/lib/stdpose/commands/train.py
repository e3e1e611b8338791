"""`stdpose train`: train STDPose from a YAML experiment config."""

from __future__ import annotations

import argparse

NAME = "train"
HELP = "train a propagation or estimation model from a YAML experiment config"
DESCRIPTION = """\
Train STDPose as described by a YAML experiment config (see configs/ and docs/training.md).

The config names the model (model:), the data and task (data:), the optimizer and its step schedule (optim:),
the Lightning trainer settings (trainer:) and where results go (output_dir:). Relative paths in the config are
resolved from the current directory.

Outputs, under the output directory:
  checkpoints/last.ckpt        refreshed at the end of every epoch
  checkpoints/step-last.ckpt   every N optimizer steps with --set trainer.checkpoint_every_n_steps=N
  checkpoints/best-*.ckpt      the epoch with the best validation mAP
  checkpoints/interrupted.ckpt written on Ctrl-C or SIGTERM (kill, a scheduler's stop); resume with --resume
  tensorboard/                 every loss term, learning rate, val mAP per joint group
                               (view with: tensorboard --logdir OUTPUT_DIR/tensorboard)
  config.yaml                  the full config of the run, every default filled in

examples:
  stdpose synth --preset tiny --out outputs/synthetic        # make a small synthetic data set first
  stdpose train configs/synthetic_demo.yaml
  stdpose train configs/synthetic_demo.yaml --set trainer.max_epochs=2 data.batch_size=8
  stdpose train configs/synthetic_demo.yaml --resume          # continue from the newest checkpoint
  stdpose train configs/posetrack18_propagation.yaml --set trainer.devices=4 trainer.strategy=ddp

Several GPUs: --set trainer.devices=N trainer.strategy=ddp. Several nodes: launch one process per GPU with
torchrun or srun and set trainer.num_nodes (docs/training.md has full commands).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG", help="YAML experiment file, e.g. configs/synthetic_demo.yaml")
    parser.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        nargs="+",
        action="extend",
        default=[],
        help="override config values with dotted keys, e.g. --set trainer.max_epochs=1 model.backbone=tiny "
        "data.input_size=[128,96] (values are read as YAML; may be given several times)",
    )
    parser.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        metavar="CKPT|auto",
        help="continue a stopped run at the same step, optimizer and schedule state: a checkpoint file, a run "
        "folder, or 'auto' (the default when the flag is given alone) for the newest of last.ckpt / "
        "step-last.ckpt / interrupted.ckpt in the output directory (starts fresh when there is none)",
    )
    parser.add_argument(
        "--output-dir",
        metavar="DIR",
        default=None,
        help="where checkpoints and logs go (overrides output_dir in the config)",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the full config (defaults filled in, overrides applied) and exit without training",
    )


def run(args: argparse.Namespace) -> int:
    from stdpose.engine.config import dump_config, load_config

    cfg = load_config(args.config, args.overrides)
    if args.output_dir:
        cfg["output_dir"] = str(args.output_dir)
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0

    from stdpose.engine.trainer import resolve_resume, train, world_info

    resume = resolve_resume(args.resume, cfg["output_dir"])
    _say(f"experiment: {args.config} ({cfg['data']['task']}, model {cfg['model'].get('backbone', 'base')}, "
         f"input {cfg['data']['input_size'][0]}x{cfg['data']['input_size'][1]})")
    _say(f"launcher: {world_info()}")
    if args.resume is not None:
        _say(f"resuming from {resume}" if resume else "no checkpoint to resume from: starting fresh")
    result = train(cfg, resume=str(resume) if resume else None, output_dir=cfg["output_dir"])

    _say(f"{'interrupted' if result.interrupted else 'finished'} at epoch {result.epoch}, "
         f"global step {result.global_step}")
    if result.interrupted and (result.checkpoint_dir / "interrupted.ckpt").exists():
        _say(f"saved the interrupted state: {result.checkpoint_dir / 'interrupted.ckpt'}")
        _say(f"continue with: stdpose train {args.config} --resume --output-dir {result.output_dir}")
    if result.last_checkpoint:
        _say(f"last checkpoint: {result.last_checkpoint}")
    if result.best_checkpoint:
        _say(f"best checkpoint: {result.best_checkpoint} ({cfg['checkpoint']['monitor']} {result.best_score:.2f})")
    _say(f"TensorBoard logs: {result.log_dir}  (tensorboard --logdir {result.log_dir})")
    return 130 if result.interrupted else 0


def _is_main_process() -> bool:
    """False in the extra processes of a DDP run (started by Lightning, torchrun or srun with this same command)."""
    import os

    for var in ("RANK", "SLURM_PROCID"):
        if var in os.environ:
            return os.environ[var] == "0"
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


def _say(text: str) -> None:
    """Print from the main process only."""
    if _is_main_process():
        print(f"stdpose train: {text}", flush=True)
