"""`stdpose demo`: the whole product on built-in synthetic data, in a few minutes on a CPU."""

from __future__ import annotations

import argparse
import time

NAME = "demo"
HELP = "generate synthetic videos, train a small model, propagate labels (T=7) and compare with baselines"
DESCRIPTION = """\
Run the main job end to end on built-in synthetic videos (no data to download):
  1. generate PoseTrack-style synthetic videos (OUT/synthetic),
  2. train a small STDPose propagation model on them (OUT/train; configs/synthetic_demo.yaml),
  3. keep the labels of every T-th frame of held-out videos, propagate them to the other frames with
     STDPose and with the nearest-label, linear-interpolation and Farneback-flow baselines,
  4. print the PoseTrack mAP table of every method and write a chart, an overlay video and the numbers
     (OUT/demo).
A rerun skips what is complete: the videos (same preset and seed), training (resumed from its last checkpoint;
a finished run ends at once) and propagation + evaluation (same checkpoint file, interval and data, and every
output still there); so a second run is quick and an interrupted run continues.

example:
  stdpose demo --out outputs
  stdpose demo --out /tmp/quick --preset tiny --set trainer.max_epochs=1   # a smoke test in about a minute
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="outputs", help="folder for everything the demo writes (default: outputs)")
    parser.add_argument("--config", default="configs/synthetic_demo.yaml",
                        help="experiment config to train (default: configs/synthetic_demo.yaml)")
    parser.add_argument("--interval", type=int, default=7, help="label interval T (default 7, as the paper)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic videos (default 0)")
    parser.add_argument("--preset", default="demo",
                        help="synthetic data preset: demo (default) or a `stdpose synth` preset such as tiny")
    parser.add_argument("--set", dest="overrides", metavar="KEY=VALUE", nargs="+", action="extend", default=[],
                        help="config overrides for training, e.g. --set trainer.max_epochs=2")


def run(args: argparse.Namespace) -> int:
    from stdpose.engine.demo import run_demo
    from stdpose.errors import ConfigError

    if args.interval < 2:
        raise ConfigError(f"--interval must be at least 2, got {args.interval}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be a whole number >= 0, got {args.seed}")
    start = time.perf_counter()
    result = run_demo(args.out, args.config, args.overrides, interval=args.interval, seed=args.seed,
                      preset=args.preset)
    print()
    print(result.table)
    print()
    stages = ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())
    print(f"stdpose demo: finished in {time.perf_counter() - start:.0f} s ({stages})")
    for what, path in result.files.items():
        print(f"  {what:8s} {path}")
    return 0
