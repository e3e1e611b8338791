"""Do the propagated joint scores mean something? Calibration on real frames with hand labels (vtest.avi).

For each method, the share of propagated joints within PCKh@0.5 of a hand label, per score bin: a useful score
rises with the bin, and `--review-below S` then flags the joints that are most likely wrong.

Data (../shared/data): `vtest_hand/vtest_keyframes_pt18.json` (frames 0, 7, 14, 21), `vtest_checks_pt18.json`
(frames 10, 17) and the project fixture `tests/fixtures/vtest_hand.json` (frame 9, labeled separately) on
`opencv_samples/vtest.avi`. Setups (labels given -> frames scored): {0,7,14,21} -> 9,10,17; {0,14,21} -> 7,9,10;
{0,7,21} -> 10,14,17; {0,21} -> 7,9,10,14,17: gaps of 7, 14 and 21 frames, so the scores spread.
Correct = within half the head size of the hand label of the same track (PCKh@0.5, poseval's threshold; the
labels' track ids agree across the three files, so persons are paired by track id); the vtest labels have no head
boxes, so the head box is a square of side 1.2 x |head_top - head_bottom| (the rule the
fixture's head boxes follow). Ears are never labeled and not counted.

    PYTHONPATH=src python benchmarks/score_calibration.py [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

import numpy as np

from stdpose.atomic import atomic_write_json, atomic_write_text
from stdpose.data.formats import read_annotations
from stdpose.data.records import Frame, Video
from stdpose.data.video import open_frames
from stdpose.eval.matching import head_size
from stdpose.eval.posetrack_map import DIST_THRESH
from stdpose.propagation.methods import get_propagator
from stdpose.skeleton import EVALUATED_SLOTS, SLOT

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STDPOSE_SHARED_DATA", REPO.parent / "shared" / "data"))
SETUPS = (((0, 7, 14, 21), (9, 10, 17)), ((0, 14, 21), (7, 9, 10)), ((0, 7, 21), (10, 14, 17)),
          ((0, 21), (7, 9, 10, 14, 17)))
BINS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0001)
METHODS = ("nearest", "linear", "flow")


def _head_box(person) -> tuple[float, float, float, float] | None:
    top, bottom = person.keypoints[SLOT["head_top"]], person.keypoints[SLOT["head_bottom"]]
    if top[2] <= 0 or bottom[2] <= 0:
        return None
    side = 1.2 * float(np.hypot(*(top[:2] - bottom[:2])))
    cx, cy = (top[:2] + bottom[:2]) / 2
    return (cx - side / 2, cy - side / 2, side, side)


def hand_labels(shared: Path, fixture: Path) -> dict[int, list]:
    """Frame index -> hand-labeled persons (with head boxes) of vtest.avi frames 0-21."""
    labels: dict[int, list] = {}
    files = [shared / "vtest_hand" / "vtest_keyframes_pt18.json", shared / "vtest_hand" / "vtest_checks_pt18.json"]
    for path in files:
        for frame in read_annotations(path)[0].frames:
            labels[int(Path(frame.file_name).stem)] = frame.persons
    fixture_frames = read_annotations(fixture)[0].frames
    labels.setdefault(9, next(f for f in fixture_frames if Path(f.file_name).stem == "000009").persons)
    for persons in labels.values():
        for p in persons:
            if p.bbox_head is None:
                p.bbox_head = _head_box(p)
    return labels


def sparse_video(labels: dict[int, list], given: tuple[int, ...], n: int = 22) -> Video:
    frames = [Frame(i, f"vtest/{i:06d}.jpg", persons=copy.deepcopy(labels[i]) if i in given else [],
                    is_labeled=i in given) for i in range(n)]
    return Video("vtest", frames)


def scored_joints(pred_frame: Frame, gt_persons: list) -> tuple[np.ndarray, np.ndarray]:
    """(scores, correct) of the evaluated joints of the propagated persons on one frame that have a hand label of
    the same track on that frame (a person the labeler skipped, e.g. hidden, cannot be judged)."""
    slots = np.asarray(EVALUATED_SLOTS)
    gt_by_track = {p.track_id: p for p in gt_persons if p.bbox_head is not None}
    scores, correct = [], []
    for p in pred_frame.persons:
        g = gt_by_track.get(p.track_id)
        if not p.propagated or g is None:
            continue
        both = p.annotated[slots] & g.annotated[slots]
        dist = np.linalg.norm(p.keypoints[slots, :2] - g.keypoints[slots, :2], axis=1)
        scores.append(p.scores[slots][both])
        correct.append(dist[both] <= DIST_THRESH * head_size(g.bbox_head))
    if not scores:
        return np.zeros(0), np.zeros(0, bool)
    return np.concatenate(scores), np.concatenate(correct)


def calibrate(shared: Path, fixture: Path) -> dict:
    labels = hand_labels(shared, fixture)
    reader = open_frames(shared / "opencv_samples" / "vtest.avi")
    out: dict = {}
    for method in METHODS:
        prop = get_propagator(method)
        scores, correct, seconds = [], [], 0.0
        for given, scored in SETUPS:
            video = sparse_video(labels, given)
            start = time.perf_counter()
            result = prop.propagate(video, reader if method == "flow" else None, list(given))
            seconds += time.perf_counter() - start
            for i in scored:
                s, c = scored_joints(result.frames[i], labels[i])
                scores.append(s)
                correct.append(c)
        s, c = np.concatenate(scores), np.concatenate(correct)
        bins = []
        for lo, hi in zip(BINS[:-1], BINS[1:]):
            m = (s >= lo) & (s < hi)
            bins.append({"bin": f"{lo:.1f}-{min(hi, 1.0):.1f}", "joints": int(m.sum()),
                         "correct": float(c[m].mean()) if m.any() else None})
        out[method] = {"joints": int(len(s)), "correct": float(c.mean()), "bins": bins, "auroc": _auroc(s, c),
                       "seconds": seconds}
    return out


def _auroc(scores: np.ndarray, correct: np.ndarray) -> float | None:
    """Probability that a correct joint scores above a wrong one (ties count half): 0.5 = the score is noise."""
    pos, neg = scores[correct], scores[~correct]
    if not len(pos) or not len(neg):
        return None
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def markdown(res: dict) -> str:
    lines = ["# Score calibration on real frames (vtest.avi, hand labels)", "",
             "Share of propagated joints within PCKh@0.5 of the hand label, per joint-score bin (joints in the bin).",
             "Made by `benchmarks/score_calibration.py`; setups and rules in its docstring.", "",
             "| method | " + " | ".join(b["bin"] for b in next(iter(res.values()))["bins"]) + " | all | AUROC |",
             "|---|" + "---|" * (len(BINS) + 1)]
    for method, r in res.items():
        cells = [f"{b['correct'] * 100:.0f}% ({b['joints']})" if b["correct"] is not None else "- (0)"
                 for b in r["bins"]]
        auroc = f"{r['auroc']:.2f}" if r["auroc"] is not None else "-"
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {r['correct'] * 100:.0f}% ({r['joints']}) | {auroc} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=None, help="also write score_calibration.{md,json} here")
    args = parser.parse_args(argv)
    if not (args.shared / "vtest_hand").is_dir():
        print(f"no hand labels under {args.shared}", file=sys.stderr)
        return 2
    res = calibrate(args.shared, REPO / "tests" / "fixtures" / "vtest_hand.json")
    text = markdown(res)
    print(text)
    if args.out:
        atomic_write_text(args.out / "score_calibration.md", text)
        atomic_write_json(args.out / "score_calibration.json", res, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
