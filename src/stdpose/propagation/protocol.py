"""The sparse-label evaluation protocol: keep the labels of every T-th frame, propagate, score the dropped ones.

This is how every propagation number in stdpose is made (the `propagate --eval` command, the benchmark, the demo):

    sparse, gt, kept = sparsify(video, interval=7)             # labels only on `kept`; gt = the dropped labels
    out = propagator.propagate(sparse, frames, kept)           # every frame filled
    evaluate_posetrack([gt], [out])                            # PoseTrack mAP on the dropped frames only

or, for several methods and videos at once, `evaluate_propagators(videos, frames_of, {"linear": ..., ...}, 7)`.

Protocols (which labels are kept):
- "posewarper" (paper Table 1, PoseWarper's protocol on PoseTrack val): within the longest run of consecutive
  labeled frames, labels at run positions 3, 3 + T, 3 + 2T, ... and at the run's last frame when it lies more than
  3 frames after the last of those (`stdpose.data.sampling.posewarper_labeled_frames`). The other frames of the run
  are scored; labeled frames outside the run are neither kept nor scored.
- "every": the first labeled frame and then every labeled frame at least T frames after the previously kept one
  (`sparse_labeled_indices`); every other labeled frame is scored. On a fully labeled video this is frames 0, T, 2T..

Propagation is bounded by the labels by default (`stdpose.propagation.tracks`), but the protocol scores frames
before the first / after the last kept label (PoseWarper: up to 3, the frames it fills from its first/last kept
label). `evaluate_propagators` and `stdpose propagate --interval` therefore extend the tracks exactly as far as
the farthest scored frame lies outside the kept labels (`scored_reach`), so the scores are those of the unbounded
rule (tested) while no unscored frame beyond is filled.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from stdpose.data.records import Frame, Video
from stdpose.data.sampling import longest_labeled_run, posewarper_labeled_frames, sparse_labeled_indices
from stdpose.errors import ConfigError

log = logging.getLogger(__name__)

PROTOCOLS = ("posewarper", "every")
POSEWARPER_OFFSET = 3  # first kept label at position 3 of the labeled run (PoseWarper's evaluation code)


def kept_and_scored(labeled: Sequence[int], interval: int, protocol: str = "posewarper") -> tuple[list[int], list[int]]:
    """(kept, scored) frame indices of a protocol for the given labeled frames; see the module docstring."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
        raise ConfigError(f"interval must be a positive integer, got {interval!r}")
    labeled = sorted({int(i) for i in labeled})
    if protocol == "posewarper":
        kept = posewarper_labeled_frames(labeled, interval, POSEWARPER_OFFSET)
        pool = longest_labeled_run(labeled)
    else:
        kept = sparse_labeled_indices(labeled, interval)
        pool = labeled
    chosen = set(kept)
    return kept, [i for i in pool if i not in chosen]


