"""`stdpose demo` end to end at a tiny size, and what a rerun skips."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import REPO
from conftest_engine import tiny_synthetic_dir

from stdpose import cli
from stdpose.engine.demo import _reusable_results, _stage_key

TINY = ["trainer.max_epochs=1", "data.input_size=[64,48]", "data.sigma=1.0", "data.batch_size=8",
        "trainer.enable_progress_bar=false"]


def _table(printed: str) -> list[str]:
    """The rows of the printed mAP table (method name, then numbers)."""
    rows = [line.split() for line in printed.splitlines()]
    return [" ".join(r) for r in rows if len(r) == 9 and r[0] in {"nearest", "linear", "flow", "stdpose"}]


@pytest.mark.slow
def test_demo_runs_end_to_end_and_a_rerun_reuses_every_finished_stage(tmp_path_factory, tmp_path, capsys):
    out = tmp_path / "demo_out"
    # the session's tiny data set is exactly what `--preset tiny --seed 0` generates: the demo reuses it
    shutil.copytree(tiny_synthetic_dir(tmp_path_factory), out / "synthetic")
    argv = ["demo", "--out", str(out), "--preset", "tiny", "--config", str(REPO / "configs" / "synthetic_demo.yaml"),
            "--set", *TINY]
    assert cli.main(argv) == 0
    first = capsys.readouterr().out
    assert "synthetic videos already in" in first
    demo = out / "demo"
    saved = json.loads((demo / "results.json").read_text())
    assert set(saved["results"]) == {"nearest", "linear", "flow", "stdpose"}
    for name in ("nearest", "linear", "flow", "stdpose"):
        assert any(line.split()[0] == name for line in _table(first))
        assert 0.0 <= saved["results"][name]["groups"]["Mean"] <= 100.0
    # the weight-free baselines do not depend on training: linear beats copying the nearest label on moving people
    assert saved["results"]["linear"]["groups"]["Mean"] > saved["results"]["nearest"]["groups"]["Mean"]
    for key in ("table", "chart", "overlay"):
        assert (demo / saved["files"][key]).stat().st_size > 0
    stamp = (demo / "results.json").stat().st_mtime_ns

    # rerun: data reused, training ends at once, propagation + evaluation reused (results.json untouched)
    assert cli.main(argv) == 0
    second = capsys.readouterr().out
    assert "synthetic videos already in" in second
    assert "propagation and evaluation already done" in second
    assert "propagating labels" not in second
    assert (demo / "results.json").stat().st_mtime_ns == stamp
    assert _table(first) == _table(second) and len(_table(first)) == 4

    # what invalidates the saved stage: another checkpoint file, another interval, a missing output
    checkpoint = Path(saved["checkpoint"])
    files = {"json": demo / "results.json"}
    key = _stage_key(checkpoint, 7, ("nearest", "linear", "flow"), out / "synthetic")
    assert _reusable_results(files, key) is not None
    assert _reusable_results(files, {**key, "interval": 5}) is None
    assert _reusable_results(files, {**key, "checkpoint_mtime_ns": key["checkpoint_mtime_ns"] + 1}) is None
    (demo / "ap_chart.png").unlink()
    assert _reusable_results(files, key) is None
