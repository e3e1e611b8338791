"""Who is who between two labeled frames when the labels carry no track ids.

A person of the earlier label is carried to the later frame by optical flow (Farneback, `flow.FlowCache`, the
frames between the two labels followed one step at a time) and compared with each person of the later label by
OKS (object keypoint similarity, COCO's formula with the later person's box as scale). Raw box overlap is not used:
people walking across the image move further between two labels T frames apart than their boxes are wide.

The cost of a pair is 1 - OKS; the Hungarian assignment minimises the total cost. A pair is accepted only when
OKS >= `MIN_MATCH_OKS` and no other candidate for either of its two persons comes within `AMBIGUITY_MARGIN` of it
(two people side by side, a crossing); otherwise it is refused and reported, and the later person starts a new
track. Without frames there is no motion compensation: the poses are compared where they were labeled, which only
matches people who barely moved (the note says so).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stdpose.data.records import Person
from stdpose.skeleton import SLOT

MIN_MATCH_OKS = 0.5  # below this the two poses are not the same person
AMBIGUITY_MARGIN = 0.15  # an alternative within this OKS of the chosen pair makes the match ambiguous

# COCO's per-joint OKS constants on PoseTrack slots; head_bottom/head_top have no COCO joint and take the
# shoulders' 0.079 (choice: a neck/crown is clicked about as precisely as a shoulder).
_SIGMAS = {"nose": .026, "head_bottom": .079, "head_top": .079, "left_ear": .035, "right_ear": .035,
           "left_shoulder": .079, "right_shoulder": .079, "left_elbow": .072, "right_elbow": .072,
           "left_wrist": .062, "right_wrist": .062, "left_hip": .107, "right_hip": .107, "left_knee": .087,
           "right_knee": .087, "left_ankle": .089, "right_ankle": .089}
OKS_SIGMAS = np.array([_SIGMAS[name] for name in sorted(SLOT, key=SLOT.get)])


@dataclass
class MatchResult:
    """Accepted pairs (earlier index, later index, cost = 1 - OKS), notes on refused ones, how motion was handled."""

    pairs: list[tuple[int, int, float]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    motion: str = "no motion compensation"
    oks: np.ndarray | None = None


def _scale(person: Person) -> float:
    box = person.bbox if person.bbox is not None else person.box_from_keypoints()
    if box is None:
        return 1.0
    return float(max(box[2] * box[3], 1.0))


def oks(a_xy: np.ndarray, a_mask: np.ndarray, b: Person) -> float:
    """OKS between joints `a_xy` (17, 2) with mask (17,) and person `b`; 0 when they share no annotated joint."""
    common = a_mask & b.annotated
    if not common.any():
        return 0.0
    d2 = np.sum((a_xy[common] - b.keypoints[common, :2]) ** 2, axis=1)
    k2 = (2 * OKS_SIGMAS[common]) ** 2
    return float(np.mean(np.exp(-d2 / (2 * _scale(b) * k2))))


def _warp(persons: Sequence[Person], start: int, stop: int, frames: Any) -> tuple[list[np.ndarray], str]:
    """Joints of `persons` (on frame `start`) carried to frame `stop` by optical flow, when frames are given."""
    if frames is None or start == stop:
        return [p.keypoints[:, :2].copy() for p in persons], "no motion compensation (no video frames)"
    from stdpose.propagation.flow import FlowCache

    cache = FlowCache(frames)
    try:
        out = []
        for p in persons:
            xy = p.keypoints[:, :2].copy()
            idx = np.flatnonzero(p.annotated)
            if len(idx):
                xy[idx] = cache.track(xy[idx], start, stop)[stop]
            out.append(xy)
    finally:
        cache.release()
    return out, "poses carried by optical flow"


def match_untracked(earlier: Sequence[Person], later: Sequence[Person], start: int, stop: int,
                    frames: Any = None) -> MatchResult:
    """Match persons of the label on frame `start` to those of the label on frame `stop` (see the module doc)."""
    result = MatchResult()
    if not earlier or not later:
        return result
    warped, result.motion = _warp(earlier, start, stop, frames)
    sim = np.array([[oks(xy, p.annotated, q) for q in later] for xy, p in zip(warped, earlier)])  # (E, L)
    result.oks = sim
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(1.0 - sim)
    for r, c in zip(rows, cols):
        value = sim[r, c]
        others = np.concatenate([np.delete(sim[r], c), np.delete(sim[:, c], r)])
        runner_up = float(others.max()) if others.size else 0.0
        if value < MIN_MATCH_OKS:
            if value > 0.05:
                result.refused.append(f"person {r} of frame {start} and person {c} of frame {stop} are not "
                                      f"similar enough to be one track (OKS {value:.2f} < {MIN_MATCH_OKS}; "
                                      f"{result.motion}): new track")
            continue
        if value - runner_up < AMBIGUITY_MARGIN:
            result.refused.append(f"ambiguous: person {c} of frame {stop} matches person {r} of frame {start} "
                                  f"with OKS {value:.2f} but another candidate has {runner_up:.2f}; not "
                                  "continued (new track) - give the labels track ids to decide")
            continue
        result.pairs.append((int(r), int(c), float(1.0 - value)))
    return result
