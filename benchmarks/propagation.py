"""Pose propagation on the synthetic `bench` videos: paper Table 1 (methods at T=7), Table 4 (ablation (a)-(f)),
the interval sweep, and the backbone-reuse efficiency - printed, and written to benchmarks/results/.

Usage:
    python benchmarks/propagation.py                  # full run (bench preset; see docs/propagation.md for timing)
    python benchmarks/propagation.py --quick          # smoke run: tiny preset, a few training steps (CI)
    python benchmarks/propagation.py --steps 1500 --variants f a --intervals 3 7

What it does:
1. makes the synthetic data set (`generate_dataset`, preset bench, seed 0) unless it exists;
2. pretrains the single-frame part (ViT + head, variant (a)) on the train videos' key frames - the stand-in for
   the paper's COCO-pretrained ViT, which we cannot download - then fine-tunes one model per ablation variant from
   it (same steps, data, seed and schedule) with segment crops (`data.crop: segment`, the crop the propagator
   reuses backbone passes with); or loads the checkpoints a previous run left in --work with the same settings;
3. evaluates every method with the sparse-label protocol (`stdpose.propagation.protocol.evaluate_propagators`,
   PoseWarper protocol) on the val videos: baselines nearest / linear / flow and the learned variants;
4. measures backbone passes and time of the learned propagator with and without backbone reuse on the val videos;
5. writes `<out>/propagation.md`, `propagation.json`, `propagation.png` (Table 1 chart) and `propagation_interval.png`.

Training (benchmark-sized, not the paper's schedule): AdamW, lr 1e-3 (x0.5 on the pretrained backbone and head
when fine-tuning) with 100 warmup steps and cosine decay to 5%, batch 16, mild augmentation (scale 0.8-1.2,
rotation +-20 deg with p 0.3, flip; no half-body), the loss of `StdposeLoss` (heatmap MSE, + MI terms for variant
f). The checkpoints are `stdpose train`-compatible (a state dict under `model.` and the full experiment config), so
`stdpose propagate --checkpoint` loads them.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stdpose.atomic import atomic_path, atomic_write_json, atomic_write_text

log = logging.getLogger("benchmarks.propagation")

VARIANT_ROWS = {
    "a": "(a) ViT + head, key frame only",
    "b": "(b) + TFF",
    "c": "(c) + TKS",
    "d": "(d) TFF + TKS + STDA",
    "e": "(e) + DAM",
    "f": "(f) + MI (full STDPose)",
}
BASELINE_NAMES = ("nearest", "linear", "flow")
PAPER_TABLE4 = {"a": 86.8, "b": 88.4, "c": 88.6, "d": 89.6, "e": 90.3, "f": 90.9}
PAPER_T = {2: 98.1, 3: 96.8, 5: 92.5, 7: 90.9, 9: 90.1, 15: 83.6}


# ------------------------------------------------------------------------------------------------ settings


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    """Everything a trained model depends on (a checkpoint is reused only when these match)."""
    return {
        "preset": args.preset,
        "seed": args.seed,
        "backbone": args.backbone,
        "input_size": list(args.input_size),
        "interval": args.train_interval,
        "pretrain_steps": args.pretrain_steps,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "sigma": args.sigma,
        "tff_depth": args.tff_depth,
        "stda_depth": args.stda_depth,
    }


def experiment_config(settings: dict[str, Any], variant: str, data_dir: Path) -> dict:
    """A full, validated experiment config (what `stdpose train` would save) for one variant."""
    from stdpose.engine.config import validate_config

    raw = {
        "description": f"benchmarks/propagation.py variant {variant}",
        "output_dir": "outputs/bench_propagation",
        "model": {"backbone": settings["backbone"], "variant": variant, "tff_depth": settings["tff_depth"],
                  "stda_depth": settings["stda_depth"]},
        "data": {
            "train": {"annotations": str(data_dir / "annotations" / "train"), "image_root": str(data_dir)},
            "val": {"annotations": str(data_dir / "annotations" / "val"), "image_root": str(data_dir)},
            "task": "propagation",
            "interval": settings["interval"],
            "input_size": settings["input_size"],
            "sigma": settings["sigma"],
            "batch_size": settings["batch_size"],
            "num_workers": 0,
            "crop": "segment",
            "augment": AUGMENT,
        },
        "optim": {"lr": settings["lr"], "warmup_steps": WARMUP},
        "trainer": {"max_steps": settings["steps"], "seed": settings["seed"], "accelerator": "cpu", "devices": 1},
    }
    return validate_config(raw, source="benchmarks/propagation.py")


AUGMENT = {"rotation": 20.0, "rotation_prob": 0.3, "scale_range": [0.8, 1.2], "half_body": False}
WARMUP = 100
PRETRAINED_LR_SCALE = 0.5


# ------------------------------------------------------------------------------------------------ training


def lr_factor(step: int, total: int, warmup: int = WARMUP, floor: float = 0.05) -> float:
    """Linear warmup, then cosine decay to `floor` of the base lr."""
    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def train_variant(cfg: dict, steps: int, seed: int, threads: int, progress: bool,
                  init: dict[str, torch.Tensor] | None = None) -> tuple[torch.nn.Module, dict]:
    """Train one model for `steps` optimizer steps, starting from the weights in `init` (backbone + head of the
    pretrained single-frame model) when given; returns (model, info with loss curve and seconds)."""
    from torch.utils.data import DataLoader

    from stdpose.data.dataset import TripletDataset, collate_triplets
    from stdpose.data.formats import read_annotations
    from stdpose.data.transforms import AugmentConfig
    from stdpose.engine.lit import model_config, parameter_groups
    from stdpose.model import StdposeLoss, build_model

    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(threads)
    data = cfg["data"]
    videos = read_annotations(data["train"]["annotations"])
    dataset = TripletDataset(videos, data["train"]["image_root"], task="propagation",
                             input_size_hw=tuple(data["input_size"]), interval=data["interval"], train=True,
                             augment=AugmentConfig.from_dict(data["augment"]), sigma=data["sigma"], crop="segment")
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=data["batch_size"], shuffle=True, drop_last=True, num_workers=0,
                        collate_fn=collate_triplets, generator=gen)
    mcfg = model_config(cfg)
    model = build_model(mcfg).train()
    groups = parameter_groups(model, cfg["optim"]["weight_decay"])
    if init is not None:
        missing = [k for k in init if k not in model.state_dict()]
        if missing:
            raise RuntimeError(f"pretrained weights do not fit: {missing[:3]}")
        model.load_state_dict(init, strict=False)
        pretrained = {id(p) for name, p in model.named_parameters() if name in init}
        split = []
        for g in groups:  # the pretrained parameters learn at PRETRAINED_LR_SCALE of the rate
            old = [p for p in g["params"] if id(p) in pretrained]
            new = [p for p in g["params"] if id(p) not in pretrained]
            split += [{**g, "params": old, "lr_scale": PRETRAINED_LR_SCALE}, {**g, "params": new, "lr_scale": 1.0}]
        groups = [g for g in split if g["params"]]
    criterion = StdposeLoss(mcfg)
    optim = torch.optim.AdamW(groups, lr=cfg["optim"]["lr"])
    base_lr = cfg["optim"]["lr"]
    losses: list[float] = []
    start = time.perf_counter()
    step = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, desc=f"train variant {cfg['model']['variant']}", unit="step", leave=False)
    while step < steps:
        for batch in loader:
            if step >= steps:
                break
            for group in optim.param_groups:
                group["lr"] = base_lr * group.get("lr_scale", 1.0) * lr_factor(step, steps)
            out = model(batch["frames"], batch["aux_heatmaps"])
            loss = criterion(out, batch["target"], batch["target_weight"])["loss"]
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            losses.append(float(loss.detach()))
            step += 1
            if bar is not None:
                bar.update(1)
                if step % 20 == 0:
                    bar.set_postfix(loss=f"{np.mean(losses[-20:]):.2e}")
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - start
    curve = [float(np.mean(losses[i:i + 50])) for i in range(0, len(losses), 50)]
    return model.eval(), {"seconds": seconds, "samples": len(dataset), "loss_every_50_steps": curve}


def save_checkpoint(model: torch.nn.Module, cfg: dict, settings: dict, info: dict, path: Path) -> None:
    """A `stdpose train`-compatible checkpoint (weights under `model.`, config in hyper_parameters)."""
    state = {"model." + k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"state_dict": state, "hyper_parameters": {"config": cfg},
               "benchmark": {"settings": settings, "train": info}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _saved_settings(path: Path) -> dict:
    if not path.is_file():
        return {}
    return torch.load(path, map_location="cpu", weights_only=True).get("benchmark", {})


def pretrained_weights(settings: dict, data_dir: Path, work: Path, retrain: bool, threads: int,
                       progress: bool) -> tuple[dict[str, torch.Tensor], dict]:
    """Backbone + head weights of the single-frame model (variant (a) trained from scratch for pretrain_steps),
    the stand-in for the paper's COCO-pretrained ViT; trained once and kept in `work`."""
    path = work / "propagation_pretrain.ckpt"
    keys = ("preset", "seed", "backbone", "input_size", "interval", "pretrain_steps", "batch_size", "lr", "sigma")
    wanted = {k: settings[k] for k in keys}
    saved = _saved_settings(path)
    if not retrain and saved.get("settings") == wanted:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        print(f"  pretrained single-frame model: loaded {path}", flush=True)
        weights = {k[len("model."):]: v for k, v in ckpt["state_dict"].items()}
        return weights, saved["train"]
    cfg = experiment_config(settings, "a", data_dir)
    model, info = train_variant(cfg, settings["pretrain_steps"], settings["seed"], threads, progress)
    save_checkpoint(model, cfg, wanted, info, path)
    print(f"  pretrained single-frame model: {settings['pretrain_steps']} steps in {info['seconds']:.0f} s -> {path}",
          flush=True)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, info


