"""Parameter and FLOP counts of the ViT backbone, ViT + head (ViTPose, Table 4 (a)) and STDPose, per size.

Usage: python benchmarks/model_size.py [--sizes tiny base] [--input-size 256 192] [--variant f]

Everything is built and run on PyTorch's "meta" device: shapes propagate but no arithmetic happens, so even ViT-H
is counted in about a second on a laptop CPU. FLOPs come from torch.utils.flop_counter.FlopCounterMode (matmuls and
convolutions, 2 FLOPs per multiply-add; on meta, scaled_dot_product_attention decomposes into counted bmm's).
GMACs = GFLOPs / 2 is the unit most papers (and ViTPose's "17.1 GFLOPs" for ViT-B) report.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from stdpose.model import ModelConfig, STDPose
from stdpose.model.backbone import VisionTransformer

TEMPORAL_MODULES = ("tff", "tks", "dam", "stda", "fusion_head", "mi_proj")


@dataclass
class Row:
    size: str
    what: str
    params: int
    flops: int

    def line(self) -> str:
        gflops = self.flops / 1e9
        return f"{self.size:<6} {self.what:<44} {self.params / 1e6:>9.2f} {gflops:>9.2f} {gflops / 2:>8.2f}"


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_flops(fn, *args) -> int:
    with FlopCounterMode(display=False) as counter:
        fn(*args)
    return int(counter.get_total_flops())


def measure(size: str, input_size: tuple[int, int], variant: str = "f") -> list[Row]:
    """Rows for one backbone size: backbone alone, ViT + head, STDPose (3 frames), its temporal part."""
    cfg = ModelConfig(backbone=size, input_size=input_size, variant=variant)
    h, w = input_size
    with torch.device("meta"):
        model = STDPose(cfg).eval()
        frames = torch.empty(1, 3, 3, h, w)
        image = torch.empty(1, 3, h, w)
        vit: VisionTransformer = model.backbone
        with torch.no_grad():
            vit_flops = count_flops(vit, image)
            single_flops = count_flops(model.encode_frames, image)
            full_flops = count_flops(model, frames)
            enc = model.encode_frames(frames.reshape(3, 3, h, w))
            features = enc["features"].reshape(1, 3, *enc["features"].shape[1:])
            heatmaps = enc["heatmaps"].reshape(1, 3, *enc["heatmaps"].shape[1:])
            temporal_flops = count_flops(model.aggregate, features, heatmaps)
    temporal_params = sum(count_params(m) for n in TEMPORAL_MODULES if (m := getattr(model, n)) is not None)
    base = count_params(vit) + count_params(model.head)
    return [
        Row(size, "ViT backbone, 1 frame", count_params(vit), vit_flops),
        Row(size, "ViT + head (ViTPose, Table 4 a), 1 frame", base, single_flops),
        Row(size, f"STDPose ({variant}), 3 frames -> 1 key frame", count_params(model), full_flops),
        Row(size, "  of which temporal modules (TFF..STDA)", temporal_params, temporal_flops),
        Row(size, "STDPose per key frame, reusing encodings", count_params(model), single_flops + temporal_flops),
    ]


def module_breakdown(size: str, input_size: tuple[int, int]) -> list[tuple[str, int, int]]:
    """(module, params, flops) of each temporal module of the full model, one key frame."""
    cfg = ModelConfig(backbone=size, input_size=input_size, variant="f")
    h, w = input_size
    with torch.device("meta"), torch.no_grad():
        model = STDPose(cfg).eval()
        enc = model.encode_frames(torch.empty(3, 3, h, w))
        features = enc["features"].reshape(1, 3, *enc["features"].shape[1:])
        heatmaps = enc["heatmaps"].reshape(1, 3, *enc["heatmaps"].shape[1:])
        with FlopCounterMode(display=False) as counter:
            model.aggregate(features, heatmaps)
    per_module = counter.get_flop_counts()
    rows = []
    for name in TEMPORAL_MODULES:
        module = getattr(model, name)
        if module is None:
            continue
        # aggregate() is not a module call, so its direct submodules are keyed by class name
        flops = sum(per_module.get(type(module).__name__, {}).values())
        rows.append((name, count_params(module), int(flops)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "base"])
    parser.add_argument("--input-size", nargs=2, type=int, default=[256, 192], metavar=("H", "W"))
    parser.add_argument("--variant", default="f")
    args = parser.parse_args(argv)
    input_size = (args.input_size[0], args.input_size[1])
    print(f"input {input_size[0]}x{input_size[1]}, variant {args.variant}")
    print(f"{'size':<6} {'model':<44} {'params M':>9} {'GFLOPs':>9} {'GMACs':>8}")
    for size in args.sizes:
        for row in measure(size, input_size, args.variant):
            print(row.line())
    for size in args.sizes:
        print(f"\n{size}: temporal modules of the full model (one key frame)")
        for name, params, flops in module_breakdown(size, input_size):
            print(f"  {name:<12} {params / 1e6:>8.2f} M params {flops / 1e9:>8.2f} GFLOPs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