def protocol_extend(protocol: str, interval: int) -> int:
    """How far past the first/last kept label the protocol scores frames: PoseWarper's 3 (its first kept label is
    run position 3; the run's last frame is kept when more than 3 frames after the last kept one), T - 1 for
    "every" (frames after its last kept label)."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    return POSEWARPER_OFFSET if protocol == "posewarper" else max(int(interval) - 1, 0)


def scored_reach(kept: Sequence[int], scored: Sequence[int]) -> int:
    """How many frames before the first / after the last kept label the farthest scored frame lies (0 if none)."""
    if not kept or not scored:
        return 0
    first, last = min(kept), max(kept)
    return max([first - i for i in scored if i < first] + [i - last for i in scored if i > last] + [0])


@contextmanager
def extended(propagator: Any, frames: int) -> Iterator[Any]:
    """The propagator with its `extend` raised to at least `frames` for the duration (restored after); a
    propagator without an `extend` option is used as it is."""
    if not hasattr(propagator, "extend"):
        yield propagator
        return
    old = propagator.extend
    propagator.extend = max(int(old or 0), int(frames))
    try:
        yield propagator
    finally:
        propagator.extend = old


def _frame_with(frame: Frame, labeled: bool) -> Frame:
    """A copy of `frame` that is labeled with its persons, or unlabeled without any."""
    persons = copy.deepcopy(frame.persons) if labeled else []
    return dataclasses.replace(frame, persons=persons, is_labeled=labeled,
                               ignore_regions=list(frame.ignore_regions), extra=dict(frame.extra))


def sparsify(video: Video, interval: int, protocol: str = "posewarper") -> tuple[Video, Video, list[int]]:
    """(sparse_video, gt_video, kept) for a (fully) labeled video.

    sparse_video: the same frames; only the kept frames are labeled (with their persons), the others are
    unlabeled and empty - the input of a propagator. gt_video: only the scored (dropped) frames are labeled - the
    ground truth `evaluate_posetrack` scores the propagated video against. kept: the kept frame indices.
    An interval longer than the labeled run keeps a single label (or the protocol's first and last); that is
    logged, since every other frame is then propagated from labels far away.
    """
    kept, scored = kept_and_scored(video.labeled_indices(), interval, protocol)
    keep, score = set(kept), set(scored)
    sparse = dataclasses.replace(video, frames=[_frame_with(f, f.index in keep) for f in video.frames],
                                 extra=dict(video.extra))
    gt = dataclasses.replace(video, frames=[_frame_with(f, f.index in score) for f in video.frames],
                             extra=dict(video.extra))
    labeled = video.labeled_indices()
    if labeled and interval >= len(labeled):
        log.warning("video %s: interval %d is not shorter than its %d labeled frame(s); only frame(s) %s keep "
                    "their labels", video.name, interval, len(labeled), kept)
    return sparse, gt, kept


def evaluate_propagators(
    videos: Sequence[Video],
    frames_of: Callable[[Video], Any] | None,
    propagators: Mapping[str, Any],
    interval: int,
    protocol: str = "posewarper",
    outputs: dict[str, list[Video]] | None = None,
) -> dict[str, Any]:
    """PoseTrack mAP of each propagator under the sparse-label protocol: name -> PoseTrackMapResult.

    videos: fully labeled videos (the ground truth). frames_of(video) gives the video's frames (a FrameReader such
    as `VideoFrames(video, root)`), or None; it is called once per video and only when some propagator needs frames
    (`needs_frames`). propagators: name -> object with `propagate(video, frames, labeled) -> Video`. Videos with
    nothing to score (no labeled frame dropped) are skipped. Pass a dict as `outputs` to receive the propagated
    videos per method.
    """
    from stdpose.eval.posetrack_map import evaluate_posetrack

    if not propagators:
        raise ConfigError("evaluate_propagators needs at least one propagator")
    gts: list[Video] = []
    preds: dict[str, list[Video]] = {name: [] for name in propagators}
    skipped = 0
    for video in videos:
        sparse, gt, kept = sparsify(video, interval, protocol)
        if not kept or not any(f.is_labeled and f.persons for f in gt.frames):
            skipped += 1
            continue
        frames = None
        if frames_of is not None and any(getattr(p, "needs_frames", True) for p in propagators.values()):
            frames = frames_of(video)
        gts.append(gt)
        for name, prop in propagators.items():
            with extended(prop, scored_reach(kept, gt.labeled_indices())):
                preds[name].append(prop.propagate(sparse, frames if getattr(prop, "needs_frames", True) else None,
                                                  kept))
    if skipped:
        log.warning("%d video(s) skipped: no labeled frame left to score under protocol %s at T=%d",
                    skipped, protocol, interval)
    if not gts:
        raise ConfigError(f"no video has labeled frames to score under protocol {protocol!r} at T={interval}")
    if outputs is not None:
        outputs.update(preds)
    return {name: evaluate_posetrack(gts, pred) for name, pred in preds.items()}
