"""Memory and speed of `stdpose propagate` / `stdpose predict` on a real video of growing length.

Usage:
    python benchmarks/long_video.py --lengths 100 795 --out benchmarks/results/memory.md

On /work/shared/data/opencv_samples/vtest.avi (795 frames, 768x576): for each length N it writes a label file for
frames 0..N-1 and runs the CLI under `/usr/bin/time -v`, reading "Maximum resident set size":
- propagate: `stdpose propagate --method stdpose`, labels every 7th frame;
- predict: `stdpose predict --gt-boxes`, a box for every person on every frame.
The labels are the hand labels of frames 0, 7, 14, 21 (/work/shared/data/vtest_hand) repeated cyclically (frame f
gets the poses of hand frame 7 * ((f // 7) % 4)), so the persons and tracks are real but the poses are not
correct beyond frame 21: this measures memory and time, not accuracy. The models are UNTRAINED `stdpose train`-
style checkpoints (written here; `--backbone`, default nano at 192x144): timing and memory do not depend on the
weights. Peak RSS of the long and the short video should be within 1.3x (streamed frames, bounded caches).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
# ../shared/data next to the checkout (or next to the folder of git worktrees the checkout is in)
SHARED = next((p for p in (REPO.parent / "shared" / "data", REPO.parents[1] / "shared" / "data") if p.is_dir()),
              REPO.parent / "shared" / "data")
VIDEO = SHARED / "opencv_samples" / "vtest.avi"
HAND = SHARED / "vtest_hand" / "vtest_keyframes_pt18.json"


def label_file(n: int, every: int, path: Path) -> int:
    """Labels for frames 0..n-1 of vtest (every `every`-th labeled, plus the last) from the cycled hand labels."""
    from stdpose.data.formats import read_annotations, write_posetrack18
    from stdpose.data.records import Frame

    hand = read_annotations(HAND)[0]
    by_index = {int(re.findall(r"\d+", f.file_name)[-1]): f for f in hand.frames if f.is_labeled}
    sources = sorted(by_index)  # 0, 7, 14, 21
    template = by_index[sources[0]]
    frames = []
    labeled = sorted(set(range(0, n, every)) | {n - 1})
    for i in range(n):
        src = by_index[sources[(i // 7) % len(sources)]]
        persons = [dataclasses.replace(p) for p in src.persons] if i in labeled else []
        frames.append(Frame(index=i, file_name=f"images/vtest/{i:06d}.jpg", persons=persons, is_labeled=i in labeled,
                            image_id=10000010000 + i, frame_id=10000010000 + i, width=template.width,
                            height=template.height))
    write_posetrack18(dataclasses.replace(hand, frames=frames), path)
    return len(labeled)


def checkpoint(task: str, backbone: str, input_size: list[int], path: Path, depths: tuple[int, int] = (1, 1)
               ) -> None:
    """An untrained `stdpose train`-compatible checkpoint for `task` (propagation: segment crops); `depths` are
    (tff_depth, stda_depth)."""
    from stdpose.atomic import atomic_path
    from stdpose.engine.config import validate_config
    from stdpose.model import build_model

    cfg = validate_config({"model": {"backbone": backbone, "tff_depth": depths[0], "stda_depth": depths[1]},
                           "data": {"task": task, "crop": "segment" if task == "propagation" else "key",
                                    "input_size": input_size}}, source="benchmarks/long_video.py")
    torch.manual_seed(0)
    model = build_model({**cfg["model"]})
    state = {"model." + k: v for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state, "hyper_parameters": {"config": cfg}}, tmp)


def timed_run(args: list[str], threads: int) -> dict:
    """Run `python -m stdpose.cli ARGS` under /usr/bin/time -v: peak RSS (MiB), wall seconds, exit status."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": str(threads)}
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "stdpose.cli", *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    if proc.returncode != 0 or rss is None:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    # propagate prints its propagation time (decoding included, no start-up or writing):
    # "backbone passes: N person crops for P propagated pose(s) in S s"
    model = re.search(r"for (\d+) propagated pose\(s\) in ([\d.]+) s", proc.stdout)
    return {"rss_mib": int(rss.group(1)) / 1024, "seconds": wall,
            "poses": int(model.group(1)) if model else None, "model_seconds": float(model.group(2)) if model else None}


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _rate(count: int | None, seconds: float | None) -> str:
    return "-" if count is None or not seconds else f"{count / seconds:.2f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[100, 795])
    p.add_argument("--backbone", default="nano")
    p.add_argument("--input-size", type=int, nargs=2, default=[192, 144])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--depths", type=int, nargs=2, default=[1, 1], metavar=("TFF", "STDA"),
                   help="tff_depth and stda_depth of the untrained models (the paper-size model: 2 2)")
    p.add_argument("--work", type=Path, default=Path("outputs/long_video"))
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if not VIDEO.is_file() or not HAND.is_file():
        raise SystemExit(f"needs {VIDEO} and {HAND} (the shared sample data)")
    if not Path("/usr/bin/time").is_file():
        raise SystemExit("needs /usr/bin/time (GNU time) for the peak RSS")
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    prop_ckpt, est_ckpt = args.work / "propagation.ckpt", args.work / "estimation.ckpt"
    checkpoint("propagation", args.backbone, args.input_size, prop_ckpt, tuple(args.depths))
    checkpoint("estimation", args.backbone, args.input_size, est_ckpt, tuple(args.depths))
    rows = []
    for n in args.lengths:
        sparse, dense = args.work / f"labels_{n}_every7.json", args.work / f"labels_{n}_all.json"
        kept = label_file(n, 7, sparse)
        label_file(n, 1, dense)
        prop = timed_run(["propagate", "--video", str(VIDEO), "--labels", str(sparse), "--checkpoint",
                          str(prop_ckpt), "--out", str(args.work / f"propagated_{n}.json")], args.threads)
        pred = timed_run(["predict", "--video", str(VIDEO), "--checkpoint", str(est_ckpt), "--gt-boxes", str(dense),
                          "--out", str(args.work / f"predicted_{n}.json")], args.threads)
        rows.append((n, kept, prop, pred))
        print(f"{n} frames: propagate peak RSS {prop['rss_mib']:.0f} MiB in {prop['seconds']:.0f} s "
              f"({(n - kept) / prop['seconds']:.2f} propagated frames/s end to end); predict peak RSS "
              f"{pred['rss_mib']:.0f} MiB in {pred['seconds']:.0f} s", flush=True)
    short, long = rows[0], rows[-1]
    lines = [
        "# Peak memory on long videos",
        "",
        f"Written by `python benchmarks/long_video.py {' '.join(sys.argv[1:] if argv is None else argv)}` on "
        f"{started}; CPU ({os.cpu_count()} cores, shared), {args.threads} torch thread(s) (OMP_NUM_THREADS), torch "
        f"{torch.__version__}. Video: vtest.avi (768x576); labels: the vtest hand labels cycled (timing and memory "
        f"only); models: untrained {args.backbone} at {args.input_size[0]}x{args.input_size[1]}, tff/stda depth "
        f"{args.depths[0]}/{args.depths[1]}. Propagate: labels every 7th frame, `--method stdpose`; 'model s' is the "
        "time propagate itself reports for its propagation (segment plan, frame decoding, crops, backbone and "
        "temporal passes; no start-up, model load or writing); "
        "frames/s counts unlabeled frames (every person on them), poses/s the propagated person poses.",
        "",
        "| frames | labeled | propagate peak RSS (MiB) | propagate s | model s | poses | frames/s (model) | "
        "poses/s (model) | predict peak RSS (MiB) | predict s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *(f"| {n} | {k} | {a['rss_mib']:.0f} | {a['seconds']:.0f} | {_num(a['model_seconds'], 1)} | {a['poses']} | "
          f"{_rate(n - k, a['model_seconds'])} | {_rate(a['poses'], a['model_seconds'])} | {b['rss_mib']:.0f} | "
          f"{b['seconds']:.0f} |" for n, k, a, b in rows),
        "",
    ]
    if len(rows) > 1:
        ratio_prop = long[2]["rss_mib"] / short[2]["rss_mib"]
        ratio_pred = long[3]["rss_mib"] / short[3]["rss_mib"]
        lines += [f"Peak RSS {long[0]} / {short[0]} frames: propagate {ratio_prop:.2f}x, predict {ratio_pred:.2f}x "
                  "(target <= 1.3x).", ""]
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        from stdpose.atomic import atomic_write_text

        atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
