"""GPU check of STDPose: bf16 training speed and memory, propagation frames/s, and bf16-vs-float32 agreement.

Usage (on a machine with one CUDA GPU; needs only torch, numpy and this repository - no Lightning, no OpenCV):
    PYTHONPATH=src python benchmarks/gpu_check.py                   # writes benchmarks/results/gpu.md (~2-5 min)
    PYTHONPATH=src python benchmarks/gpu_check.py --device cpu --tiny --out /tmp/gpu.md   # CPU self-test (CI)

What it measures (ViT-B STDPose, variant f, 256x192, untrained weights; `--tiny`: the nano model at 64x48):
1. training: forward + loss (StdposeLoss, MI terms included) + backward + AdamW step under bf16 autocast, for
   batches of 32 and 64 propagation triplets: steps/s (median over `--steps` timed steps after 3 warm-up steps)
   and peak GPU memory (torch.cuda.max_memory_allocated);
2. propagation: the learned propagator's two schedules on one track between two labels at T = 7, with the model
   calls batched as `STDPosePropagator` does (32 crops per call): reuse = the T + 1 crops encoded once and the
   temporal modules per key frame; naive = three encodings per key frame. Frames/s = propagated key frames per
   second of model time (image decoding and cropping are not included: they run on the CPU either way);
3. agreement: the trained-for-a-few-steps model's heatmaps for the same inputs in float32 on the CPU and under
   bf16 autocast on the GPU - the largest absolute difference, that difference relative to the largest heatmap
   value, and the largest difference of the argmax keypoint positions in heatmap pixels.
Without CUDA (and without `--device cpu`) it stops with exit status 2 and a one-line message.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from stdpose.model import ModelConfig, StdposeLoss, build_model

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "gpu.md"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device) -> Any:
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def make_batch(cfg: ModelConfig, batch: int, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random propagation triplets with Gaussian-blob targets (timing and agreement do not need real images)."""
    g = torch.Generator().manual_seed(seed)
    h, w = cfg.input_size
    hh, hw = cfg.heatmap_size
    j = cfg.num_joints
    ys, xs = torch.arange(hh).view(1, 1, hh, 1).float(), torch.arange(hw).view(1, 1, 1, hw).float()
    cy, cx = torch.rand(batch, j, 1, 1, generator=g) * hh, torch.rand(batch, j, 1, 1, generator=g) * hw
    target = torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * 2.0 ** 2))  # (B, J, h, w)
    out = {
        "frames": torch.randn(batch, 3, 3, h, w, generator=g),
        "aux_heatmaps": torch.stack([target, target], dim=1),  # (B, 2, J, h, w)
        "target": target,
        "target_weight": torch.ones(batch, j),
    }
    return {k: v.to(device) for k, v in out.items()}


def _train_step(model: Any, criterion: Any, optim: Any, data: dict[str, torch.Tensor],
                device: torch.device) -> torch.Tensor:
    """One optimiser step under the device's autocast; returns the loss (for the finiteness check)."""
    with _autocast(device):
        out = model(data["frames"], data["aux_heatmaps"])
        loss = criterion(out, data["target"], data["target_weight"])["loss"]
    optim.zero_grad(set_to_none=True)
    loss.backward()
    optim.step()
    return loss