def load_or_train(variant: str, settings: dict, data_dir: Path, work: Path, retrain: bool, threads: int,
                  progress: bool, init: Any) -> tuple[Any, dict, dict]:
    """(model, config, train info) of one variant: the checkpoint in `work` when its settings match, else train
    (from `init()`, the pretrained weights, when pretrain_steps > 0)."""
    from stdpose.engine.checkpoints import load_model_from_checkpoint

    path = work / f"propagation_{variant}.ckpt"
    cfg = experiment_config(settings, variant, data_dir)
    saved = _saved_settings(path)
    if not retrain and saved.get("settings") == settings:
        model, cfg = load_model_from_checkpoint(path)
        print(f"  variant {variant}: loaded {path} (trained in {saved['train']['seconds']:.0f} s)", flush=True)
        return model, cfg, {**saved["train"], "loaded": True}
    weights = init() if settings["pretrain_steps"] > 0 else None
    model, info = train_variant(cfg, settings["steps"], settings["seed"], threads, progress, init=weights)
    save_checkpoint(model, cfg, settings, info, path)
    print(f"  variant {variant}: trained {settings['steps']} steps in {info['seconds']:.0f} s "
          f"(loss {info['loss_every_50_steps'][0]:.2e} -> {info['loss_every_50_steps'][-1]:.2e}) -> {path}",
          flush=True)
    return model, cfg, info


