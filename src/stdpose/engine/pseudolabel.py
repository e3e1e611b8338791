"""Pseudo-label training (paper Table 3 / Appendix C): sparse labels -> propagation model -> pseudo-labels for every
other frame -> estimation model trained on labels + pseudo-labels.

Stages, each keeping its output under the pipeline's output folder and marking completion with `stage.json`:
1. `sparse/`      the training set as the experiment sees it: per video, optionally only the `middle_frames`
                  consecutive labeled frames in the middle (the paper uses the 30 labeled frames in the middle of
                  each PoseTrack17 training video), and of those only every `interval`-th label (T). Frames
                  outside that window and dropped labels become unlabeled and empty. `plan.json` lists the window
                  and kept labels of every video.
   `selection/`   `selection_videos` of the training videos (a fraction, spread evenly over the sorted names) are
                  held out of the propagation training, with their labels inside the window: the propagation
                  model is validated and its checkpoint picked on them, never on `data.val` (the split Table 3
                  reports), so no test data takes part in model selection (docs/estimation.md).
2. `propagation/` a propagation model trained on the sparse set minus the selection videos with the engine
                  (`stdpose.engine.trainer.train`), validated on `selection/`. It is trained the way it is used:
                  with `data.aux_inputs: predictions` (the paper's protocol, the aux frames need no label) its
                  triplets are (k-o, k, k+T-o), the gaps inference sees, and `data.interval = T`. With
                  `aux_inputs: labels` the only labeled auxiliaries a labeled key frame has are T frames away, so
                  it falls back to `data.interval = 2T` (triplets k-T, k, k+T). `propagation_interval` overrides.
3. `pseudolabels/` the propagation model fills every unlabeled frame of each window (`STDPosePropagator`). Human
                  labels stay (propagated=False); pseudo poses are marked propagated=True and their frames are set
                  labeled so the estimation dataset uses them (frame.extra["pseudo_labeled"] = True). Joints scoring
                  below `score_threshold` become unannotated (weight 0 in training); a pose left with no joint is
                  dropped. When the original training file has labels on those frames (synthetic data, PoseTrack17
                  training windows), `quality.json` holds the pseudo-labels' PoseTrack mAP against them.
4. `estimation/`  an estimation model (t-1, t+1 neighbours) trained on the pseudo-labelled set, or, with
                  `estimation_data: labels`, on the sparse human labels only (the "labels every T alone" baseline;
                  stages 2-3 are then skipped; `interval: 1` gives the all-labels reference).

Resume: a stage whose `stage.json` exists is skipped; an interrupted training continues from its `last.ckpt`.
`redo` (or `stdpose pseudolabel --redo STAGE`) removes the markers of that stage and every later one.
Under DDP (Lightning re-launching this program on every GPU) only rank 0 writes the sparse and pseudo-label sets;
the other ranks wait for them and join the two trainings.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stdpose.atomic import atomic_write_json, atomic_write_text
from stdpose.data.records import Video
from stdpose.errors import ConfigError, DataError
from stdpose.yaml_io import read_yaml_mapping

log = logging.getLogger(__name__)

STAGES = ("sparse", "propagation", "pseudolabels", "estimation")
MARKER = "stage.json"
ESTIMATION_DATA = ("pseudolabels", "labels")

PSEUDOLABEL_DEFAULTS: dict[str, Any] = {
    "interval": 7,  # T: keep a human label every T frames
    "middle_frames": 30,  # keep only this many consecutive labeled frames in the middle of each video; null = all
    "score_threshold": 0.0,  # pseudo-label joints scoring below this become unannotated
    "propagation_interval": None,  # data.interval of the propagation training; null = T (aux_inputs predictions)
    # or 2T (aux_inputs labels: labeled auxiliaries are T apart)
    "estimation_data": "pseudolabels",  # or "labels": train estimation on the sparse human labels alone
    "detections": None,  # person boxes (COCO results) for unlabeled training frames; null = interpolated boxes
    "checkpoint": "best",  # propagation checkpoint for the pseudo-labels: best (mAP on the selection videos) or last
    "selection_videos": 0.1,  # fraction of the training videos held out to pick that checkpoint (0: none, use last)
    "device": "auto",  # propagation inference device: auto (cuda when available), cpu, cuda, cuda:1
    "batch_size": 32,  # crops per network call when propagating
    "progress": True,
}
TOP_KEYS = ("description", "output_dir", "data", "pseudolabel", "propagation", "estimation")
SPLIT_KEYS = ("annotations", "image_root")


# ------------------------------------------------------------------------------------------------ config


def load_pseudolabel_config(path: str | Path, overrides: Sequence[str] = (), output_dir: str | Path | None = None
                            ) -> dict:
    """Read a pseudo-label pipeline YAML, apply dotted `overrides` (`pseudolabel.interval=4`,
    `propagation.trainer.max_epochs=1`), resolve the two stage experiments and validate everything.

    `propagation:` / `estimation:` are either the path of an experiment YAML (as `stdpose train` takes) or a mapping
    with `base: PATH` plus sections merged over it (e.g. `trainer: {max_epochs: 4}`). Their `data.train`,
    `data.val`, `data.task` and (propagation) `data.interval` are set by the pipeline. `output_dir` replaces the
    config's output folder (each stage trains in its own subfolder).
    """
    from stdpose.engine.config import apply_override

    path = Path(path)
    raw = read_yaml_mapping(path, "pseudo-label config")
    for stage in ("propagation", "estimation"):
        if isinstance(raw.get(stage), str):
            raw[stage] = {"base": raw[stage]}
    for item in overrides:
        apply_override(raw, item)
    if output_dir is not None:
        raw["output_dir"] = str(output_dir)  # the stages' folders follow it
    return validate_pseudolabel_config(raw, source=path)


def validate_pseudolabel_config(raw: dict, source: str | Path = "config") -> dict:
    """Checked config with defaults filled and the two stage experiments resolved to full engine configs."""
    from stdpose.engine.config import check_keys

    check_keys(raw, TOP_KEYS, "")
    cfg: dict[str, Any] = {"description": str(raw.get("description") or ""),
                           "output_dir": str(raw.get("output_dir") or "outputs/pseudolabel")}
    data = raw.get("data")
    if not isinstance(data, dict):
        raise ConfigError("data: is required: {train: {annotations, image_root}, val: {annotations, image_root}}")
    check_keys(data, ("train", "val"), "data.")
    for split in ("train", "val"):
        spec = data.get(split)
        if not isinstance(spec, dict) or not all(spec.get(k) for k in SPLIT_KEYS):
            raise ConfigError(f"data.{split} must be a mapping with annotations and image_root (paths)")
        check_keys(spec, SPLIT_KEYS, f"data.{split}.")
    cfg["data"] = {s: {k: str(data[s][k]) for k in SPLIT_KEYS} for s in ("train", "val")}

    section = raw.get("pseudolabel") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"pseudolabel: must be a mapping of settings, got {section!r}")
    check_keys(section, PSEUDOLABEL_DEFAULTS, "pseudolabel.")
    pl = {**PSEUDOLABEL_DEFAULTS, **section}
    pl["interval"] = _int(pl["interval"], "pseudolabel.interval", 1)
    if pl["middle_frames"] is not None:
        pl["middle_frames"] = _int(pl["middle_frames"], "pseudolabel.middle_frames", 1)
    if pl["propagation_interval"] is not None:
        pl["propagation_interval"] = _int(pl["propagation_interval"], "pseudolabel.propagation_interval", 2)
    pl["batch_size"] = _int(pl["batch_size"], "pseudolabel.batch_size", 1)
    try:
        pl["score_threshold"] = float(pl["score_threshold"])
    except (TypeError, ValueError):
        raise ConfigError(f"pseudolabel.score_threshold must be a number, got {pl['score_threshold']!r}") from None
    if not 0.0 <= pl["score_threshold"] <= 1.0:
        raise ConfigError(f"pseudolabel.score_threshold must lie in [0, 1], got {pl['score_threshold']}")
    if pl["estimation_data"] not in ESTIMATION_DATA:
        raise ConfigError(f"pseudolabel.estimation_data must be one of {', '.join(ESTIMATION_DATA)}, got "
                          f"{pl['estimation_data']!r}")
    if pl["checkpoint"] not in ("best", "last"):
        raise ConfigError(f"pseudolabel.checkpoint must be 'best' or 'last', got {pl['checkpoint']!r}")
    frac = pl["selection_videos"]
    if isinstance(frac, bool) or not isinstance(frac, int | float) or not 0.0 <= float(frac) < 1.0:
        raise ConfigError(f"pseudolabel.selection_videos must be a fraction in [0, 1), got {frac!r}")
    pl["selection_videos"] = float(frac)
    if pl["checkpoint"] == "best" and pl["selection_videos"] == 0.0 and pl["estimation_data"] == "pseudolabels":
        raise ConfigError("pseudolabel.checkpoint: best needs held-out training videos to pick it on "
                          "(pseudolabel.selection_videos > 0); use checkpoint: last for none")
    if pl["estimation_data"] == "pseudolabels" and pl["interval"] < 2:
        raise ConfigError("pseudolabel.interval must be >= 2 to leave frames to pseudo-label (interval 1 with "
                          "estimation_data: labels trains on every label)")
    cfg["pseudolabel"] = pl

    base_dir = Path(source).parent if str(source) != "config" else Path(".")
    uses_propagation = pl["estimation_data"] == "pseudolabels"
    for stage in ("propagation", "estimation"):
        spec = raw.get(stage)
        if spec is None and (stage == "estimation" or uses_propagation):
            raise ConfigError(f"{stage}: is required (an experiment YAML path, or {{base: PATH, ...sections}})")
        if spec is None:
            cfg[stage] = None
            continue
        cfg[stage] = _stage_config(stage, spec, cfg, base_dir)
    return cfg


# Settings that change how fast or where a training runs, not what it learns: left out of stage fingerprints.
_NON_SEMANTIC = {
    "trainer": ("accelerator", "devices", "num_nodes", "strategy", "enable_progress_bar", "log_every_n_steps",
                "sync_batchnorm"),
    "data": ("num_workers", "pin_memory", "val_batch_size"),
}


def _semantic(stage_cfg: dict) -> dict:
    """A stage experiment config without output paths and run-environment settings."""
    out = copy.deepcopy(stage_cfg)
    out.pop("output_dir", None)
    out.pop("description", None)
    for section, keys in _NON_SEMANTIC.items():
        for key in keys:
            (out.get(section) or {}).pop(key, None)
    (out.get("data") or {}).pop("train", None)  # the stage's own set, derived from earlier stages
    return out


def _int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _stage_config(stage: str, spec: Any, cfg: dict, base_dir: Path) -> dict:
    """The full engine config of a training stage (data paths are filled in when the stage runs)."""
    from stdpose.engine.config import validate_config

    if isinstance(spec, str):
        spec = {"base": spec}
    if not isinstance(spec, dict):
        raise ConfigError(f"{stage}: must be an experiment YAML path or a mapping with base: PATH, got {spec!r}")
    spec = dict(spec)
    base = spec.pop("base", None)
    raw: dict = {}
    if base is not None:
        base_path = Path(base)
        if not base_path.is_file() and not base_path.is_absolute() and (base_dir / base_path).is_file():
            base_path = base_dir / base_path  # relative to the pipeline config when not found from the cwd
        from stdpose.yaml_io import resolve_config_path

        base_path = resolve_config_path(base_path)
        if not base_path.is_file():
            raise DataError(base_path, f"{stage}.base: experiment config not found")
        raw = read_yaml_mapping(base_path, f"{stage}.base experiment config")
    merged = _deep_merge(raw, spec)
    data = dict(merged.get("data") or {})
    data["task"] = stage
    data["train"] = dict(cfg["data"]["train"])  # placeholders; replaced by the stage's own set when it runs
    data["val"] = dict(cfg["data"]["val"])
    if stage == "propagation":
        pl = cfg["pseudolabel"]
        data["interval"] = pl["propagation_interval"] or propagation_interval(pl["interval"],
                                                                              data.get("aux_inputs", "labels"))
    merged["data"] = data
    merged["output_dir"] = str(Path(cfg["output_dir"]) / stage)
    try:
        return validate_config(merged, source=f"{stage}")
    except ConfigError as err:
        raise ConfigError(f"{stage} stage: {err}") from None


def propagation_interval(interval: int, aux_inputs: str) -> int:
    """Training interval of the propagation stage with labels every `interval` frames: T when the aux frames need
    no label (aux_inputs predictions: triplets k-o, k, k+T-o as at inference), else 2T (the labeled neighbours of a
    labeled key frame are T away on each side)."""
    return max(2, interval) if aux_inputs == "predictions" else 2 * interval


def selection_names(names: Sequence[str], fraction: float) -> list[str]:
    """The training videos held out to pick the propagation checkpoint: round(fraction * n) of them (at least one
    when fraction > 0 and at least two videos exist), spread evenly over the sorted names; never all of them."""
    ordered = sorted(names)
    if fraction <= 0 or len(ordered) < 2:
        return []
    count = min(len(ordered) - 1, max(1, round(fraction * len(ordered))))
    step = len(ordered) / count
    return [ordered[int(i * step)] for i in range(count)]


def windowed_labels(video: Video, middle_frames: int | None) -> Video:
    """`video` with only the labels inside its label window (the frames the pipeline works on) kept."""
    window = set(label_window(video.labeled_indices(), middle_frames))
    frames = [f if f.index in window else dataclasses.replace(f, persons=[], is_labeled=False) for f in video.frames]
    return dataclasses.replace(video, frames=frames)


# ------------------------------------------------------------------------------------------------ stage 1


def label_window(labeled: Sequence[int], middle_frames: int | None) -> list[int]:
    """The labeled frames a video contributes: all of them (None), else `middle_frames` consecutive labeled
    frames centred in the longest run of consecutive labels (the whole run when it is shorter)."""
    from stdpose.data.sampling import longest_labeled_run

    if middle_frames is None:
        return sorted(int(i) for i in labeled)
    run = longest_labeled_run(labeled)
    if len(run) <= middle_frames:
        return run
    start = (len(run) - middle_frames) // 2
    return run[start : start + middle_frames]


def sparsify_video(video: Video, interval: int, middle_frames: int | None) -> tuple[Video, dict[str, Any]]:
    """(sparse copy of `video`, plan): labels kept every `interval` frames inside the label window; every other
    frame unlabeled and empty. plan = {"window": [first, last] or None, "kept": [...], "labeled": n}."""
    from stdpose.data.sampling import sparse_labeled_indices

    window = label_window(video.labeled_indices(), middle_frames)
    kept = set(sparse_labeled_indices(window, interval)) if window else set()
    frames = []
    for frame in video.frames:
        keep = frame.index in kept
        frames.append(dataclasses.replace(frame, persons=list(frame.persons) if keep else [], is_labeled=keep,
                                          ignore_regions=list(frame.ignore_regions), extra=dict(frame.extra)))
    plan = {"window": [window[0], window[-1]] if window else None, "kept": sorted(kept),
            "labeled": len(video.labeled_indices())}
    return dataclasses.replace(video, frames=frames, extra=dict(video.extra)), plan


# ------------------------------------------------------------------------------------------------ stage 3


def window_video(video: Video, first: int, last: int) -> Video:
    """Frames first..last of `video`, re-indexed from 0 (file names and ids kept)."""
    frames = [dataclasses.replace(f, index=i) for i, f in enumerate(video.frames[first : last + 1])]
    return dataclasses.replace(video, frames=frames)


def merge_pseudolabels(sparse: Video, propagated: Video, first: int, score_threshold: float = 0.0) -> tuple[Video,
                                                                                                           dict]:
    """The sparse video with the propagated poses of `propagated` (a window starting at frame `first`) put on
    its unlabeled frames; returns (video, counts). Joints below `score_threshold` are unannotated; poses left with
    no joint are dropped. Pseudo-labelled frames become labeled, with extra["pseudo_labeled"] = True."""
    counts = {"pseudo_frames": 0, "pseudo_persons": 0, "dropped_persons": 0, "dropped_joints": 0}
    frames = list(sparse.frames)
    for pf in propagated.frames:
        index = first + pf.index
        frame = frames[index]
        if frame.is_labeled:
            continue
        persons = []
        for p in pf.persons:
            if not p.propagated:
                continue
            q = dataclasses.replace(p, keypoints=p.keypoints.copy(), extra=dict(p.extra))
            if score_threshold > 0 and q.scores is not None:
                low = q.annotated & (q.scores < score_threshold)
                counts["dropped_joints"] += int(low.sum())
                q.keypoints[low] = 0.0
            if not q.annotated.any():
                counts["dropped_persons"] += 1
                continue
            persons.append(q)
        counts["pseudo_frames"] += 1
        counts["pseudo_persons"] += len(persons)
        frames[index] = dataclasses.replace(frame, persons=persons, is_labeled=True,
                                            extra={**frame.extra, "pseudo_labeled": True})
    return dataclasses.replace(sparse, frames=frames), counts


def pseudo_label_quality(originals: Sequence[Video], merged: Sequence[Video]) -> Any:
    """PoseTrack mAP of the pseudo-labels against the original labels of the same frames (None when the original
    has no label on any pseudo-labelled frame)."""
    from stdpose.eval.posetrack_map import evaluate_posetrack

    gts, preds = [], []
    for original, video in zip(originals, merged):
        pseudo = {f.index for f in video.frames if f.extra.get("pseudo_labeled")}
        gt_frames = [dataclasses.replace(f, is_labeled=f.is_labeled and f.index in pseudo) for f in original.frames]
        if not any(f.is_labeled and f.persons for f in gt_frames):
            continue
        gts.append(dataclasses.replace(original, frames=gt_frames))
        preds.append(dataclasses.replace(video, frames=[f for f in video.frames if f.index in pseudo]))
    if not gts:
        return None
    return evaluate_posetrack(gts, preds, strict=False, labeled_only=True)  # is_labeled marks the scored frames


# ------------------------------------------------------------------------------------------------ pipeline


@dataclass
class PipelineResult:
    """Where each stage left its output, and the headline numbers."""

    output_dir: Path
    stages_run: list[str]
    stages_skipped: list[str]
    summary: dict[str, Any]


def _video_file(folder: Path, video: Video) -> Path:
    """folder/<video name>.json, refused (DataError naming the value) when the name would leave the folder."""
    from stdpose.paths import confined, safe_file_name

    return confined(folder, f"{safe_file_name(video.name, 'video name', video.source)}.json", "video name",
                    video.source)


def _rank() -> int:
    for var in ("RANK", "SLURM_PROCID"):
        if var in os.environ:
            return int(os.environ[var])
    return int(os.environ.get("NODE_RANK", "0")) * 1000 + int(os.environ.get("LOCAL_RANK", "0"))


def _wait_for(marker: Path, what: str, poll_s: float = 5.0) -> None:
    log.info("rank %d waits for rank 0 to finish %s", _rank(), what)
    while not marker.exists():
        time.sleep(poll_s)


class PseudoLabelPipeline:
    """Runs the four stages of a pseudo-label config (see the module docstring)."""

    def __init__(self, cfg: dict, output_dir: str | Path | None = None, say: Callable[[str], None] = print):
        self.cfg = cfg
        self.out = Path(output_dir or cfg["output_dir"])
        self.pl = cfg["pseudolabel"]
        self.say = say if _rank() == 0 else (lambda _text: None)

    def stage_dir(self, stage: str) -> Path:
        return self.out / stage

    def done(self, stage: str) -> dict | None:
        marker = self.stage_dir(stage) / MARKER
        if not marker.exists():
            return None
        import json

        return json.loads(marker.read_text(encoding="utf-8"))

    def redo(self, stage: str) -> None:
        """Forget `stage` and every later stage (their markers; trainings restart from scratch)."""
        if stage not in STAGES:
            raise ConfigError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
        for name in STAGES[STAGES.index(stage):]:
            folder = self.stage_dir(name)
            if folder.exists() and _rank() == 0:
                shutil.rmtree(folder)

    def fingerprint(self, stage: str) -> str:
        """Hash of every setting that shapes `stage`'s output and the stages before it (not devices, workers,
        progress bars or logging), so a finished stage is only reused under the same settings."""
        import hashlib
        import json

        pl = self.pl
        parts: dict[str, Any] = {"train": self.cfg["data"]["train"], "interval": pl["interval"],
                                 "middle_frames": pl["middle_frames"]}
        if stage in ("propagation", "pseudolabels") or (stage == "estimation"
                                                        and pl["estimation_data"] == "pseudolabels"):
            parts["propagation"] = _semantic(self.cfg["propagation"])
        if stage in ("pseudolabels", "estimation"):
            parts.update({k: pl[k] for k in ("score_threshold", "detections", "checkpoint", "estimation_data")})
        if stage != "estimation" or pl["estimation_data"] == "pseudolabels":
            parts["selection_videos"] = pl["selection_videos"]
        if stage == "estimation":
            parts["estimation"] = _semantic(self.cfg["estimation"])
        text = json.dumps(parts, sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def _mark(self, stage: str, info: dict) -> dict:
        info = {"stage": stage, "fingerprint": self.fingerprint(stage), **info}
        atomic_write_json(self.stage_dir(stage) / MARKER, info, indent=1)
        return info

    def run(self) -> PipelineResult:
        from stdpose.engine.config import dump_config

        stages = [s for s in STAGES if self.pl["estimation_data"] == "pseudolabels" or s in ("sparse", "estimation")]
        for stage in stages:  # refuse stale outputs before touching anything
            previous = self.done(stage)
            if previous is not None and previous.get("fingerprint") != self.fingerprint(stage):
                raise ConfigError(
                    f"stage {stage!r} in {self.stage_dir(stage)} was made with other settings than this config's "
                    f"(data, interval, window, a stage experiment or a pseudo-label setting changed). Run again with "
                    f"--redo {stage} to replace it, or choose another --output-dir"
                )
        if _rank() == 0:
            atomic_write_text(self.out / "config.yaml", dump_config(self.cfg))
        ran, skipped = [], []
        results: dict[str, Any] = {}
        for stage in stages:
            previous = self.done(stage)
            if previous is not None:
                self.say(f"[{stage}] done before ({self.stage_dir(stage) / MARKER}); skipped")
                skipped.append(stage)
                results[stage] = previous
                continue
            self.say(f"[{stage}] running")
            results[stage] = getattr(self, f"_run_{stage}")(results)
            ran.append(stage)
        summary = {"output_dir": str(self.out), "interval": self.pl["interval"],
                   "estimation_data": self.pl["estimation_data"], **{s: results[s] for s in stages}}
        if _rank() == 0:
            atomic_write_json(self.out / "summary.json", summary, indent=1)
        return PipelineResult(self.out, ran, skipped, summary)

    # ------------------------------------------------------------------------------------------ stages

    def _run_sparse(self, results: dict) -> dict:
        from stdpose.data.formats import read_annotations, write_posetrack18

        folder = self.stage_dir("sparse")
        if _rank() != 0:
            _wait_for(folder / MARKER, "the sparse training set")
            return self.done("sparse") or {}
        videos = read_annotations(self.cfg["data"]["train"]["annotations"])
        plans, labels_before, labels_kept, skipped = {}, 0, 0, []
        usable = [v for v in videos if label_window(v.labeled_indices(), self.pl["middle_frames"])]
        held_out = set(selection_names([v.name for v in usable], self.pl["selection_videos"]))
        for video in videos:
            sparse, plan = sparsify_video(video, self.pl["interval"], self.pl["middle_frames"])
            labels_before += plan["labeled"]
            if not plan["kept"]:
                skipped.append(video.name)
                continue
            labels_kept += len(plan["kept"])
            plans[video.name] = plan
            write_posetrack18(sparse, _video_file(folder / "annotations", video))
            if video.name in held_out:  # model selection only: its window's labels, not in propagation training
                write_posetrack18(windowed_labels(video, self.pl["middle_frames"]),
                                  _video_file(folder / "selection", video))
            else:
                write_posetrack18(sparse, _video_file(folder / "propagation_train", video))
        if not plans:
            raise DataError(self.cfg["data"]["train"]["annotations"], "no video has a labeled frame to keep")
        window_frames = sum(p["window"][1] - p["window"][0] + 1 for p in plans.values())
        atomic_write_json(folder / "plan.json", plans, indent=1)
        self.say(f"[sparse] {len(plans)} video(s): kept {labels_kept} labeled frame(s) of {window_frames} in the "
                 f"label windows ({100.0 * labels_kept / max(window_frames, 1):.1f}%), every {self.pl['interval']} "
                 f"frames" + (f"; {len(skipped)} video(s) without labels skipped" if skipped else ""))
        return self._mark("sparse", {"annotations": str(folder / "annotations"), "videos": len(plans),
                                     "propagation_train": str(folder / "propagation_train"),
                                     "selection": str(folder / "selection") if held_out else None,
                                     "selection_videos": sorted(held_out),
                                     "labels_in_source": labels_before, "labels_kept": labels_kept,
                                     "window_frames": window_frames,
                                     "labeled_fraction": labels_kept / max(window_frames, 1),
                                     "videos_without_labels": skipped})

    def stage_experiment(self, stage: str, results: dict) -> dict:
        """The engine config a training stage runs with: its training set from the earlier stages, and for the
        propagation stage the held-out TRAINING videos as its validation set (checkpoint selection)."""
        cfg = copy.deepcopy(self.cfg[stage])
        root = self.cfg["data"]["train"]["image_root"]
        sparse = results["sparse"]
        if stage == "propagation":
            cfg["data"]["train"] = {"annotations": sparse.get("propagation_train") or sparse["annotations"],
                                    "image_root": root}
            selection = sparse.get("selection")
            if selection:  # else (selection_videos: 0, checkpoint: last) data.val is only logged, never selects
                cfg["data"]["val"] = {"annotations": selection, "image_root": root}
        else:
            source = results["pseudolabels"] if self.pl["estimation_data"] == "pseudolabels" else sparse
            cfg["data"]["train"] = {"annotations": source["annotations"], "image_root": root}
        return cfg

    def _train(self, stage: str, results: dict) -> dict:
        from stdpose.engine.trainer import find_resume_checkpoint, train

        cfg = self.stage_experiment(stage, results)
        folder = self.stage_dir(stage)
        cfg["output_dir"] = str(folder)
        resume = find_resume_checkpoint(folder)
        if resume is not None:
            self.say(f"[{stage}] continuing the interrupted training from {resume}")
        result = train(cfg, resume=str(resume) if resume else None, output_dir=folder)
        if result.interrupted:
            raise KeyboardInterrupt
        best = result.best_checkpoint if result.best_checkpoint and result.best_checkpoint.exists() else None
        if stage == "estimation":  # its val set is the reported split: report the last model, select nothing
            best = None
        checkpoint = best if (self.pl["checkpoint"] == "best" and best) else result.last_checkpoint
        if checkpoint is None:
            raise DataError(folder, f"the {stage} training wrote no checkpoint")
        val_map = result.best_score if best is not None else result.metrics.get("val/mAP")
        self.say(f"[{stage}] checkpoint {checkpoint}" + (f" (val mAP {val_map:.2f})" if val_map is not None else ""))
        info = {"checkpoint": str(checkpoint), "last_checkpoint": str(result.last_checkpoint),
                "best_checkpoint": str(best) if best else None, "val_mAP": val_map,
                "val_metrics": {k[4:]: v for k, v in result.metrics.items() if k.startswith("val/")},
                "epochs": result.epoch, "steps": result.global_step}
        return self._mark(stage, info) if _rank() == 0 else info

    def _run_propagation(self, results: dict) -> dict:
        return self._train("propagation", results)

    def _run_estimation(self, results: dict) -> dict:
        return self._train("estimation", results)

    def _run_pseudolabels(self, results: dict) -> dict:
        import json

        from stdpose.data.formats import read_annotations, read_detections, write_posetrack18
        from stdpose.data.video import VideoFrames
        from stdpose.propagation.learned import STDPosePropagator
        from stdpose.propagation.protocol import extended
        from stdpose.propagation.tracks import detections_for_video

        folder = self.stage_dir("pseudolabels")
        if _rank() != 0:
            _wait_for(folder / MARKER, "the pseudo-labels")
            return self.done("pseudolabels") or {}
        device = self.pl["device"]
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        checkpoint = results["propagation"]["checkpoint"]
        propagator = STDPosePropagator.from_checkpoint(checkpoint, device=device, batch_size=self.pl["batch_size"],
                                                       progress=bool(self.pl["progress"]))
        detections = read_detections(self.pl["detections"]) if self.pl["detections"] else None
        plans = json.loads((self.stage_dir("sparse") / "plan.json").read_text(encoding="utf-8"))
        originals = {v.name: v for v in read_annotations(self.cfg["data"]["train"]["annotations"])}
        sparse_videos = read_annotations(results["sparse"]["annotations"])
        image_root = self.cfg["data"]["train"]["image_root"]
        totals: dict[str, int] = {}
        merged_all, originals_used = [], []
        start = time.perf_counter()
        videos = sparse_videos
        if self.pl["progress"]:
            from tqdm import tqdm

            videos = tqdm(sparse_videos, desc="pseudo-labels", unit="video")
        for video in videos:
            first, last = plans[video.name]["window"]
            part = window_video(video, first, last)
            labeled = part.labeled_indices()
            if detections is not None:
                propagator.detections = detections_for_video(part, detections)
            frames = VideoFrames(part, image_root)
            with extended(propagator, part.num_frames):  # the whole window, ends included (propagation is bounded)
                propagated = propagator.propagate(part, frames, labeled)
            merged, counts = merge_pseudolabels(video, propagated, first, self.pl["score_threshold"])
            for k, v in counts.items():
                totals[k] = totals.get(k, 0) + v
            write_posetrack18(merged, _video_file(folder / "annotations", video))
            merged_all.append(merged)
            originals_used.append(originals[video.name])
        seconds = time.perf_counter() - start
        info: dict[str, Any] = {"annotations": str(folder / "annotations"), "checkpoint": checkpoint,
                                "score_threshold": self.pl["score_threshold"], "seconds": round(seconds, 2), **totals}
        quality = pseudo_label_quality(originals_used, merged_all)
        if quality is not None:
            info["quality"] = quality.to_dict()
            atomic_write_json(folder / "quality.json", quality.to_dict(), indent=1)
            self.say(quality.format_table(title="pseudo-labels vs the dropped human labels (training set)",
                                          label=f"T={self.pl['interval']}"))
        self.say(f"[pseudolabels] {totals.get('pseudo_persons', 0)} pseudo pose(s) on "
                 f"{totals.get('pseudo_frames', 0)} frame(s) in {seconds:.1f} s"
                 + (f"; {totals['dropped_joints']} joint(s) below {self.pl['score_threshold']} dropped"
                    if totals.get("dropped_joints") else ""))
        return self._mark("pseudolabels", info)


def quality_mean(summary: dict) -> float | None:
    """The pseudo-labels' Mean mAP from a pipeline summary (None when not measured)."""
    quality = (summary.get("pseudolabels") or {}).get("quality") or {}
    value = (quality.get("groups") or {}).get("Mean")
    return None if value is None else float(value)


def labeled_fraction(summary: dict) -> float:
    return float(summary["sparse"]["labeled_fraction"])
