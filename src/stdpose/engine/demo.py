"""The end-to-end demo behind `make demo`: synthetic videos -> train -> propagate (T=7) -> mAP table and pictures.

Every stage keeps its output under one folder and is skipped when that output is already complete, so running the
demo again (or after an interruption) continues where it stopped instead of starting over: the synthetic videos
are reused when their preset and seed match, training resumes from its last checkpoint (a finished run ends at
once), and propagation + evaluation are reused when demo/results.json was made with the same checkpoint file (path,
size, modification time), interval, methods and data, and every file it lists still exists.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stdpose.atomic import atomic_write_json, atomic_write_text
from stdpose.errors import ConfigError

# Synthetic data for the demo: enough videos to learn from in a few CPU minutes, small frames (see docs/synthetic.md).
DEMO_PRESET = dict(name="demo", width=192, height=144, train_videos=24, val_videos=6, frames=(29, 36),
                   persons=(2, 3), person_height=(0.6, 0.85))
BASELINES = ("nearest", "linear", "flow")


@dataclass
class DemoResult:
    out_dir: Path
    table: str
    results: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _say(text: str) -> None:
    print(f"stdpose demo: {text}", flush=True)


def demo_preset(name: str = "demo") -> Any:
    """The synthetic preset the demo generates: "demo" (default) or any `stdpose synth` preset (e.g. "tiny")."""
    from stdpose.data.synthetic import PRESETS, PresetConfig

    if name == DEMO_PRESET["name"]:
        return PresetConfig(**DEMO_PRESET)
    if name not in PRESETS:
        raise ConfigError(f"unknown demo preset {name!r} (choose demo or one of {sorted(PRESETS)})")
    return PRESETS[name]


def make_data(out: Path, seed: int, preset: str = "demo") -> Path:
    """Generate the demo's synthetic videos under out/synthetic (reused when complete, same preset and seed)."""
    from stdpose.data.synthetic import generate_dataset

    config = demo_preset(preset)
    data_dir = out / "synthetic"
    info = data_dir / "synth_info.json"
    if info.is_file():
        meta = json.loads(info.read_text())
        if meta.get("complete") and meta.get("preset") == config.name and meta.get("seed") == seed:
            _say(f"synthetic videos already in {data_dir} (reused)")
            return data_dir
    _say(f"generating synthetic videos in {data_dir}")
    summary = generate_dataset(data_dir, config, seed=seed, progress=True)
    splits = summary.get("splits", {})
    _say("made " + ", ".join(f"{s}: {v.get('videos')} videos, {v.get('frames')} frames" for s, v in splits.items()))
    return data_dir


def demo_config(config_path: Path, data_dir: Path, out: Path, overrides: list[str]) -> dict:
    """The demo's experiment config with its data and output folders pointed into `out`."""
    from stdpose.engine.config import load_config

    if not config_path.is_file():
        raise ConfigError(f"demo config {config_path} not found (run the demo from the repository root, or pass "
                          "--config)")
    base = [
        f"data.train={{annotations: {data_dir / 'annotations' / 'train'}, image_root: {data_dir}}}",
        f"data.val={{annotations: {data_dir / 'annotations' / 'val'}, image_root: {data_dir}}}",
        f"output_dir={out / 'train'}",
    ]
    return load_config(config_path, base + list(overrides))


def train_model(cfg: dict) -> Path:
    """Train (or finish training) the demo model; returns the checkpoint used for propagation."""
    from stdpose.engine.trainer import find_resume_checkpoint, train

    out = Path(cfg["output_dir"])
    resume = find_resume_checkpoint(out)
    if resume is not None:
        _say(f"continuing from {resume} (a finished run ends at once)")
    result = train(cfg, resume=str(resume) if resume else None, output_dir=out)
    if result.interrupted:
        raise KeyboardInterrupt
    best = result.best_checkpoint or result.last_checkpoint
    if best is None:
        raise ConfigError(f"training wrote no checkpoint under {result.checkpoint_dir}")
    score = f" (val mAP {result.best_score:.1f})" if result.best_score is not None else ""
    _say(f"trained to epoch {result.epoch}, {result.global_step} steps; using {best}{score}")
    return Path(best)


def _stage_key(checkpoint: Path, interval: int, methods: tuple[str, ...], data_dir: Path) -> dict[str, Any]:
    """What the propagation + evaluation results depend on; a rerun reuses them only when all of it is equal."""
    st = checkpoint.stat()
    info = data_dir / "synth_info.json"
    meta = json.loads(info.read_text()) if info.is_file() else {}
    return {"checkpoint": str(checkpoint), "checkpoint_bytes": st.st_size, "checkpoint_mtime_ns": st.st_mtime_ns,
            "interval": int(interval), "methods": [*methods, "stdpose"],
            "data": {"preset": meta.get("preset"), "seed": meta.get("seed")}}