# ------------------------------------------------------------------------------------------------ evaluation


def evaluate(videos: list, data_dir: Path, propagators: dict, interval: int) -> dict:
    from stdpose.data.video import VideoFrames
    from stdpose.propagation.protocol import evaluate_propagators

    return evaluate_propagators(videos, lambda v: VideoFrames(v, data_dir), propagators, interval)


def efficiency(model: Any, cfg: dict, videos: list, data_dir: Path, interval: int, batch_size: int) -> dict:
    """Backbone crops and seconds of the learned propagator with and without backbone reuse, same videos."""
    from stdpose.data.video import VideoFrames
    from stdpose.propagation.learned import STDPosePropagator
    from stdpose.propagation.protocol import protocol_extend, sparsify

    out: dict[str, Any] = {}
    poses: dict[str, list] = {}
    for mode, reuse in (("reuse", True), ("naive", False)):
        prop = STDPosePropagator(model, cfg, batch_size=batch_size, progress=False, reuse_backbone=reuse,
                                 extend=protocol_extend("posewarper", interval))  # the frames the protocol scores
        images = seconds = key_frames = 0.0
        preds = []
        for video in videos:
            sparse, _, kept = sparsify(video, interval)
            result = prop.propagate(sparse, VideoFrames(video, data_dir), kept)
            stats = prop.last_stats
            images += stats.backbone_images
            seconds += stats.seconds
            key_frames += stats.key_frames
            preds.append(result)
        out[mode] = {"backbone_images": int(images), "seconds": round(seconds, 2), "key_frames": int(key_frames)}
        poses[mode] = preds
    diffs = [np.abs(a.keypoints - b.keypoints).max() for va, vb in zip(poses["reuse"], poses["naive"])
             for fa, fb in zip(va.frames, vb.frames) for a, b in zip(fa.persons, fb.persons)]
    out["max_keypoint_difference_px"] = float(max(diffs) if diffs else 0.0)
    out["videos"] = len(videos)
    out["backbone_ratio"] = out["naive"]["backbone_images"] / max(1, out["reuse"]["backbone_images"])
    out["time_ratio"] = out["naive"]["seconds"] / max(1e-9, out["reuse"]["seconds"])
    return out


