"""TKS in channels-last (what `TemporalKeypointsSynthesis.forward` does) against the default layout on this CPU.

Usage: python benchmarks/tks_layout.py [--threads 1] [--repeats 11]

The same modules and weights run both ways on one random (4, 3, 17, 64, 48) heatmap triplet (ViT-B at 256x192),
timed interleaved; prints the median ms per key frame of each and their ratio, after checking the outputs agree.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from stdpose.model.stre import TemporalKeypointsSynthesis


def default_layout(tks: TemporalKeypointsSynthesis, heatmaps: torch.Tensor) -> torch.Tensor:
    """TKS's forward without the channels-last conversion."""
    b, t, j, h, w = heatmaps.shape
    per_joint = heatmaps.transpose(1, 2).reshape(b, j * t, h, w)
    merged = tks.temporal(per_joint)
    return tks.synthesis(torch.cat([tks.spatial(merged), heatmaps.reshape(b, t * j, h, w)], dim=1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=11)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tks = TemporalKeypointsSynthesis(17).eval()
    heatmaps = torch.rand(4, 3, 17, 64, 48)
    runs = {"channels-last (TKS.forward)": tks, "default layout": lambda x: default_layout(tks, x)}
    times: dict[str, list[float]] = {name: [] for name in runs}
    with torch.inference_mode():
        diff = float((tks(heatmaps) - default_layout(tks, heatmaps)).abs().max())
        for rnd in range(args.repeats + 1):
            for name, fn in runs.items():
                start = time.perf_counter()
                fn(heatmaps)
                if rnd:  # round 0 warms up
                    times[name].append((time.perf_counter() - start) * 1000 / heatmaps.shape[0])
    med = {name: statistics.median(v) for name, v in times.items()}
    for name, ms in med.items():
        print(f"{name}: {ms:.2f} ms per key frame")
    print(f"default / channels-last: {med['default layout'] / med['channels-last (TKS.forward)']:.2f}x; "
          f"largest output difference {diff:.1e} ({args.threads} thread(s), batch 4)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
