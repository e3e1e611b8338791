"""Which frames go together: (left, key, right) triplets for propagation and estimation, and label subsampling.

Propagation (paper Sec. 3, T = `interval`): labeled frames are the auxiliary frames; every unlabeled frame is a key
frame whose auxiliaries are the nearest labeled frame on each side. Where a side has no labeled frame (before the
first / after the last label), both auxiliaries are the nearest labeled frame.
Estimation: the neighbours t-1 and t+1, clamped at the video ends.
All indices are Frame.index values (0-based positions in the video).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Triplet:
    """Frame indices of one sample, always ordered (left, key, right)."""

    left: int
    key: int
    right: int

    @property
    def frames(self) -> tuple[int, int, int]:
        return (self.left, self.key, self.right)


def _sorted_unique(labeled: Sequence[int], num_frames: int | None = None) -> list[int]:
    out = sorted({int(i) for i in labeled})
    if num_frames is not None and out and (out[0] < 0 or out[-1] >= num_frames):
        raise ValueError(f"labeled frame indices must lie in [0, {num_frames}), got {out[0]}..{out[-1]}")
    return out


def nearest_labeled(index: int, labeled: Sequence[int]) -> tuple[int, int]:
    """(left, right) auxiliary frames for a key frame: the nearest labeled frame on each side; at the video ends
    (no label on one side) the nearest labeled frame on the other side is used for both. `labeled` must be sorted.
    """
    if not labeled:
        raise ValueError("no labeled frames to propagate from")
    pos = bisect.bisect_left(labeled, index)
    left = labeled[pos - 1] if pos > 0 else None
    right_pos = pos + 1 if pos < len(labeled) and labeled[pos] == index else pos
    right = labeled[right_pos] if right_pos < len(labeled) else None
    if left is None and right is None:  # the only labeled frame is `index` itself
        return index, index
    if left is None:
        return right, right  # type: ignore[return-value]
    if right is None:
        return left, left
    return left, right


def propagation_triplets(num_frames: int, labeled: Sequence[int]) -> list[Triplet]:
    """One triplet per unlabeled frame: key = the unlabeled frame, left/right = its labeled neighbours.

    Raises ValueError when there is no labeled frame (nothing to propagate from).
    """
    lab = _sorted_unique(labeled, num_frames)
    if not lab:
        raise ValueError("propagation needs at least one labeled frame")
    is_labeled = set(lab)
    out = []
    for t in range(num_frames):
        if t in is_labeled:
            continue
        left, right = nearest_labeled(t, lab)
        out.append(Triplet(left, t, right))
    return out


def estimation_triplets(num_frames: int) -> list[Triplet]:
    """Every frame is a key frame with its neighbours t-1 and t+1, clamped to [0, num_frames - 1]."""
    return [Triplet(max(t - 1, 0), t, min(t + 1, num_frames - 1)) for t in range(num_frames)]


def sparse_labeled_indices(labeled: Sequence[int], interval: int, start: int = 0) -> list[int]:
    """Keep labels every `interval` frames: the first labeled frame at or after `labeled[0] + start`, then each
    next labeled frame at least `interval` frames after the previously kept one.

    For a run of consecutive labels (PoseTrack training videos) this is exactly every `interval`-th frame; where
    labels are already sparser, the next available labeled frame is kept (the gap is never shorter than interval).
    """
    if interval < 1:
        raise ValueError(f"interval must be >= 1, got {interval}")
    lab = _sorted_unique(labeled)
    if not lab:
        return []
    out: list[int] = []
    first = lab[0] + start
    for f in lab:
        if f < first:
            continue
        if not out or f - out[-1] >= interval:
            out.append(f)
    return out


def longest_labeled_run(labeled: Sequence[int]) -> list[int]:
    """The longest run of consecutive labeled frame indices (the first one on ties)."""
    lab = _sorted_unique(labeled)
    best: list[int] = []
    run: list[int] = []
    for f in lab:
        run = run + [f] if run and f == run[-1] + 1 else [f]
        if len(run) > len(best):
            best = run
    return best


def posewarper_labeled_frames(labeled: Sequence[int], interval: int = 7, offset: int = 3) -> list[int]:
    """The PoseWarper propagation protocol on PoseTrack17 val: the frames whose labels are given.

    Within the longest run of consecutive labeled frames, labels are given at run positions offset, offset +
    interval, ... (3, 10, 17, 24 with the defaults), and also at the run's last frame when it is more than
    `offset` frames after the last of those (so no evaluated frame is further than `offset` from a label at the
    run's end). A run of at most `offset` frames gets its last frame. The other frames of the run are evaluated.
    """
    run = longest_labeled_run(labeled)
    if not run:
        return []
    picked = run[offset::interval]
    if not picked:
        return [run[-1]]
    if run[-1] - picked[-1] > offset:
        picked.append(run[-1])
    return picked


def posewarper_split(labeled: Sequence[int], interval: int = 7, offset: int = 3) -> tuple[list[int], list[int]]:
    """(given, evaluated): label-given frames of the PoseWarper protocol and the other frames of the longest run."""
    given = posewarper_labeled_frames(labeled, interval, offset)
    chosen = set(given)
    return given, [f for f in longest_labeled_run(labeled) if f not in chosen]


def training_propagation_triplets(
    labeled: Sequence[int], interval: int, rng: np.random.Generator | int | None = None
) -> list[Triplet]:
    """Training samples for propagation: every labeled frame is a key frame once, with labeled auxiliaries at the
    distances inference produces when labels are given every `interval` frames.

    At inference a key frame at offset o (1..T-1) after its left label has auxiliaries at distances o and T - o.
    Here o is drawn uniformly among the offsets for which both k - o and k + T - o are labeled. When no offset fits
    (the key is near the end of its labeled run), the video-end rule of inference is imitated: one labeled frame
    within T - 1 frames, drawn at random, serves as both auxiliaries. A labeled frame with no other labeled frame
    within T - 1 frames gets no sample (its own label would leak into the input).
    """
    if interval < 2:
        raise ValueError(f"propagation needs interval >= 2 (at least one key frame between labels), got {interval}")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    lab = _sorted_unique(labeled)
    is_labeled = set(lab)
    out = []
    for k in lab:
        offsets = [o for o in range(1, interval) if k - o in is_labeled and k + interval - o in is_labeled]
        if offsets:
            o = offsets[int(gen.integers(len(offsets)))]
            out.append(Triplet(k - o, k, k + interval - o))
            continue
        near = [k + s * d for d in range(1, interval) for s in (-1, 1) if k + s * d in is_labeled]
        if near:
            c = near[int(gen.integers(len(near)))]
            out.append(Triplet(c, k, c))
    return out


def group_by_auxiliaries(triplets: Sequence[Triplet]) -> dict[tuple[int, int], list[int]]:
    """(left, right) -> key frames sharing those auxiliaries, in key order (one propagation segment each)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for t in sorted(triplets, key=lambda t: t.key):
        groups.setdefault((t.left, t.right), []).append(t.key)
    return groups


def training_triplet_any_aux(key: int, num_frames: int, interval: int,
                             rng: np.random.Generator | int | None = None) -> Triplet | None:
    """A training triplet for a labeled `key` whose auxiliaries need no label (paper Sec. 4.2: the auxiliary frames
    carry "no pose annotation" in training; the network sees its own predictions there): left = key - o, right =
    key + T - o with o drawn uniformly among the offsets 1..T-1 that stay inside the video, the gaps inference
    produces with labels every T frames. Near a short video's ends, one frame within T - 1 of the key serves as
    both auxiliaries (the video-end rule of inference). None when the video has a single frame."""
    if interval < 2:
        raise ValueError(f"propagation needs interval >= 2 (at least one key frame between labels), got {interval}")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    offsets = [o for o in range(1, interval) if key - o >= 0 and key + interval - o < num_frames]
    if offsets:
        o = offsets[int(gen.integers(len(offsets)))]
        return Triplet(key - o, key, key + interval - o)
    near = [key + s * d for d in range(1, interval) for s in (-1, 1) if 0 <= key + s * d < num_frames]
    if not near:
        return None
    c = near[int(gen.integers(len(near)))]
    return Triplet(c, key, c)
