"""What `stdpose predict`'s switches do to the PoseTrack mAP and the time, measured on synthetic val videos.

Rows (one `stdpose predict ... --eval` each, the same checkpoint and boxes): simulated detector boxes at the default
--box-threshold 0.2; + --flip-test; + --oks-nms 0.9; + both; --box-threshold 0 and 0.5; ground-truth boxes with
and without the flip test. Differences between rows are what this measures: the small CPU model's absolute mAP is
low. Writes benchmarks/results/predict_options.md (machine, threads, date and the commands inside).

Usage:
    python benchmarks/predict_options.py                         # bench preset, train 8 epochs, all rows
    python benchmarks/predict_options.py --checkpoint est.ckpt   # use a trained estimation checkpoint instead
    python benchmarks/predict_options.py --preset tiny --epochs 2 --out /tmp/results   # smoke run

The model: configs/synthetic_estimation.yaml (nano ViT, 128x96, variant f, neighbours t-1 and t+1) trained on the
preset's train split for --epochs epochs, validated once at the end; data from `stdpose synth --preset P --seed 0`
unless --data points at an existing folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "synthetic_estimation.yaml"
GROUPS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean")
# name, box source, extra predict flags
ROWS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("detections, threshold 0.2", "det", ()),
    ("+ --flip-test", "det", ("--flip-test",)),
    ("+ --oks-nms 0.9", "det", ("--oks-nms", "0.9")),
    ("+ both", "det", ("--flip-test", "--oks-nms", "0.9")),
    ("--box-threshold 0", "det", ("--box-threshold", "0")),
    ("--box-threshold 0.5", "det", ("--box-threshold", "0.5")),
    ("ground-truth boxes", "gt", ()),
    ("ground-truth boxes, flip test", "gt", ("--flip-test",)),
)
BOXES_LINE = re.compile(r"boxes: (\d+) given, (\d+) below .*?, (\d+) removed by OKS-NMS; ([\d.]+) s")


def stdpose(*args: str, log: Path) -> str:
    """Run the CLI in this checkout (PYTHONPATH=src); its stdout+stderr go to `log`; exit on failure."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-m", "stdpose", *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        sys.exit(f"predict_options: `stdpose {' '.join(args)}` failed (exit {done.returncode}); see {log}")
    return done.stdout


def train(data: Path, work: Path, epochs: int) -> Path:
    """Train the estimation config on `data`'s train split; the checkpoint path (reused when present and trained
    the same number of epochs on the same data, refused when not)."""
    from stdpose.engine.checkpoints import read_checkpoint

    ckpt = work / "train" / "checkpoints" / "last.ckpt"
    if ckpt.exists():
        saved = read_checkpoint(ckpt)["hyper_parameters"]["config"]
        same = (saved["trainer"]["max_epochs"] == epochs
                and str(saved["data"]["train"]["annotations"]) == f"{data}/annotations/train")
        if not same:
            sys.exit(f"predict_options: {ckpt} was trained with other settings ({saved['trainer']['max_epochs']} "
                     f"epochs on {saved['data']['train']['annotations']}); remove {work / 'train'} or give --work")
        return ckpt
    stdpose("train", str(CONFIG), "--set",
            f"data.train={{annotations: {data}/annotations/train, image_root: {data}}}",
            f"data.val={{annotations: {data}/annotations/val, image_root: {data}}}",
            f"output_dir={work / 'train'}", f"trainer.max_epochs={epochs}", f"trainer.check_val_every_n_epoch={epochs}",
            f"optim.milestones=[{max(1, epochs * 2 // 3)}, {max(1, epochs * 11 // 12)}]",
            "trainer.enable_progress_bar=false", log=work / "train.log")
    return ckpt


