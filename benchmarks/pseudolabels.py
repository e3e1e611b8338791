"""Paper Table 3 on the synthetic `bench` videos: estimation mAP when trained on labels every T (7, 4, 2) plus
propagated pseudo-labels, versus the same labels alone, versus all labels - printed and written to
benchmarks/results/pseudolabels.{md,json,png}.

Usage:
    python benchmarks/pseudolabels.py                 # full run (bench preset; about 40 min on one CPU core)
    python benchmarks/pseudolabels.py --quick         # smoke run: tiny preset, a few steps, results under --work
    python benchmarks/pseudolabels.py --steps 400 --intervals 7 2

What it does:
1. makes the synthetic data set (preset bench, seed 0; shared with benchmarks/propagation.py) unless it exists;
2. for each condition runs the `stdpose pseudolabel` pipeline (`stdpose.engine.pseudolabel`) in its own folder under
   --work: "all labels" (every label of the 30-frame window, estimation_data: labels, T = 1), "T labels only"
   (estimation_data: labels) and "T + pseudo-labels" (propagation model -> pseudo-labels -> estimation);
   completed stages are reused on a re-run (stage resume), so an interrupted benchmark continues where it stopped;
3. evaluates every final estimation model on the val videos with ground-truth boxes (`Estimator`, no flip test)
   and the PoseTrack mAP (`evaluate_posetrack`); pseudo-label quality is the pipeline's own measurement (mAP of
   the pseudo-labels against the dropped human labels of the training windows).

Pretraining (the analogue of the paper's COCO-pretrained ViTPose-B): a single-frame pose model (variant a: ViT +
head) is trained on OTHER synthetic videos (the same preset with seed + 1, never the benchmark's train or val
videos); its backbone and deconvolution layers initialise every model of every condition, the final 1x1 layer and
the temporal modules start fresh (`model.pretrained`). --pretrain-steps 0 trains every model from scratch.

Training (benchmark-sized, the same for every condition so only the labels differ): nano ViT at 96x72, the same
number of optimizer steps for every model (--steps, --prop-steps), batch 16, AdamW lr 1e-3 with 100 warmup steps
and no decay (the engine's milestones are in epochs, whose length differs between conditions), mild augmentation
(scale 0.8-1.2, rotation +-20 deg with p 0.3, flip; no half-body). Propagation models use segment crops. No
validation during training (the final evaluation is done here); the last checkpoint is used.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from stdpose.atomic import atomic_path, atomic_write_json, atomic_write_text

log = logging.getLogger("benchmarks.pseudolabels")

PAPER_TABLE3 = {7: 82.4, 4: 84.3, 2: 85.2, 1: 87.4}  # PoseTrack17 val Mean mAP (T=1: all labels, Table 2)
AUGMENT = "{rotation: 20.0, rotation_prob: 0.3, scale_range: [0.8, 1.2], half_body: false}"
WARMUP = 100
GROUPS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean")
REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------ conditions


def conditions(intervals: list[int]) -> list[dict[str, Any]]:
    """All labels first, then for each T: labels only, labels + pseudo-labels."""
    out = [{"key": "all", "name": "all labels", "interval": 1, "data": "labels"}]
    for t in intervals:
        out.append({"key": f"T{t}_labels", "name": f"T={t} labels only", "interval": t, "data": "labels"})
        out.append({"key": f"T{t}_pseudo", "name": f"T={t} labels + pseudo-labels", "interval": t,
                    "data": "pseudolabels"})
    return out


def overrides(args: argparse.Namespace, data_dir: Path, cond: dict[str, Any]) -> list[str]:
    """`--set` items that turn configs/pseudolabel_synthetic.yaml into this benchmark condition."""
    h, w = args.input_size
    items = [
        f"data.train={{annotations: {data_dir}/annotations/train, image_root: {data_dir}}}",
        f"data.val={{annotations: {data_dir}/annotations/val, image_root: {data_dir}}}",
        f"pseudolabel.interval={cond['interval']}",
        f"pseudolabel.middle_frames={args.middle_frames}",
        f"pseudolabel.estimation_data={cond['data']}",
        "pseudolabel.checkpoint=last",
        "pseudolabel.device=cpu",
        f"pseudolabel.progress={'false' if args.no_progress else 'true'}",
    ]
    for stage, steps in (("propagation", args.prop_steps), ("estimation", args.steps)):
        items += [
            f"{stage}.model.backbone={args.backbone}",
            f"{stage}.model.tff_depth=1",
            f"{stage}.model.stda_depth=1",
            f"{stage}.data.input_size=[{h},{w}]",
            f"{stage}.data.sigma={args.sigma}",
            f"{stage}.data.batch_size={args.batch_size}",
            f"{stage}.data.num_workers=0",
            f"{stage}.data.augment={AUGMENT}",
            f"{stage}.optim.lr={args.lr}",
            f"{stage}.optim.warmup_steps={min(WARMUP, max(1, steps // 4))}",
            f"{stage}.optim.milestones=[100000]",
            f"{stage}.trainer.max_steps={steps}",
            f"{stage}.trainer.max_epochs=100000",
            f"{stage}.trainer.limit_val_batches=0",
            f"{stage}.trainer.accelerator=cpu",
            f"{stage}.trainer.devices=1",
            f"{stage}.trainer.seed={args.seed}",
            f"{stage}.trainer.enable_progress_bar={'false' if args.no_progress else 'true'}",
            f"{stage}.trainer.log_every_n_steps=20",
        ]
    items.append("propagation.data.crop=segment")
    if args.pretrained is not None:
        items += [f"{stage}.model.pretrained={args.pretrained}" for stage in ("propagation", "estimation")]
    return items


# ------------------------------------------------------------------------------------------------ steps


def ensure_data(preset: str, seed: int, data_dir: Path, progress: bool) -> Path:
    from stdpose.data.synthetic import generate_dataset

    if not (data_dir / "synth_info.json").exists():
        log.info("generating the %s synthetic data set in %s", preset, data_dir)
        generate_dataset(data_dir, preset, seed=seed, progress=progress)
    return data_dir


def pretrain(args: argparse.Namespace) -> Path | None:
    """Backbone + deconv layers of a single-frame model trained on other synthetic videos (see the module doc);
    reused when a previous run left one with the same settings. None with --pretrain-steps 0."""
    import torch

    from stdpose.engine.config import load_config
    from stdpose.engine.trainer import train

    if args.pretrain_steps <= 0:
        return None
    folder = args.work / "pretrain"
    target = folder / "backbone_head.pth"
    settings = {"preset": args.preset, "seed": args.seed + 1, "steps": args.pretrain_steps,
                "backbone": args.backbone, "input_size": list(args.input_size), "sigma": args.sigma,
                "batch_size": args.batch_size, "lr": args.lr}
    stamp = folder / "settings.json"
    if target.exists() and stamp.exists() and json.loads(stamp.read_text()) == settings:
        return target
    data_dir = ensure_data(args.preset, args.seed + 1, args.pretrain_data.resolve(), not args.no_progress)
    h, w = args.input_size
    overrides = [
        f"data.train={{annotations: {data_dir}/annotations/train, image_root: {data_dir}}}",
        f"data.val={{annotations: {data_dir}/annotations/val, image_root: {data_dir}}}",
        f"model.backbone={args.backbone}", "model.variant=a", f"data.input_size=[{h},{w}]",
        f"data.sigma={args.sigma}", f"data.batch_size={args.batch_size}", "data.num_workers=0",
        f"data.augment={AUGMENT}", f"optim.lr={args.lr}", f"optim.warmup_steps={min(WARMUP, args.pretrain_steps)}",
        "optim.milestones=[100000]", f"trainer.max_steps={args.pretrain_steps}", "trainer.max_epochs=100000",
        "trainer.limit_val_batches=0", "trainer.accelerator=cpu", "trainer.devices=1", f"trainer.seed={args.seed}",
        f"trainer.enable_progress_bar={'false' if args.no_progress else 'true'}", "trainer.log_every_n_steps=20",
    ]
    cfg = load_config(REPO / "configs" / "synthetic_estimation.yaml", overrides)
    print(f"== pretraining a single-frame model on {data_dir} ({args.pretrain_steps} steps)", flush=True)
    start = time.perf_counter()
    result = train(cfg, output_dir=folder / "run")
    ckpt = torch.load(result.last_checkpoint, map_location="cpu", weights_only=True)
    # backbone + deconv layers; the final 1x1 layer would be read as COCO-ordered and reshuffled by the loader
    weights = {k[len("model."):]: v for k, v in ckpt["state_dict"].items()
               if k.startswith(("model.backbone.", "model.head.")) and not k.startswith("model.head.final_layer.")}
    with atomic_path(target) as tmp:
        torch.save(weights, tmp)
    atomic_write_json(stamp, settings, indent=1)
    atomic_write_json(folder / "timing.json", {"seconds": round(time.perf_counter() - start, 1)}, indent=1)
    return target


def run_condition(args: argparse.Namespace, data_dir: Path, cond: dict[str, Any]) -> dict[str, Any]:
    """Run (or resume) the pipeline of one condition; returns its summary plus the wall time of this call."""
    from stdpose.engine.pseudolabel import PseudoLabelPipeline, load_pseudolabel_config

    folder = args.work / cond["key"]
    cfg = load_pseudolabel_config(REPO / "configs" / "pseudolabel_synthetic.yaml", overrides(args, data_dir, cond),
                                  output_dir=folder)
    start = time.perf_counter()
    result = PseudoLabelPipeline(cfg, say=lambda text: print(f"  [{cond['key']}] {text}", flush=True)).run()
    seconds = time.perf_counter() - start
    timing_file = folder / "timing.json"  # wall time of the calls that ran stages (a resumed run adds up)
    timing = json.loads(timing_file.read_text()) if timing_file.exists() else {"total_seconds": 0.0, "runs": []}
    if result.stages_run:
        timing["runs"].append({"stages": result.stages_run, "seconds": round(seconds, 1)})
        timing["total_seconds"] = round(timing["total_seconds"] + seconds, 1)
        atomic_write_json(timing_file, timing, indent=1)
    return {**result.summary, "seconds": timing["total_seconds"]}


def evaluate(checkpoint: str, data_dir: Path, max_videos: int | None, progress: bool) -> dict[str, Any]:
    """PoseTrack mAP of an estimation checkpoint on the val videos with ground-truth boxes."""
    from stdpose.data.formats import read_annotations
    from stdpose.data.video import VideoFrames
    from stdpose.engine.predict import Estimator, boxes_from_labels
    from stdpose.eval.posetrack_map import evaluate_posetrack

    videos = read_annotations(data_dir / "annotations" / "val")
    if max_videos:
        videos = videos[:max_videos]
    est = Estimator.from_checkpoint(checkpoint, batch_size=64, progress=progress)
    start = time.perf_counter()
    preds = [est.predict_video(v, VideoFrames(v, data_dir), boxes_from_labels(v)) for v in videos]
    result = evaluate_posetrack(videos, preds, strict=False)
    return {"groups": result.to_dict()["groups"], "videos": len(videos), "images": result.num_images,
            "seconds": round(time.perf_counter() - start, 1)}


def evaluate_cached(folder: Path, checkpoint: str, data_dir: Path, max_videos: int | None, progress: bool) -> dict:
    """`evaluate`, reusing a previous result for the same checkpoint file (path, size, mtime) and val subset."""
    stat = Path(checkpoint).stat()
    key = {"checkpoint": checkpoint, "size": stat.st_size, "mtime": stat.st_mtime, "max_videos": max_videos,
           "data": str(data_dir)}
    cache = folder / "eval.json"
    if cache.exists():
        stored = json.loads(cache.read_text())
        if stored.get("key") == key:
            return stored["result"]
    result = evaluate(checkpoint, data_dir, max_videos, progress)
    atomic_write_json(cache, {"key": key, "result": result}, indent=1)
    return result


# ------------------------------------------------------------------------------------------------ report


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace, meta: dict[str, Any]) -> str:
    lines = [
        "# Pseudo-label training on synthetic videos (paper Table 3 analogue)",
        "",
        f"Data: synthetic `{args.preset}` preset (seed {args.seed}); each training video contributes its "
        f"{args.middle_frames} middle labeled frames, of which every T-th keeps its label. Models: {args.backbone} "
        f"ViT at {args.input_size[0]}x{args.input_size[1]}, {args.steps} estimation steps and {args.prop_steps} "
        f"propagation steps (batch {args.batch_size}) for every model, "
        + (f"initialised from a single-frame model pretrained for {args.pretrain_steps} steps on other synthetic "
           f"videos (seed {args.seed + 1}; the analogue of the paper's COCO-pretrained ViTPose-B)"
           if args.pretrain_steps > 0 else "trained from scratch")
        + ". Evaluation: PoseTrack mAP on "
        f"{meta['val_videos']} val videos ({meta['val_images']} frames) with ground-truth boxes, no flip test.",
        f"Produced by `python benchmarks/pseudolabels.py{' --quick' if args.quick else ''}` on {meta['machine']}: "
        f"{meta['compute_minutes']:.1f} min of training and evaluation (summed over resumed runs: pretraining "
        f"{meta['pretrain_minutes']:.1f}, the seven conditions {meta['conditions_minutes']:.1f}, evaluation "
        f"{meta['eval_minutes']:.1f}), plus {meta['data_minutes']:.1f} min to generate the two synthetic sets.",
        "",
        "| training labels | labeled frames | pseudo-label mAP (train) | " + " | ".join(GROUPS)
        + " | vs labels only | paper (PT17) |",
        "|" + "---|" * (len(GROUPS) + 5),
    ]
    by_key = {r["key"]: r for r in rows}
    for r in rows:
        groups = r["eval"]["groups"]
        delta = ""
        if r["data"] == "pseudolabels":
            base = by_key.get(f"T{r['interval']}_labels")
            if base is not None:
                delta = f"{groups['Mean'] - base['eval']['groups']['Mean']:+.1f}"
        paper = PAPER_TABLE3.get(r["interval"]) if r["data"] == "pseudolabels" or r["key"] == "all" else None
        lines.append(
            f"| {r['name']} | {100 * r['labeled_fraction']:.1f}% | {_fmt(r.get('pseudo_quality'))} | "
            + " | ".join(_fmt(groups.get(g)) for g in GROUPS)
            + f" | {delta} | {_fmt(paper)} |"
        )
    lines += [
        "",
        "Labeled frames: the share of the label-window frames whose human label is kept (paper: 16.7%, 26.7%, 50% "
        "for T = 7, 4, 2 of 30 frames). Pseudo-label mAP: the propagated pseudo-labels scored against the human "
        "labels that were dropped from the training windows. Paper column: PoseTrack17 val Mean mAP of STDPose "
        "(ViT-B) trained with labels + pseudo-labels (Table 3) and with all labels (Table 2) - a different data set "
        "and model scale, shown for the trend only.",
    ]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], intervals: list[int], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    by_key = {r["key"]: r for r in rows}
    fig = Figure(figsize=(6.4, 3.8), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    x = list(range(len(intervals)))
    only = [by_key[f"T{t}_labels"]["eval"]["groups"]["Mean"] for t in intervals]
    pseudo = [by_key[f"T{t}_pseudo"]["eval"]["groups"]["Mean"] for t in intervals]
    ax.bar([i - 0.2 for i in x], only, width=0.4, label="labels every T only", color="#9aa7b8")
    ax.bar([i + 0.2 for i in x], pseudo, width=0.4, label="labels every T + pseudo-labels", color="#2f6fb0")
    ax.axhline(by_key["all"]["eval"]["groups"]["Mean"], color="#c0392b", linestyle="--", label="all labels")
    for i, (a, b) in enumerate(zip(only, pseudo)):
        ax.text(i - 0.2, a, f"{a:.1f}", ha="center", va="bottom", fontsize=8)
        ax.text(i + 0.2, b, f"{b:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x)
    ax.set_xticklabels([f"T={t} ({100 * by_key[f'T{t}_labels']['labeled_fraction']:.0f}%)" for t in intervals])
    ax.set_ylabel("val Mean mAP")
    ax.set_title("Estimation trained with pseudo-labels (synthetic)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


# ------------------------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: tiny preset, a few steps, T = 4 only")
    p.add_argument("--preset", default=None, help="synthetic preset (default bench; tiny with --quick)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", type=Path, default=None, help="data folder (default outputs/synthetic_<preset>)")
    p.add_argument("--work", type=Path, default=None, help="pipeline folders (default outputs/bench_pseudolabels)")
    p.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results; "
                   "--quick: <work>/results)")
    p.add_argument("--intervals", type=int, nargs="+", default=None, help="T values (default 7 4 2)")
    p.add_argument("--middle-frames", type=int, default=30, help="label window per training video (paper: 30)")
    p.add_argument("--backbone", default="nano")
    p.add_argument("--input-size", type=int, nargs=2, default=[96, 72], metavar=("H", "W"))
    p.add_argument("--sigma", type=float, default=1.5)
    p.add_argument("--steps", type=int, default=None, help="estimation training steps (default 1000)")
    p.add_argument("--prop-steps", type=int, default=None, help="propagation training steps (default 800)")
    p.add_argument("--pretrain-steps", type=int, default=None,
                   help="steps of the single-frame pretraining on other videos (default 1500; 0: from scratch)")
    p.add_argument("--pretrain-data", type=Path, default=None,
                   help="pretraining videos (default outputs/synthetic_<preset>_seed<seed+1>)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eval-videos", type=int, default=None, help="evaluate on the first N val videos (default all)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: more threads than free cores slows torch down many times)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    args.preset = args.preset or ("tiny" if args.quick else "bench")
    args.intervals = args.intervals or ([4] if args.quick else [7, 4, 2])
    args.steps = args.steps or (4 if args.quick else 1000)
    args.prop_steps = args.prop_steps or (4 if args.quick else 800)
    if args.pretrain_steps is None:
        args.pretrain_steps = 4 if args.quick else 1500
    if args.quick:
        args.middle_frames = min(args.middle_frames, 14)
        args.input_size = [64, 48]
        args.sigma = 1.0
    args.work = args.work or Path("outputs/bench_pseudolabels" + ("_quick" if args.quick else ""))
    args.out = args.out or (args.work / "results" if args.quick else REPO / "benchmarks" / "results")
    args.data = args.data or Path(f"outputs/synthetic_{args.preset}")
    args.pretrain_data = args.pretrain_data or Path(f"outputs/synthetic_{args.preset}_seed{args.seed + 1}")
    args.pretrained = None
    return args


def main(argv: list[str] | None = None) -> int:
    import platform

    import torch

    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    data_dir = ensure_data(args.preset, args.seed, args.data.resolve(), not args.no_progress)
    args.work = args.work.resolve()
    args.pretrained = pretrain(args)
    rows = []
    for cond in conditions(args.intervals):
        print(f"== {cond['name']}", flush=True)
        summary = run_condition(args, data_dir, cond)
        ev = evaluate_cached(args.work / cond["key"], summary["estimation"]["checkpoint"], data_dir,
                             args.eval_videos, not args.no_progress)
        quality = ((summary.get("pseudolabels") or {}).get("quality") or {}).get("groups", {}).get("Mean")
        row = {**cond, "labeled_fraction": summary["sparse"]["labeled_fraction"],
               "labels_kept": summary["sparse"]["labels_kept"], "window_frames": summary["sparse"]["window_frames"],
               "pseudo_quality": quality, "pseudo_persons": (summary.get("pseudolabels") or {}).get("pseudo_persons"),
               "train_seconds": summary.get("seconds"), "eval": ev}
        rows.append(row)
        print(f"   val Mean mAP {ev['groups']['Mean']:.1f}"
              + (f" (pseudo-labels {quality:.1f} mAP vs dropped labels)" if quality is not None else ""), flush=True)
    minutes = (time.perf_counter() - start) / 60
    pretrain_s = 0.0
    if args.pretrained is not None and (args.work / "pretrain" / "timing.json").exists():
        pretrain_s = json.loads((args.work / "pretrain" / "timing.json").read_text())["seconds"]
    data_s = 0.0
    for folder in (data_dir, args.pretrain_data.resolve() if args.pretrained is not None else None):
        info = folder / "synth_info.json" if folder is not None else None
        if info is not None and info.exists():
            data_s += float(json.loads(info.read_text()).get("seconds") or 0.0)
    conditions_s = sum(r["train_seconds"] or 0.0 for r in rows)
    eval_s = sum(r["eval"]["seconds"] for r in rows)
    meta = {"val_videos": rows[0]["eval"]["videos"], "val_images": rows[0]["eval"]["images"],
            "this_call_minutes": minutes, "pretrain_minutes": pretrain_s / 60, "conditions_minutes": conditions_s / 60,
            "eval_minutes": eval_s / 60, "compute_minutes": (pretrain_s + conditions_s + eval_s) / 60,
            "data_minutes": data_s / 60, "machine": f"{platform.machine()} CPU, {args.threads} torch thread(s)"}
    args.out.mkdir(parents=True, exist_ok=True)
    text = markdown(rows, args, meta)
    atomic_write_text(args.out / "pseudolabels.md", text)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    atomic_write_json(args.out / "pseudolabels.json", {"settings": settings, "meta": meta, "rows": rows,
                                                       "paper_table3": PAPER_TABLE3}, indent=1)
    plot(rows, args.intervals, args.out / "pseudolabels.png")
    print(text)
    print(f"written: {args.out / 'pseudolabels.md'}, .json, .png ({minutes:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
