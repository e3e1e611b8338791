"""Weight-free propagation on REAL footage with dense hand labels: PCKh@0.5, PCKh@0.2 and pixel error of the dropped
frames at T = 5, 7, 10, 15, 20, 30, inside the labeled span and outside it, plus the score calibration of `auto`
and the speed of `auto` against full-frame `flow` on the whole vtest.avi.

Usage:
    python benchmarks/real_propagation.py                       # table + calibration + timing
    python benchmarks/real_propagation.py --no-timing --methods linear flow auto auto:dis
    python benchmarks/real_propagation.py --json out.json

Data: tests/fixtures/vtest_dense_hand_60.json (frames 0-60 of ../shared/data/opencv_samples/vtest.avi, 3 walkers,
21 labeled frames; how it was made: tests/fixtures/README_vtest_dense.md). auto's parameters were chosen on frames
0-30 only (vtest_dense_hand.json); the "held out" table scores only frames 31-60, labeled afterwards. Protocol "every"
(`stdpose.propagation.protocol.sparsify`): the labels of frames 0, T, 2T, ... are kept (all are labeled in the
fixture), every other labeled frame is scored. "inside": scored frames between the first and the last kept label;
"outside": after the last kept label (extrapolation). PCKh: a joint is correct when its distance to the hand label
is at most thr x head size (poseval's 0.6 x head-box diagonal, `stdpose.eval.matching.head_size`), matched by
track id. Second real set: tests/fixtures/000001_mpiinew_test_dense_hand.json (PoseTrack18 test clip, fast pan;
frames 0, 9 and track 1 on 3, 6) at T = 5 and 9. Methods: "name" or "name:key=value,..." (options of the
propagator, e.g. auto:flow=farneback = the auto method with ROI Farneback flow).

Timing: the whole vtest.avi (795 frames) with labels every 7 frames - plausible poses made once by running `auto`
from the fixture's frame-0 labels over the video (timing only, never scored) - propagated by full-frame `flow` and
by `auto` in one run, both reading frames through the same `FrameReader` (decode included in both).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "vtest_dense_hand_60.json"
TUNED_LAST_FRAME = 30  # auto's parameters were chosen on frames 0-30; frames 31-60 were labeled afterwards
SHARED = Path(os.environ.get("STDPOSE_SHARED_DATA") or REPO.parent / "shared" / "data")  # as tests/conftest.py
VTEST = SHARED / "opencv_samples" / "vtest.avi"
POSETRACK_FIXTURE = REPO / "tests" / "fixtures" / "000001_mpiinew_test_dense_hand.json"
POSETRACK_FRAMES = SHARED / "posetrack18_samples" / "videos" / "000001_mpiinew_test"
POSETRACK_INTERVALS = (5, 9)  # labeled 0, 3, 6, 9: T=5 keeps 0, 6 (scores 3 inside, 9 outside); T=9 keeps 0, 9
INTERVALS = (5, 7, 10, 15, 20, 30)
THRESHOLDS = (0.5, 0.2)
SCORE_BINS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.01)
FILL_ALL = 10**6  # `extend` that fills every frame before the first and after the last label
BOOL_OPTIONS = ("use_appearance", "end_motion")  # "name:key=0|1" options that are booleans


def load_fixture(path: Path = FIXTURE, video_path: Path = VTEST) -> tuple[Any, Any]:
    """(video labels aligned to the video's frames, frames in memory) of the dense hand-labeled fixture."""
    from stdpose.data.formats import read_annotations
    from stdpose.data.video import open_frames
    from stdpose.propagation.alignment import align_labels

    video = read_annotations(path)[0]
    reader = open_frames(video_path)
    alignment = align_labels(video, len(reader), None)
    work = alignment.video
    frames = [reader[alignment.video_index[i]] for i in range(work.num_frames)]
    return work, frames


def make_propagator(spec: str, extend: int = FILL_ALL) -> Any:
    """A propagator from "name" or "name:key=value,key=value" (e.g. "auto:flow=dis,use_appearance=0"); it fills
    `extend` frames past the first / last kept label (default: to the video ends, so "outside" is scored)."""
    from stdpose.propagation.methods import get_propagator

    name, _, opts = spec.partition(":")
    kwargs: dict[str, Any] = {}
    for item in filter(None, opts.split(",")):
        key, _, value = item.partition("=")
        kwargs[key] = value if key == "flow" else (bool(int(value)) if key in BOOL_OPTIONS else float(value))
    return get_propagator(name, extend=extend, **kwargs)


def joint_errors(gt: Any, pred: Any, kept: list[int]) -> list[dict[str, Any]]:
    """One row per ground-truth joint of a scored frame: error in px and in head sizes, score, inside/outside."""
    from stdpose.eval.matching import head_size

    rows = []
    last = max(kept)
    first = min(kept)
    for f in gt.frames:
        if not f.is_labeled:
            continue
        predicted = {p.track_id: p for p in pred.frames[f.index].persons}
        where = "inside" if first < f.index < last else "outside"
        for g in f.persons:
            hs = head_size(g.bbox_head) if g.bbox_head is not None else np.nan
            p = predicted.get(g.track_id)
            for j in np.flatnonzero(g.annotated):
                if p is None or not p.annotated[j]:
                    err, score = np.inf, 0.0
                else:
                    err = float(np.linalg.norm(p.keypoints[j, :2] - g.keypoints[j, :2]))
                    score = float(p.scores[j]) if p.scores is not None else 1.0
                rows.append({"frame": f.index, "track": g.track_id, "joint": int(j), "err": err, "head": hs,
                             "score": score, "where": where})
    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
    if not rows:
        return {"n": 0}
    err = np.array([r["err"] for r in rows])
    head = np.array([r["head"] for r in rows])
    out: dict[str, float] = {"n": len(rows)}
    for thr in THRESHOLDS:
        out[f"pckh@{thr}"] = float(100.0 * np.mean(err <= thr * head))
    finite = np.isfinite(err)
    out["px"] = float(np.mean(err[finite])) if finite.any() else float("nan")
    out["missing"] = int((~finite).sum())
    return out


def evaluate(video: Any, frames: Any, methods: list[str], intervals: tuple[int, ...]) -> dict[str, Any]:
    from stdpose.propagation.protocol import sparsify

    table: dict[str, Any] = {}
    calib_rows: dict[str, list] = {m: [] for m in methods}
    for T in intervals:
        sparse, gt, kept = sparsify(video, T, "every")
        for m in methods:
            prop = make_propagator(m)
            out = prop.propagate(sparse, frames, kept)
            rows = joint_errors(gt, out, kept)
            calib_rows[m].extend(rows)
            table[f"{T}/{m}"] = {"kept": kept, "all": summarize(rows),
                                 "inside": summarize([r for r in rows if r["where"] == "inside"]),
                                 "outside": summarize([r for r in rows if r["where"] == "outside"]),
                                 "held_out": summarize([r for r in rows if r["frame"] > TUNED_LAST_FRAME])}
    calibration = {m: calibrate(r) for m, r in calib_rows.items()}
    return {"table": table, "calibration": calibration}


def calibrate(rows: list[dict[str, Any]], thr: float = 0.5) -> list[dict[str, Any]]:
    """Share of joints within PCKh@thr per score bin (all T together)."""
    score = np.array([r["score"] for r in rows])
    ok = np.array([r["err"] <= thr * r["head"] for r in rows])
    out = []
    for lo, hi in zip(SCORE_BINS[:-1], SCORE_BINS[1:]):
        sel = (score >= lo) & (score < hi)
        out.append({"bin": f"{lo:.1f}-{min(hi, 1.0):.1f}", "n": int(sel.sum()),
                    "pckh": float(100 * ok[sel].mean()) if sel.any() else None})
    return out


def timing_labels(video_path: Path = VTEST) -> Any:
    """Plausible poses on every frame of vtest.avi (for timing only, never scored): the fixture's three walkers of
    frame 0 followed over the whole video by `auto` (one tail segment)."""
    import dataclasses

    from stdpose.data.formats import read_annotations
    from stdpose.data.records import Frame, Video
    from stdpose.data.video import open_frames
    from stdpose.propagation.methods import get_propagator

    reader = open_frames(video_path)
    seed = read_annotations(FIXTURE)[0].frames[0]
    frames = [Frame(i, f"vtest/{i:06d}.jpg", persons=list(seed.persons) if i == 0 else [], is_labeled=i == 0)
              for i in range(len(reader))]
    out = get_propagator("auto", extend=FILL_ALL).propagate(Video("vtest", frames), reader, [0])
    labeled = [dataclasses.replace(f, is_labeled=True,
                                   persons=[dataclasses.replace(p, propagated=False) for p in f.persons])
               for f in out.frames]
    return dataclasses.replace(out, frames=labeled), reader


def timing(video_path: Path = VTEST, interval: int = 7) -> dict[str, float]:
    """Seconds of full-frame `flow` and of `auto` on the whole vtest.avi with labels every `interval` frames,
    measured one after the other in this process (frames decoded by the same reader for both)."""
    from stdpose.propagation.methods import get_propagator
    from stdpose.propagation.protocol import sparsify

    labeled_video, reader = timing_labels(video_path)
    sparse, _, kept = sparsify(labeled_video, interval, "every")
    out: dict[str, float] = {"frames": len(reader), "labeled": len(kept)}
    for name in ("flow", "auto"):
        t0 = time.perf_counter()
        get_propagator(name, extend=FILL_ALL).propagate(sparse, reader, kept)
        out[name] = time.perf_counter() - t0
    out["ratio"] = out["auto"] / out["flow"]
    return out


def format_held_out(res: dict[str, Any], methods: list[str], intervals: tuple[int, ...]) -> str:
    lines = ["| T | method | PCKh@0.5 | PCKh@0.2 | px | joints |", "|" + "---|" * 6]
    for T in intervals:
        for m in methods:
            r = res["table"][f"{T}/{m}"].get("held_out", {"n": 0})
            if not r["n"]:
                continue
            lines.append(f"| {T} | {m} | {r['pckh@0.5']:.1f} | {r['pckh@0.2']:.1f} | {r['px']:.1f} | {r['n']} |")
    return "\n".join(lines)


def format_table(res: dict[str, Any], methods: list[str], intervals: tuple[int, ...]) -> str:
    lines = ["| T | method | PCKh@0.5 all | inside | outside | PCKh@0.2 all | inside | outside | px all | inside | "
             "outside | joints in/out |", "|" + "---|" * 12]
    for T in intervals:
        for m in methods:
            r = res["table"][f"{T}/{m}"]

            def g(part: str, key: str, r: dict = r) -> str:
                v = r[part].get(key)
                return "-" if v is None else f"{v:.1f}"

            lines.append(f"| {T} | {m} | {g('all', 'pckh@0.5')} | {g('inside', 'pckh@0.5')} | "
                         f"{g('outside', 'pckh@0.5')} | {g('all', 'pckh@0.2')} | {g('inside', 'pckh@0.2')} | "
                         f"{g('outside', 'pckh@0.2')} | {g('all', 'px')} | {g('inside', 'px')} | "
                         f"{g('outside', 'px')} | {r['inside']['n']}/{r['outside']['n']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=["linear", "flow", "auto"])
    ap.add_argument("--intervals", nargs="+", type=int, default=list(INTERVALS))
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--no-posetrack", action="store_true", help="skip the PoseTrack clip (second real set)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args(argv)
    import cv2

    cv2.setNumThreads(1)
    if not VTEST.exists():
        print(f"real data not present: {VTEST}", file=sys.stderr)
        return 2
    intervals = tuple(args.intervals)
    video, frames = load_fixture()
    res = evaluate(video, frames, args.methods, intervals)
    print(f"real propagation: {FIXTURE.name}, {len(video.labeled_indices())} labeled frames, protocol every")
    print(format_table(res, args.methods, intervals))
    print(f"\nheld out: only the scored frames after {TUNED_LAST_FRAME} (labeled after auto's parameters were chosen)")
    print(format_held_out(res, args.methods, intervals))
    for m in args.methods:
        print(f"\nscore calibration of {m} (all T): share of joints within PCKh@0.5 per score bin")
        for b in res["calibration"][m]:
            share = "-" if b["pckh"] is None else f"{b['pckh']:.1f}"
            print(f"  {b['bin']}: n={b['n']:4d}  PCKh@0.5={share}")
    if not args.no_posetrack and POSETRACK_FRAMES.exists():
        pt_video, pt_frames = load_fixture(POSETRACK_FIXTURE, POSETRACK_FRAMES)
        res["posetrack"] = evaluate(pt_video, pt_frames, args.methods, POSETRACK_INTERVALS)
        print(f"\nreal propagation: {POSETRACK_FIXTURE.name} (fast pan, track 1 scored on frames 3 and 6 only)")
        print(format_table(res["posetrack"], args.methods, POSETRACK_INTERVALS))
    if not args.no_timing:
        res["timing"] = timing()
        t = res["timing"]
        print(f"\ntiming on vtest.avi ({t['frames']} frames, {t['labeled']} labeled, every 7): full-frame flow "
              f"{t['flow']:.1f} s, auto {t['auto']:.1f} s, ratio auto/flow {t['ratio']:.3f}")
    if args.json:
        from stdpose.atomic import atomic_write_json

        atomic_write_json(args.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