def _reusable_results(files: dict[str, Path], key: dict[str, Any]) -> dict[str, Any] | None:
    """The saved results when demo/results.json was made with `key` and every file it lists exists, else None."""
    try:
        saved = json.loads(files["json"].read_text())
    except (OSError, ValueError):
        return None
    listed = [Path(p) for p in saved.get("files", {}).values()]
    if saved.get("stage") != key or not listed or not all(p.is_file() for p in listed):
        return None
    return saved


def _result_from_dict(d: dict[str, Any]) -> Any:
    """A PoseTrackMapResult back from its `to_dict` form (null -> NaN), enough to print and plot it again."""
    from stdpose.eval.posetrack_map import PoseTrackMapResult

    def nan(values: dict[str, Any]) -> dict[str, float]:
        return {k: (float("nan") if v is None else float(v)) for k, v in values.items()}

    return PoseTrackMapResult(nan(d["per_joint"]), nan(d["groups"]), int(d["num_images"]), nan(d["precision"]),
                              nan(d["recall"]), dict(d["counts"]), list(d["notes"]))


def run_demo(out_dir: str | Path = "outputs", config: str | Path = "configs/synthetic_demo.yaml",
             overrides: list[str] | None = None, interval: int = 7, seed: int = 0,
             methods: tuple[str, ...] = BASELINES, preset: str = "demo") -> DemoResult:
    """Run every stage that is not complete yet; returns the printed table and where the files are."""
    from stdpose.data.formats import read_annotations
    from stdpose.data.video import VideoFrames
    from stdpose.eval.posetrack_map import PoseTrackMapResult
    from stdpose.propagation.learned import STDPosePropagator
    from stdpose.propagation.methods import get_propagator
    from stdpose.propagation.protocol import evaluate_propagators
    from stdpose.viz import plot_ap_chart, write_overlay_video

    out = Path(out_dir).absolute()
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    data_dir = make_data(out, seed, preset)
    seconds["data"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    cfg = demo_config(Path(config), data_dir, out, overrides or [])
    checkpoint = train_model(cfg)
    seconds["train"] = time.perf_counter() - t0

    demo_dir = out / "demo"
    title = f"Pose propagation on held-out synthetic videos, T={interval} (PoseTrack mAP, %)"
    files = {
        "table": demo_dir / "results.md",
        "json": demo_dir / "results.json",
        "chart": demo_dir / "ap_chart.png",
    }
    key = _stage_key(checkpoint, interval, tuple(methods), data_dir)
    saved = _reusable_results(files, key)
    if saved is not None:
        _say(f"propagation and evaluation already done with this checkpoint in {demo_dir} (reused)")
        results = {k: _result_from_dict(v) for k, v in saved["results"].items()}
        files = {k: Path(v) for k, v in saved["files"].items()}
        seconds["propagate+evaluate"] = 0.0
        return DemoResult(out, PoseTrackMapResult.format_comparison(results, title=title),
                          {k: v.to_dict() for k, v in results.items()}, files, seconds)

    t0 = time.perf_counter()
    val_videos = read_annotations(data_dir / "annotations" / "val")
    propagators: dict[str, Any] = {name: get_propagator(name) for name in methods}
    propagators["stdpose"] = STDPosePropagator.from_checkpoint(checkpoint, progress=False)
    _say(f"propagating labels kept every {interval} frames (PoseWarper protocol) on {len(val_videos)} held-out "
         f"videos with {', '.join(propagators)}")
    outputs: dict[str, list] = {}
    # Every method would repeat the same notes about people entering/leaving between labels; say it once here.
    for name in ("stdpose.propagation.tracks", "stdpose.propagation.common", "stdpose.propagation.learned"):
        logging.getLogger(name).setLevel(logging.ERROR)
    _say("people present in only one of two labels are propagated up to the gap's midpoint (docs/baselines.md)")
    results = evaluate_propagators(val_videos, lambda v: VideoFrames(v, data_dir), propagators, interval,
                                   protocol="posewarper", outputs=outputs)
    seconds["propagate+evaluate"] = time.perf_counter() - t0

    table = PoseTrackMapResult.format_comparison(results, title=title)
    atomic_write_text(files["table"], PoseTrackMapResult.format_comparison(results, title=title, markdown=True) + "\n")
    plot_ap_chart({k: v.groups for k, v in results.items()}, files["chart"], title=title)
    first = outputs["stdpose"][0]
    files["overlay"] = write_overlay_video(first, VideoFrames(first, data_dir), demo_dir / f"overlay_{first.name}.mp4",
                                           progress=False)
    # written last: its `stage` key marks the stage complete for a rerun
    atomic_write_json(files["json"], {"interval": interval, "checkpoint": str(checkpoint), "stage": key,
                                      "files": {k: str(v) for k, v in files.items()},
                                      "results": {k: v.to_dict() for k, v in results.items()}}, indent=1)
    return DemoResult(out, table, {k: v.to_dict() for k, v in results.items()}, files, seconds)