def paper_size_efficiency(videos: list, data_dir: Path, interval: int, batch_size: int) -> dict:
    """Reuse vs naive with an untrained paper-size model (ViT-B, 256x192): timing does not depend on the weights,
    and at this size the backbone, not the temporal modules, dominates the cost."""
    from stdpose.model import build_model

    torch.manual_seed(0)
    cfg = {"model": {"backbone": "base"},
           "data": {"task": "propagation", "crop": "segment", "input_size": [256, 192], "sigma": 2.0}}
    model = build_model({"backbone": "base", "input_size": [256, 192]}).eval()
    out = efficiency(model, cfg, videos, data_dir, interval, batch_size)
    out["model"] = "untrained ViT-B STDPose (variant f), 256x192"
    return out


# ------------------------------------------------------------------------------------------------ report


def _fmt(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1f}"


def markdown_report(res: dict) -> str:
    from stdpose.skeleton import GROUP_NAMES

    s = res["settings"]
    lines = [
        "# Pose propagation benchmark (synthetic `bench` videos)",
        "",
        f"Written by `python benchmarks/propagation.py{' ' + res['command'] if res['command'] else ''}` on "
        f"{res['date']}; wall time {res['wall_seconds'] / 60:.1f} min on {res['machine']} "
        f"({res['trained_here']}).",
        f"Data: preset `{s['preset']}` (seed {s['seed']}), {res['data']['val_videos']} val videos "
        f"({res['data']['val_frames']} frames) scored, {res['data']['train_videos']} train videos. Protocol: "
        f"PoseWarper (labels kept at frame 3 of the labeled run, then every T-th, and the last frame when more "
        f"than 3 away); the dropped labels are scored with the PoseTrack mAP (PCKh@0.5).",
        f"Models: {s['backbone']} ViT at {s['input_size'][0]}x{s['input_size'][1]}; the single-frame part (ViT + "
        f"head) pretrained {s['pretrain_steps']} steps, then every variant fine-tuned {s['steps']} steps of batch "
        f"{s['batch_size']} (T = {s['interval']}, segment crops, lr {s['lr']}) from it; "
        f"training took {res['train_seconds_total'] / 60:.1f} min in total (pretraining "
        f"{res['train'].get('pretrain', {}).get('seconds', 0) / 60:.1f} min, then "
        + ", ".join(f"{v} {res['train'][v]['seconds'] / 60:.1f}" for v in res['table4']) + " min).",
        "",
        f"## Table 1: propagation at T = {res['table1_interval']} (AP per joint group)",
        "",
        "| Method | " + " | ".join(GROUP_NAMES) + " |",
        "| --- | " + " | ".join("---" for _ in GROUP_NAMES) + " |",
    ]
    for name, groups in res["table1"].items():
        lines.append(f"| {name} | " + " | ".join(_fmt(groups.get(g)) for g in GROUP_NAMES) + " |")
    lines += ["", f"## Table 4: ablation at T = {res['table1_interval']} (Mean mAP)", "",
              "| Variant | TFF | TKS | DAM | STDA | MI | Mean | Wrist | Ankle | paper (PT17) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    from stdpose.model.config import VARIANTS

    for v, groups in res["table4"].items():
        sw = VARIANTS[v]
        marks = " | ".join("x" if getattr(sw, k) else "" for k in ("tff", "tks", "dam", "stda", "mi"))
        lines.append(f"| {VARIANT_ROWS[v]} | {marks} | {_fmt(groups['Mean'])} | {_fmt(groups['Wrist'])} | "
                     f"{_fmt(groups['Ankle'])} | {PAPER_TABLE4[v]} |")
    names = list(next(iter(res["sweep"].values())).keys()) if res["sweep"] else []
    lines += ["", "## Interval sweep (Mean mAP)", "",
              "| T | " + " | ".join(names) + " | paper STDPose (PT17) |",
              "| --- | " + " | ".join("---" for _ in names) + " | --- |"]
    for t, row in res["sweep"].items():
        lines.append(f"| {t} | " + " | ".join(_fmt(row[n]) for n in names) + f" | {PAPER_T.get(int(t), '-')} |")
    e = res["efficiency"]
    if e:
        lines += ["", f"## Backbone reuse (learned propagator, first {e['videos']} val videos, T = 7)", "",
                  "| mode | backbone crops | seconds | propagated poses |", "| --- | --- | --- | --- |",
                  f"| reuse (one pass per frame and track) | {e['reuse']['backbone_images']} | "
                  f"{e['reuse']['seconds']} | {e['reuse']['key_frames']} |",
                  f"| naive (three passes per key frame) | {e['naive']['backbone_images']} | "
                  f"{e['naive']['seconds']} | {e['naive']['key_frames']} |",
                  "",
                  f"Backbone crops naive / reuse = {e['backbone_ratio']:.2f}x, time naive / reuse = "
                  f"{e['time_ratio']:.2f}x; largest keypoint difference between the two: "
                  f"{e['max_keypoint_difference_px']:.2g} px."]
    e = res.get("efficiency_paper_size")
    if e:
        lines += ["", f"Paper-size model ({e['model']}), first {e['videos']} val video(s): "
                  f"{e['reuse']['backbone_images']} vs {e['naive']['backbone_images']} backbone crops, "
                  f"{e['reuse']['seconds']} s vs {e['naive']['seconds']} s: {e['backbone_ratio']:.2f}x fewer "
                  f"backbone passes, {e['time_ratio']:.2f}x faster (there the backbone dominates the cost; in the "
                  "nano model the temporal modules at heatmap resolution do)."]
    lines += ["", "## Timing", ""]
    for k, v in res["timing"].items():
        lines.append(f"- {k}: {v:.0f} s")
    if res.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in res["notes"]]
    return "\n".join(lines) + "\n"


