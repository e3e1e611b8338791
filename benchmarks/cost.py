"""Per-module cost of STDPose: parameters, MACs and measured time per crop, and what propagation costs per frame.

Usage:
    python benchmarks/cost.py --threads 1                          # ViT-B at 256x192 and 384x288, CPU
    python benchmarks/cost.py --threads 1 --set stda_head=shuffle  # also a cost option, same run
    python benchmarks/cost.py --set stda_head=shuffle --set stda_head=shuffle tff_depth=1   # two options
    python benchmarks/cost.py --device cuda                        # on a GPU

For every backbone size and input size: the modules of one key frame - backbone and per-frame head (per crop),
TFF, TKS, DAM, STDA's Pose Aggregation blocks and STDA's final head, the MI projection (computed by `aggregate`
at inference too) and the whole `aggregate` call - with parameters, MACs (torch.utils.flop_counter on the meta
device: matmuls and convolutions, 1 MAC = 2 FLOPs) and the median time per crop over `--repeats` timed calls of a
`--batch` of random inputs (weights untrained: timing does not depend on them), the models of one size timed in
interleaved rounds so that load changes on a shared machine hit them alike. `--time-sizes` says which sizes are
timed; the others (ViT-L/H by default: minutes per call on a shared CPU) get parameters and MACs only.

Propagation cost per propagated frame, relative to one single-frame ViT + head pass (t = temporal / single):
- reuse, per key frame: 1 + t (the key frame's own encoding and the temporal modules);
- reuse, schedule at interval T counting the labeled frames' encodings: one track between two labels has T - 1
  key frames and T + 1 encoded crops (the two labeled frames are cropped with the segment's crop, so they are
  encoded again for each segment), so ((T + 1) + (T - 1) t) / (T - 1);
- naive: 3 + t (the three frames of every key frame encoded again).
With `--set KEY=VALUE ...` (repeatable) every row is measured for the default model and for each model with those
config fields, in the same run, and the ratios are printed side by side.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from stdpose.model import ModelConfig, STDPose

MODULES = ("backbone", "head", "tff", "tks", "dam", "stda blocks", "stda head", "mi_proj")
SINGLE = ("backbone", "head")


@dataclass
class Cost:
    params: int = 0
    macs: int = 0
    ms: float | None = None  # per crop (or per key frame for the temporal modules)


@dataclass
class ModelCost:
    label: str
    size: str
    input_size: tuple[int, int]
    modules: dict[str, Cost] = field(default_factory=dict)
    aggregate: Cost = field(default_factory=Cost)

    def single(self, what: str) -> float | None:
        vals = [getattr(self.modules[m], what) for m in SINGLE]
        return None if any(v is None for v in vals) else float(sum(vals))

    def temporal(self, what: str) -> float | None:
        v = getattr(self.aggregate, what)
        return None if v is None else float(v)

    def ratios(self, what: str, interval: int) -> dict[str, float] | None:
        single, temporal = self.single(what), self.temporal(what)
        if not single or temporal is None:
            return None
        t = temporal / single
        return {"t": t, "reuse_key": 1 + t, "reuse_schedule": ((interval + 1) + (interval - 1) * t) / (interval - 1),
                "naive": 3 + t}


def _params(module: torch.nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def module_calls(model: STDPose, batch: int) -> dict[str, tuple[torch.nn.Module | None, Callable[[], Any]]]:
    """name -> (module, a call that runs it once on `batch` inputs shaped like those of one key frame)."""
    cfg = model.cfg
    h, w = cfg.input_size
    dev = next(model.parameters()).device
    images = torch.randn(batch, 3, h, w, device=dev)
    with torch.inference_mode():
        features = model.backbone(images)
        heatmaps = model.head(features).clamp(0, 1)
        feats3 = torch.stack([features] * 3, dim=1)  # (B, 3, C, H', W')
        hms3 = torch.stack([heatmaps] * 3, dim=1)  # (B, 3, J, h, w)
        aux = hms3[:, ::2].contiguous()  # (B, 2, J, h, w) stands in for the label heatmaps
        fused = model.tff(feats3)[0] if model.tff is not None else None
        merged = model.tks(hms3) if model.tks is not None else None
        mask = model.dam(heatmaps, heatmaps, heatmaps) if model.dam is not None else None
        z = model.stda.aggregate_tokens(merged, mask, fused)[0] if model.stda is not None else None
    gh, gw = model.backbone.grid
    calls: dict[str, tuple[torch.nn.Module | None, Callable[[], Any]]] = {
        "backbone": (model.backbone, lambda: model.backbone(images)),
        "head": (model.head, lambda: model.head(features)),
    }
    if model.tff is not None:
        calls["tff"] = (model.tff, lambda: model.tff(feats3))
    if model.tks is not None:
        calls["tks"] = (model.tks, lambda: model.tks(hms3))
    if model.dam is not None:
        calls["dam"] = (model.dam, lambda: model.dam(heatmaps, heatmaps, heatmaps))
    if model.stda is not None:
        stda = model.stda
        blocks = torch.nn.ModuleList([stda.patch_embed, *stda.blocks, stda.norm])
        calls["stda blocks"] = (blocks, lambda: stda.aggregate_tokens(merged, mask, fused))
        calls["stda head"] = (stda.head, lambda: stda.head(z))
    if model.mi_proj is not None and fused is not None:
        fused_map = fused.transpose(1, 2).reshape(batch, -1, gh, gw)
        calls["mi_proj"] = (model.mi_proj, lambda: model.mi_proj(fused_map))
    calls["aggregate"] = (None, lambda: model.aggregate(feats3, hms3, aux))
    return calls


def count_macs(cfg: ModelConfig) -> dict[str, int]:
    """MACs of every module call for ONE key frame, counted on the meta device (no arithmetic)."""
    with torch.device("meta"):
        model = STDPose(cfg).eval()
        calls = module_calls(model, 1)
        out = {}
        for name, (_, fn) in calls.items():
            with torch.inference_mode(), FlopCounterMode(display=False) as counter:
                fn()
            out[name] = int(counter.get_total_flops()) // 2
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(configs: list[tuple[str, ModelConfig]], device: torch.device, batch: int, repeats: int,
            timed: bool) -> list[ModelCost]:
    """Costs of every model in `configs` (one backbone size and input size, different options).

    Timing is interleaved: each of the `repeats` rounds times every module of every model once (after one warm-up
    round), and the median per module is kept, so a change in the machine's load during the run hits the models
    alike and the ratios between them stay comparable.
    """
    models, all_calls, costs = [], [], []
    for label, cfg in configs:
        if timed:
            torch.manual_seed(0)
            model = STDPose(cfg).to(device).eval()
            calls = module_calls(model, batch)
        else:
            with torch.device("meta"):
                model = STDPose(cfg).eval()
                calls = module_calls(model, 1)
        models.append(model)
        all_calls.append(calls)
        costs.append(ModelCost(label, cfg.backbone, cfg.input_size))
    times: list[dict[str, list[float]]] = [{name: [] for name in calls} for calls in all_calls]
    if timed:
        with torch.inference_mode():
            for rnd in range(repeats + 1):
                for calls, record in zip(all_calls, times):
                    for name, (_, fn) in calls.items():
                        _sync(device)
                        start = time.perf_counter()
                        fn()
                        _sync(device)
                        if rnd > 0:  # round 0 warms up
                            record[name].append((time.perf_counter() - start) * 1000 / batch)
    temporal = ("tff", "tks", "dam", "stda", "fusion_head", "mi_proj")
    for (_, cfg), model, calls, record, cost in zip(configs, models, all_calls, times, costs):
        macs = count_macs(cfg)
        for name in (*MODULES, "aggregate"):
            if name not in calls:
                continue
            ms = statistics.median(record[name]) if timed else None
            entry = Cost(_params(calls[name][0]), macs[name], ms)
            if name == "aggregate":
                cost.aggregate = entry
            else:
                cost.modules[name] = entry
        cost.aggregate.params = sum(_params(getattr(model, n)) for n in temporal)
    return costs


# ------------------------------------------------------------------------------------------------ report


def _fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def table(costs: list[ModelCost], interval: int) -> list[str]:
    lines = ["| model | module | params (M) | GMACs / crop | ms / crop |", "| --- | --- | --- | --- | --- |"]
    for c in costs:
        name = f"{c.size} {c.input_size[0]}x{c.input_size[1]} {c.label}"
        for mod, e in c.modules.items():
            lines.append(f"| {name} | {mod} | {e.params / 1e6:.2f} | {e.macs / 1e9:.3f} | {_fmt_ms(e.ms)} |")
        lines.append(f"| {name} | **single frame (backbone + head)** | "
                     f"{(c.modules['backbone'].params + c.modules['head'].params) / 1e6:.2f} | "
                     f"{c.single('macs') / 1e9:.3f} | {_fmt_ms(c.single('ms'))} |")
        lines.append(f"| {name} | **temporal (whole `aggregate`)** | {c.aggregate.params / 1e6:.2f} | "
                     f"{c.aggregate.macs / 1e9:.3f} | {_fmt_ms(c.aggregate.ms)} |")
    return lines


def ratio_table(costs: list[ModelCost], interval: int) -> list[str]:
    lines = [f"| model | by | temporal / single | reuse, per key frame | reuse at T={interval}, labeled frames "
             "counted | naive |", "| --- | --- | --- | --- | --- | --- |"]
    for c in costs:
        name = f"{c.size} {c.input_size[0]}x{c.input_size[1]} {c.label}"
        for what, by in (("macs", "MACs"), ("ms", "time")):
            r = c.ratios(what, interval)
            if r is None:
                continue
            lines.append(f"| {name} | {by} | {r['t']:.3f} | {r['reuse_key']:.3f} | {r['reuse_schedule']:.3f} | "
                         f"{r['naive']:.3f} |")
    return lines


def parse_fields(items: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        out[key] = yaml.safe_load(value)
    return out


def _pair(text: str) -> tuple[int, int]:
    h, sep, w = text.partition("x")
    if not sep:
        raise argparse.ArgumentTypeError(f"input size must be HxW, got {text!r}")
    return int(h), int(w)


def machine_line(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"CPU {cpu} ({os.cpu_count()} cores, shared), {threads} torch thread(s), torch {torch.__version__}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", default=["base", "large", "huge"])
    p.add_argument("--time-sizes", nargs="*", default=["base"], help="sizes that are timed (others: MACs only)")
    p.add_argument("--input-sizes", nargs="+", type=_pair, default=[(256, 192), (384, 288)], metavar="HxW")
    p.add_argument("--variant", default="f")
    p.add_argument("--set", nargs="+", action="append", metavar="KEY=VALUE",
                   help="model config fields of one cost option to compare with the default (repeat --set for "
                        "several options)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when available)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (CPU)")
    p.add_argument("--batch", type=int, default=4, help="crops per timed call")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per module (median)")
    p.add_argument("--interval", type=int, default=7, help="label interval T of the schedule ratio")
    p.add_argument("--out", type=Path, default=None, help="write the tables here (markdown), e.g. "
                   "benchmarks/results/cost.md")
    args = p.parse_args(argv)
    if args.interval < 2:
        raise SystemExit("--interval must be at least 2")
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available on this machine")
    options = [parse_fields(items) for items in args.set or []]
    configs = [("default", {})] + [(",".join(f"{k}={v}" for k, v in o.items()), o) for o in options]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    wall = time.perf_counter()
    costs: list[ModelCost] = []
    for size in args.sizes:
        for hw in args.input_sizes:
            timed = size in args.time_sizes
            built = [(label, ModelConfig(backbone=size, input_size=hw, variant=args.variant, **fields))
                     for label, fields in configs]
            for c in measure(built, device, args.batch, args.repeats, timed):
                costs.append(c)
                label = c.label
                r = c.ratios("ms" if timed else "macs", args.interval)
                by = "time" if timed else "MACs"
                print(f"{size} {hw[0]}x{hw[1]} {label}: single {_fmt_ms(c.single('ms'))} ms, temporal "
                      f"{_fmt_ms(c.aggregate.ms)} ms per crop; by {by}: reuse {r['reuse_key']:.3f}x per key frame, "
                      f"{r['reuse_schedule']:.3f}x at T={args.interval} with labeled frames, naive "
                      f"{r['naive']:.3f}x", flush=True)
    header = [
        "# STDPose cost per module",
        "",
        f"Written by `python benchmarks/cost.py {' '.join(sys.argv[1:] if argv is None else argv)}` on {started}; "
        f"{machine_line(device, args.threads)}; batch {args.batch}, median of {args.repeats} interleaved timed calls; "
        f"variant {args.variant}, untrained weights; wall time {time.perf_counter() - wall:.0f} s.",
        "",
        "Times are per crop (backbone, head) or per key frame (temporal modules); `aggregate` is the whole temporal "
        "part as the propagator calls it (TFF + TKS + DAM + STDA + MI projection). MACs counted by "
        "torch.utils.flop_counter for one crop / key frame.",
        "",
    ]
    text = "\n".join([*header, *table(costs, args.interval), "",
                      "## Propagation cost per propagated frame, relative to single-frame ViT + head", "",
                      *ratio_table(costs, args.interval), ""])
    print("\n" + text)
    if args.out is not None:
        from stdpose.atomic import atomic_write_text

        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, text)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