def run_row(name: str, source: str, flags: tuple[str, ...], data: Path, ckpt: Path, work: Path) -> dict:
    """One predict run: its boxes summary, seconds and the mAP groups from the written <out>.map.json."""
    key = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    out = work / f"pred_{key}"
    boxes = ("--boxes", str(data / "detections" / "val.json")) if source == "det" else (
        "--gt-boxes", str(data / "annotations" / "val"))
    args = ("predict", "--video", str(data / "annotations" / "val"), "--image-root", str(data), *boxes,
            "--checkpoint", str(ckpt), "--out", str(out), "--eval", str(data / "annotations" / "val"),
            "--labeled-only", "--no-progress", *flags)
    text = stdpose(*args, log=work / f"{key}.log")
    m = BOXES_LINE.search(text)
    if m is None:
        sys.exit(f"predict_options: no boxes summary in the output of row {name!r} ({work / f'{key}.log'})")
    groups = json.loads(out.with_name(out.name + ".map.json").read_text())["groups"]
    given, below, removed, seconds = int(m[1]), int(m[2]), int(m[3]), float(m[4])
    return {"name": name, "boxes": given - below, "given": given, "removed": removed, "seconds": seconds,
            "groups": groups, "command": "stdpose " + " ".join(a if " " not in a else repr(a) for a in args)}


def report(rows: list[dict], header: str) -> str:
    base = rows[0]["groups"]["Mean"]
    lines = [header, "", "| run | boxes used | " + " | ".join(GROUPS) + " | vs first row | time |",
             "|" + " --- |" * (len(GROUPS) + 4)]
    for r in rows:
        used = f"{r['boxes']} of {r['given']}" + (f" ({r['removed']} removed)" if r["removed"] else "")
        cells = [f"{r['groups'][g]:.1f}" for g in GROUPS]
        lines.append(f"| {r['name']} | {used} | " + " | ".join(cells) +
                     f" | {r['groups']['Mean'] - base:+.1f} | {r['seconds']:.1f} s |")
    lines += ["", "Commands (one per row, in order):", "", "```"] + [r["command"] for r in rows] + ["```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(REPO / "src"))
    from stdpose.atomic import atomic_write_json, atomic_write_text

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="bench", help="synthetic preset (default bench)")
    p.add_argument("--data", type=Path, default=None, help="synthetic data folder (default outputs/synthetic_<preset>)")
    p.add_argument("--work", type=Path, default=Path("outputs/predict_options"), help="model, predictions, logs")
    p.add_argument("--checkpoint", type=Path, default=None, help="estimation checkpoint (default: train one)")
    p.add_argument("--epochs", type=int, default=8, help="training epochs when no --checkpoint is given")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results", help="results folder")
    p.add_argument("--threads", type=int, default=1, help="torch threads (OMP_NUM_THREADS) of every run")
    args = p.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    start = time.time()
    data = (args.data or Path(f"outputs/synthetic_{args.preset}")).resolve()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    if not (data / "synth_info.json").exists():
        stdpose("synth", "--preset", args.preset, "--seed", "0", "--out", str(data), log=work / "synth.log")
    ckpt = args.checkpoint or train(data, work, args.epochs)
    rows = []
    for name, source, flags in ROWS:
        rows.append(run_row(name, source, flags, data, ckpt, work))
        print(f"{name:32s} Mean {rows[-1]['groups']['Mean']:5.1f}  {rows[-1]['seconds']:.1f} s", flush=True)
    info = json.loads((data / "synth_info.json").read_text())["splits"]["val"]
    model = (f"checkpoint {args.checkpoint}" if args.checkpoint else
             f"configs/synthetic_estimation.yaml trained {args.epochs} epochs on the train split")
    cli = " ".join(argv if argv is not None else sys.argv[1:])
    header = (f"# `stdpose predict` switches on the synthetic `{args.preset}` val videos\n\n"
              f"Written by `python benchmarks/predict_options.py {cli}`"
              f" on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.processor() or platform.machine()}"
              f" CPU, {args.threads} torch thread(s); wall time {(time.time() - start) / 60:.1f} min.\n"
              f"Data: {info['videos']} val videos, {info['frames']} frames, {info['persons']} persons, simulated "
              f"detector boxes (detections/val.json); labeled frames only. Model: {model}. Time: predict's own "
              f"figure (model and boxes, decode included), one run per row on a shared machine.")
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "predict_options.md"
    atomic_write_text(target, report(rows, header))
    atomic_write_json(args.out / "predict_options.json", rows, indent=1)
    print(f"-> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