def train_speed(cfg: ModelConfig, batch: int, steps: int, device: torch.device) -> dict[str, float]:
    """bf16-autocast training steps/s and peak memory for one batch size."""
    torch.manual_seed(0)
    model = build_model(cfg).to(device).train()
    criterion = StdposeLoss(cfg)
    optim = torch.optim.AdamW(model.parameter_groups(0.1), lr=1e-4)
    data = make_batch(cfg, batch, device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(3 + steps):
        _sync(device)
        start = time.perf_counter()
        loss = _train_step(model, criterion, optim, data, device)
        _sync(device)
        if i >= 3:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    if not torch.isfinite(loss.detach()).item():
        raise SystemExit(f"gpu_check: training loss is not finite at batch {batch} ({float(loss):.3g})")
    return {"batch": batch, "steps_per_s": 1 / statistics.median(times), "peak_gib": peak,
            "samples_per_s": batch / statistics.median(times), "loss": float(loss.detach())}


def _encode(model: Any, crops: torch.Tensor, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    feats, hms = [], []
    for s in range(0, crops.shape[0], chunk):
        enc = model.encode_frames(crops[s:s + chunk])
        feats.append(enc["features"])
        hms.append(enc["heatmaps"])
    return torch.cat(feats), torch.cat(hms)


def propagation_speed(model: Any, cfg: ModelConfig, device: torch.device, interval: int = 7, tracks: int = 8,
                      chunk: int = 32, repeats: int = 3) -> dict[str, float]:
    """Key frames/s of the reuse and the naive schedule for `tracks` persons between two labels."""
    h, w = cfg.input_size
    keys = interval - 1
    g = torch.Generator().manual_seed(1)
    crops = torch.randn(tracks, interval + 1, 3, h, w, generator=g).to(device)  # frames left..right per track
    aux = make_batch(cfg, tracks * keys, device)["aux_heatmaps"]
    model.eval()

    def reuse() -> None:
        feats, hms = _encode(model, crops.flatten(0, 1), chunk)  # (tracks * (T+1), ...)
        feats = feats.view(tracks, interval + 1, *feats.shape[1:])
        hms = hms.view(tracks, interval + 1, *hms.shape[1:])
        for s in range(0, tracks * keys, chunk):
            idx = torch.arange(s, min(s + chunk, tracks * keys), device=device)
            t, k = idx // keys, idx % keys + 1
            f3 = torch.stack([feats[t, 0], feats[t, k], feats[t, interval]], dim=1)  # (B, 3, C, H', W')
            h3 = torch.stack([hms[t, 0], hms[t, k], hms[t, interval]], dim=1)
            model.aggregate(f3, h3, aux[idx])

    def naive() -> None:
        for s in range(0, tracks * keys, chunk):
            idx = torch.arange(s, min(s + chunk, tracks * keys), device=device)
            t, k = idx // keys, idx % keys + 1
            triplets = torch.stack([crops[t, 0], crops[t, k], crops[t, interval]], dim=1)  # (B, 3, 3, H, W)
            b = triplets.shape[0]
            feats, hms = _encode(model, triplets.flatten(0, 1), chunk)
            model.aggregate(feats.view(b, 3, *feats.shape[1:]), hms.view(b, 3, *hms.shape[1:]), aux[idx])

    out: dict[str, float] = {"key_frames": tracks * keys, "tracks": tracks, "interval": interval, "chunk": chunk}
    with torch.inference_mode(), _autocast(device):
        for name, fn in (("reuse", reuse), ("naive", naive)):
            fn()
            _sync(device)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                _sync(device)
                times.append(time.perf_counter() - start)
            out[f"{name}_fps"] = tracks * keys / statistics.median(times)
    out["speedup"] = out["reuse_fps"] / out["naive_fps"]
    return out


def agreement(cfg: ModelConfig, device: torch.device, steps: int = 5, batch: int = 4) -> dict[str, float]:
    """Train a few bf16 steps (so the heatmaps are not all ~0), then compare CPU float32 with device bf16."""
    torch.manual_seed(0)
    model = build_model(cfg).to(device).train()
    criterion = StdposeLoss(cfg)
    optim = torch.optim.AdamW(model.parameter_groups(0.0), lr=1e-3)
    data = make_batch(cfg, batch, device, seed=2)
    for _ in range(steps):
        _train_step(model, criterion, optim, data, device)
    model.eval()
    inputs = make_batch(cfg, batch, torch.device("cpu"), seed=3)
    with torch.inference_mode(), _autocast(device):
        low = model(inputs["frames"].to(device), inputs["aux_heatmaps"].to(device))["heatmaps"].float().cpu()
    cpu_model = build_model(cfg).eval()
    cpu_model.load_state_dict({k: v.float().cpu() for k, v in model.state_dict().items()})
    with torch.inference_mode():
        ref = cpu_model(inputs["frames"], inputs["aux_heatmaps"])["heatmaps"]
    diff = (low - ref).abs().max().item()
    scale = ref.abs().max().item()
    w = ref.shape[-1]
    a, b = ref.flatten(2).argmax(-1), low.flatten(2).argmax(-1)  # (B, J)
    px = torch.sqrt(((a // w - b // w).float()) ** 2 + ((a % w - b % w).float()) ** 2).max().item()
    return {"max_abs_diff": diff, "max_heatmap": scale, "relative": diff / max(scale, 1e-12), "argmax_px": px}


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        return (f"GPU {p.name} ({p.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}, torch "
                f"{torch.__version__}, {os.cpu_count()} CPU cores, {torch.get_num_threads()} CPU torch threads")
    return (f"CPU {platform.processor() or platform.machine()} ({os.cpu_count()} cores), "
            f"{torch.get_num_threads()} torch thread(s), torch {torch.__version__} (CPU self-test, not a GPU result)")


def report(res: dict) -> str:
    lines = [
        "# GPU check",
        "",
        f"Written by `python benchmarks/gpu_check.py {res['command']}` on {res['date']}; {res['machine']}; "
        f"wall time {res['wall_seconds']:.0f} s.",
        f"Model: {res['model']} (variant f), untrained weights, bf16 autocast (torch.autocast, bfloat16).",
        "",
        "## Training (forward + StdposeLoss + backward + AdamW step)",
        "",
        "| batch | steps/s | samples/s | peak memory (GiB) |",
        "| --- | --- | --- | --- |",
    ]
    for r in res["train"]:
        peak = "- (not measured on CPU)" if r["peak_gib"] != r["peak_gib"] else f"{r['peak_gib']:.2f}"
        lines.append(f"| {r['batch']} | {r['steps_per_s']:.2f} | {r['samples_per_s']:.1f} | {peak} |")
    p = res["propagation"]
    lines += [
        "",
        f"## Propagation (model time; T = {p['interval']}, {p['tracks']} tracks, {p['chunk']} crops per call)",
        "",
        "| schedule | key frames/s |",
        "| --- | --- |",
        f"| reuse (each crop encoded once) | {p['reuse_fps']:.1f} |",
        f"| naive (three encodings per key frame) | {p['naive_fps']:.1f} |",
        "",
        f"reuse / naive = {p['speedup']:.2f}x.",
        "",
        "## CPU float32 vs device bf16 (same weights, same inputs)",
        "",
        f"- largest absolute heatmap difference: {res['agreement']['max_abs_diff']:.3g} "
        f"(largest heatmap value {res['agreement']['max_heatmap']:.3g}; relative {res['agreement']['relative']:.3g})",
        f"- largest argmax keypoint difference: {res['agreement']['argmax_px']:.1f} heatmap pixels",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (self-test of this script)")
    p.add_argument("--tiny", action="store_true", help="nano model at 64x48, batches 2 and 4 (CPU self-test)")
    p.add_argument("--steps", type=int, default=10, help="timed training steps per batch size")
    p.add_argument("--batches", type=int, nargs="+", default=None, help="training batch sizes (default 32 64)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"gpu_check: CUDA is not available here (torch {torch.__version__}, CUDA build "
              f"{torch.version.cuda or 'none'}); run it on a GPU machine, or --device cpu --tiny for the CPU "
              "self-test", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    if args.tiny:
        cfg = ModelConfig(backbone="nano", input_size=(64, 48), tff_depth=1, stda_depth=1)
        batches = args.batches or [2, 4]
    else:
        cfg = ModelConfig(backbone="base", input_size=(256, 192))
        batches = args.batches or [32, 64]
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # bf16 autocast is what is measured; fp32 stays fp32
    wall = time.perf_counter()
    res: dict[str, Any] = {
        "command": " ".join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(device),
        "model": f"{cfg.backbone} STDPose at {cfg.input_size[0]}x{cfg.input_size[1]}",
        "train": [],
    }
    for b in batches:
        r = train_speed(cfg, b, args.steps, device)
        res["train"].append(r)
        print(f"train batch {b}: {r['steps_per_s']:.2f} steps/s, peak {r['peak_gib']:.2f} GiB", flush=True)
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    res["propagation"] = propagation_speed(model, cfg, device, tracks=2 if args.tiny else 8)
    del model
    print(f"propagation: reuse {res['propagation']['reuse_fps']:.1f} vs naive {res['propagation']['naive_fps']:.1f} "
          "key frames/s", flush=True)
    res["agreement"] = agreement(cfg, device, batch=2 if args.tiny else 4)
    print(f"bf16 vs fp32: max |diff| {res['agreement']['max_abs_diff']:.3g} (relative "
          f"{res['agreement']['relative']:.3g}), argmax {res['agreement']['argmax_px']:.1f} px", flush=True)
    res["wall_seconds"] = time.perf_counter() - wall
    from stdpose.atomic import atomic_write_text

    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, report(res))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
