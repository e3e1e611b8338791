"""benchmarks/model_size.py: FLOP counts agree with the closed-form ViT cost, and the rows add up."""

from __future__ import annotations

import importlib.util
import sys

from conftest import REPO


def _bench():
    spec = importlib.util.spec_from_file_location("model_size", REPO / "benchmarks" / "model_size.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["model_size"] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def vit_flops(n: int, c: int, depth: int, patch: int = 16) -> int:
    """2 FLOPs per multiply-add: patch conv, then per block qkv, q k^T, attn v, proj and the 4x MLP."""
    per_block = 2 * n * c * 3 * c + 2 * 2 * n * n * c + 2 * n * c * c + 2 * 2 * n * c * 4 * c
    return 2 * n * c * 3 * patch * patch + depth * per_block


def test_flop_counts_match_closed_form_and_add_up(capsys):
    bench = _bench()
    rows = {r.what.split(",")[0].strip(): r for r in bench.measure("nano", (64, 48))}
    vit = rows["ViT backbone"]
    assert vit.flops == vit_flops(n=4 * 3, c=64, depth=2)
    single = rows["ViT + head (ViTPose"]
    temporal = rows["of which temporal modules (TFF..STDA)"]
    full = rows["STDPose (f)"]
    assert single.flops > vit.flops and single.params > vit.params
    assert full.flops == 3 * single.flops + temporal.flops
    assert full.params == single.params + temporal.params
    assert bench.main(["--sizes", "nano", "--input-size", "64", "48"]) == 0
    assert "temporal modules of the full model" in capsys.readouterr().out


def test_vit_base_is_17_gmacs_at_256x192():
    bench = _bench()
    vit = bench.measure("base", (256, 192))[0]
    assert vit.flops == vit_flops(n=16 * 12, c=768, depth=12)
    assert 17.0e9 < vit.flops / 2 < 17.2e9  # ViTPose-B's published 17.1 GFLOPs (multiply-adds)
    assert 85.5e6 < vit.params < 86.1e6