def interval_chart(sweep: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = [int(t) for t in sweep]
    names = list(next(iter(sweep.values())).keys())
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for name in names:
        ax.plot(ts, [sweep[str(t)][name] for t in ts], marker="o", label=name)
    ax.set_xlabel("interval T (labels every T frames)")
    ax.set_ylabel("Mean mAP")
    ax.set_title("Propagation accuracy vs label interval (synthetic bench)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


# ------------------------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: tiny preset, few steps, variants f and a")
    p.add_argument("--preset", default="bench", help="synthetic preset (default bench)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", type=Path, default=None, help="data folder (default outputs/synthetic_<preset>)")
    p.add_argument("--work", type=Path, default=Path("outputs/bench_propagation"), help="checkpoints go here")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="results folder")
    p.add_argument("--backbone", default="nano")
    p.add_argument("--input-size", type=int, nargs=2, default=[192, 144], metavar=("H", "W"))
    p.add_argument("--sigma", type=float, default=1.5)
    p.add_argument("--tff-depth", type=int, default=1)
    p.add_argument("--stda-depth", type=int, default=1)
    p.add_argument("--pretrain-steps", type=int, default=3000,
                   help="steps of the single-frame pretraining every variant starts from (0: from scratch)")
    p.add_argument("--steps", type=int, default=800, help="training (fine-tuning) steps per variant")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--train-interval", type=int, default=7)
    p.add_argument("--variants", nargs="+", default=list(VARIANT_ROWS), choices=list(VARIANT_ROWS))
    p.add_argument("--intervals", type=int, nargs="+", default=[2, 3, 5, 7, 9, 15])
    p.add_argument("--no-flow", action="store_true", help="skip the (slow) optical-flow baseline")
    p.add_argument("--efficiency-videos", type=int, default=5, help="val videos of the reuse-vs-naive timing")
    p.add_argument("--paper-size-videos", type=int, default=1,
                   help="val videos of the reuse-vs-naive timing with an untrained ViT-B at 256x192 (0: skip)")
    p.add_argument("--retrain", action="store_true", help="train even when a matching checkpoint exists")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.preset = "tiny" if args.preset == "bench" else args.preset
        args.steps = min(args.steps, 8)
        args.pretrain_steps = min(args.pretrain_steps, 8)
        args.batch_size = min(args.batch_size, 4)
        args.variants = [v for v in args.variants if v in ("a", "f")] or ["f"]
        args.intervals = [3, 7]
        args.no_flow = True
        args.paper_size_videos = 0
    if "f" not in args.variants:
        args.variants.append("f")  # the full model is Table 1's STDPose row
    args.data = args.data or Path(f"outputs/synthetic_{args.preset}")
    return args


def main(argv: list[str] | None = None) -> int:
    from stdpose.data.formats import read_annotations
    from stdpose.data.synthetic import INFO_FILE, generate_dataset
    from stdpose.propagation.learned import STDPosePropagator
    from stdpose.propagation.methods import get_propagator
    from stdpose.viz import plot_ap_chart

    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    wall = time.perf_counter()
    timing: dict[str, float] = {}
    progress = not args.no_progress
    settings = settings_of(args)
    notes: list[str] = []

    t0 = time.perf_counter()
    if not (args.data / INFO_FILE).is_file():
        print(f"generating synthetic data set {args.preset} -> {args.data}", flush=True)
        generate_dataset(args.data, args.preset, seed=args.seed, progress=progress)
    timing["data generation (0 when reused)"] = time.perf_counter() - t0
    train_videos = read_annotations(args.data / "annotations" / "train")
    val_videos = read_annotations(args.data / "annotations" / "val")

    print(f"models: {args.backbone} ViT {args.input_size[0]}x{args.input_size[1]}, {args.steps} steps each, "
          f"variants {' '.join(args.variants)}", flush=True)
    t0 = time.perf_counter()
    models: dict[str, tuple[Any, dict]] = {}
    train_seconds = 0.0
    train_info: dict[str, dict] = {}
    pretrain: dict[str, Any] = {}

    def init() -> dict[str, torch.Tensor]:
        if "weights" not in pretrain:
            pretrain["weights"], pretrain["info"] = pretrained_weights(settings, args.data, args.work, args.retrain,
                                                                       args.threads, progress)
        return pretrain["weights"]

    for v in sorted(args.variants):
        model, cfg, info = load_or_train(v, settings, args.data, args.work, args.retrain, args.threads, progress,
                                         init)
        models[v] = (model, cfg)
        train_info[v] = info
        train_seconds += info["seconds"]
    if "info" not in pretrain and settings["pretrain_steps"] > 0:  # every variant was loaded
        saved = _saved_settings(args.work / "propagation_pretrain.ckpt")
        if "train" in saved:
            pretrain["info"] = saved["train"]
    if "info" in pretrain:
        train_info["pretrain"] = pretrain["info"]
        train_seconds += pretrain["info"]["seconds"]
    timing["training (or loading) the models"] = time.perf_counter() - t0

    def learned(v: str) -> STDPosePropagator:
        model, cfg = models[v]
        return STDPosePropagator(model, cfg, progress=False, batch_size=32)

    baselines = {n: get_propagator(n) for n in BASELINE_NAMES if not (n == "flow" and args.no_flow)}
    t1 = 7 if 7 in args.intervals or not args.quick else args.intervals[-1]

    # Table 1 + Table 4 at T = 7, one pass over the val videos for every method
    t0 = time.perf_counter()
    props = {**baselines, **{f"stdpose-{v}": learned(v) for v in sorted(models)}}
    at_t1 = evaluate(val_videos, args.data, props, t1)
    timing[f"evaluation at T={t1} (all methods)"] = time.perf_counter() - t0
    table1 = {n: at_t1[n].groups for n in baselines}
    table1["STDPose (full, f)"] = at_t1["stdpose-f"].groups
    table4 = {v: at_t1[f"stdpose-{v}"].groups for v in sorted(models)}
    from stdpose.eval.posetrack_map import PoseTrackMapResult

    print(PoseTrackMapResult.format_comparison({**{n: at_t1[n] for n in baselines}, "STDPose": at_t1["stdpose-f"]},
                                               title=f"\nTable 1: propagation at T={t1} (synthetic {args.preset})"))
    print(PoseTrackMapResult.format_comparison({VARIANT_ROWS[v]: at_t1[f"stdpose-{v}"] for v in sorted(models)},
                                               title=f"\nTable 4: ablation at T={t1}"))

    # interval sweep: baselines and the full model
    t0 = time.perf_counter()
    sweep: dict[str, dict[str, float]] = {}
    for t in args.intervals:
        res = at_t1 if t == t1 else evaluate(val_videos, args.data, {**baselines, "stdpose-f": learned("f")}, t)
        sweep[str(t)] = {n: res[n].groups["Mean"] for n in baselines}
        sweep[str(t)]["STDPose"] = res["stdpose-f"].groups["Mean"]
        print(f"T={t:>2}: " + "  ".join(f"{n} {m:.1f}" for n, m in sweep[str(t)].items()), flush=True)
    timing["interval sweep"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    model, cfg = models["f"]
    eff = efficiency(model, cfg, val_videos[:args.efficiency_videos], args.data, t1, batch_size=32)
    timing["efficiency run (reuse + naive)"] = time.perf_counter() - t0
    print(f"\nbackbone reuse: {eff['reuse']['backbone_images']} crops in {eff['reuse']['seconds']:.1f} s vs naive "
          f"{eff['naive']['backbone_images']} crops in {eff['naive']['seconds']:.1f} s -> "
          f"{eff['backbone_ratio']:.2f}x fewer backbone passes, {eff['time_ratio']:.2f}x faster; max keypoint "
          f"difference {eff['max_keypoint_difference_px']:.2g} px", flush=True)

    eff_base = None
    if args.paper_size_videos > 0:
        t0 = time.perf_counter()
        eff_base = paper_size_efficiency(val_videos[:args.paper_size_videos], args.data, t1, batch_size=16)
        timing["efficiency run, paper-size model"] = time.perf_counter() - t0
        print(f"paper-size model: {eff_base['reuse']['backbone_images']} vs {eff_base['naive']['backbone_images']} "
              f"crops, {eff_base['reuse']['seconds']:.1f} s vs {eff_base['naive']['seconds']:.1f} s -> "
              f"{eff_base['time_ratio']:.2f}x faster", flush=True)

    full = table1["STDPose (full, f)"]["Mean"]
    beaten = [n for n in [*baselines] if table1[n]["Mean"] >= full]
    if "a" in table4 and table4["a"]["Mean"] >= full:
        beaten.append("variant (a)")
    notes.append("the full STDPose beats every baseline and variant (a) at T=7" if not beaten else
                 f"the full STDPose does NOT beat: {', '.join(beaten)} (see docs/propagation.md)")
    print(notes[-1])

    res = {
        "command": " ".join(sys.argv[1:]) if argv is None else " ".join(argv),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{torch.get_num_threads()} torch threads, CPU (shared)",
        "settings": settings,
        "data": {"train_videos": len(train_videos), "val_videos": len(val_videos),
                 "val_frames": sum(v.num_frames for v in val_videos)},
        "table1_interval": t1,
        "table1": table1,
        "table4": table4,
        "sweep": sweep,
        "efficiency": eff,
        "efficiency_paper_size": eff_base,
        "train": train_info,
        "train_seconds_total": train_seconds,
        "trained_here": (f"variants {', '.join(v for v in sorted(models) if not train_info[v].get('loaded'))} "
                         "trained in this run" if any(not train_info[v].get("loaded") for v in models)
                         else f"every model loaded from {args.work}, trained by an earlier run"),
        "timing": timing,
        "notes": notes,
        "wall_seconds": time.perf_counter() - wall,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "propagation.json", res, indent=1)
    atomic_write_text(args.out / "propagation.md", markdown_report(res))
    plot_ap_chart(table1, args.out / "propagation.png", title=f"Propagation at T={t1} (synthetic {args.preset})")
    interval_chart(sweep, args.out / "propagation_interval.png")
    print(f"\nwrote {args.out / 'propagation.md'}, propagation.json, propagation.png, propagation_interval.png "
          f"({res['wall_seconds'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
