"""`stdpose synth`: write a procedural synthetic dataset (PoseTrack18 JSON + JPEG frames + detector boxes)."""

from __future__ import annotations

import argparse

NAME = "synth"
HELP = "generate synthetic PoseTrack-style videos with exact ground truth"
DESCRIPTION = """\
Generate procedural multi-person videos (textured articulated people, fast non-linear motion, camera shake,
motion blur, occlusion, people entering/leaving, crowd ignore regions) with every frame labeled, written as

  OUT/annotations/{train,val}/<video>.json   PoseTrack18, one file per video
  OUT/images/{train,val}/<video>/000000.jpg  frames (file_name in the JSON is relative to OUT)
  OUT/detections/{train,val}.json            simulated person detector boxes (COCO results style)
  OUT/synth_info.json                        preset, seed, counts

The same --seed always gives identical files. Presets: tiny (a few short 192x144 videos, for tests and demos),
bench (60 train + 20 val videos of 30-60 frames at 320x240).

example:
  stdpose synth --preset tiny --out data/synth_tiny
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="tiny", help="preset name: tiny or bench (default: tiny)")
    parser.add_argument("--out", required=True, help="output folder (new, empty, or an earlier synth output)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--train-videos", type=int, default=None, help="override the preset's train video count")
    parser.add_argument("--val-videos", type=int, default=None, help="override the preset's val video count")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from stdpose.data.synthetic import generate_dataset, get_preset, scaled_preset
    from stdpose.errors import ConfigError
    from stdpose.paths import check_outputs

    if args.seed < 0:
        raise ConfigError(f"--seed must be a whole number >= 0, got {args.seed}")
    for flag, value in (("--train-videos", args.train_videos), ("--val-videos", args.val_videos)):
        if value is not None and value < 0:
            raise ConfigError(f"{flag} must be >= 0, got {value}")
    check_outputs({}, {}, folders={"--out": args.out})
    preset = get_preset(args.preset)
    changes = {}
    if args.train_videos is not None:
        changes["train_videos"] = args.train_videos
    if args.val_videos is not None:
        changes["val_videos"] = args.val_videos
    if changes:
        preset = scaled_preset(preset, **changes)
    summary = generate_dataset(args.out, preset=preset, seed=args.seed, progress=not args.quiet)
    print(f"synthetic dataset '{summary['preset']}' (seed {summary['seed']}) written to {summary['out_dir']}")
    for split, s in summary["splits"].items():
        print(f"  {split:5s}: {s['videos']:4d} videos  {s['frames']:6d} frames  {s['persons']:7d} person annotations"
              f"  {s['detections']:7d} detections")
    mib = summary["bytes"] / 2**20
    print(f"  total: {summary['videos']} videos, {summary['frames']} frames, {summary['persons']} persons, "
          f"{mib:.1f} MiB, {summary['seconds']:.1f} s")
    return 0
