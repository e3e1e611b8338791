"""Track segments: which person to propagate from which labeled frames onto which unlabeled frames.

A sparsely-labeled video has human poses on a few frames. Every propagation method (nearest label, linear
interpolation, optical flow, the learned STDPose propagator) follows each person by track id between two
consecutive labeled frames and predicts that person's pose on the unlabeled frames in between. This module turns a
`Video` plus the list of labeled frame indices into `TrackSegment`s, and gives each segment its person boxes.

Rules (also in docs/baselines.md):
- Interior gap (left, right) = two consecutive labeled frames; a track present in both covers every frame between.
- Bounded by default: a track is filled only between its first and its last label. Frames before a track's first
  label / after its last one get nothing unless `extend` = N > 0: then at most N frames on that side are filled
  from that label (an end segment, left = right = the label), with scores falling with the distance. The summary
  counts the (track, frame) pairs left out on each side. (The sparse-label protocol extends to the farthest
  frame it scores, at most PoseWarper's 3, `protocol.scored_reach`, so its numbers are those of the unbounded
  rule it replaced.)
- Per-track labels: a frame can be labeled for some tracks only (CVAT keyframes are per track). A labeled frame
  lists the ids of tracks whose pose it does NOT give in `frame.extra[UNLABELED_TRACKS]`; for those tracks the
  frame is an ordinary frame to fill, and their segments run between the frames where they are known.
- One-sided track (present in only one of the two labeled frames of a gap, i.e. the person enters or leaves):
  `one_sided="half"` (default) propagates from the side that has it up to the midpoint of the gap (the midpoint frame
  itself included), `"full"` over the whole gap, `"none"` not at all. The person appears or disappears at an unknown
  moment inside the gap; the midpoint halves the worst-case number of wrong frames. Counted in `SegmentSummary`.
- Persons without a track id get one: matched to an untracked person of the previous labeled frame by pose
  similarity after motion compensation (`stdpose.propagation.matching`: OKS of the earlier pose carried to the later
  frame by optical flow when frames are given, Hungarian on 1 - OKS); a match needs OKS >= `MIN_MATCH_OKS` and a
  clear margin over the next-best alternative, otherwise the person gets a fresh id above every id in the video
  and the refusal is reported. Every match is reported with its cost. A duplicated track id in one frame keeps its
  first holder; later holders are treated as untracked. Both are counted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stdpose.data.records import UNLABELED_TRACKS, Box, Person, Video
from stdpose.errors import ConfigError, DataError

log = logging.getLogger(__name__)

ONE_SIDED_RULES = ("half", "full", "none")
DETECTION_MATCH_IOU = 0.3  # min IoU between a detection and a track's interpolated box


@dataclass
class TrackSegment:
    """One track between two consecutive labeled frames (or at a video end, where left == right).

    `first`..`last` (inclusive) are the unlabeled frames this segment covers; empty when first > last. The persons
    are the original label objects (read them, do not modify them); None on the side where the track is absent.
    """

    track_id: int
    left: int
    right: int
    left_person: Person | None
    right_person: Person | None
    first: int = -1
    last: int = -2
    # video ends only: the track's next-nearest label (before `left` for a tail, after it for a head), which gives
    # the person's recent motion; None when the track has a single label
    motion_frame: int | None = None
    motion_person: Person | None = None

    def __post_init__(self) -> None:
        if self.first == -1 and self.last == -2:  # default: the whole interior gap
            self.first, self.last = self.left + 1, self.right - 1

    @property
    def frames(self) -> range:
        """Unlabeled frame indices covered, in order."""
        return range(self.first, self.last + 1)

    @property
    def kind(self) -> str:
        """'head' / 'tail' (video ends), 'both' (present at both labels), 'left_only' / 'right_only'."""
        if self.left == self.right:
            return "head" if self.last < self.left else "tail"
        if self.left_person is not None and self.right_person is not None:
            return "both"
        return "left_only" if self.left_person is not None else "right_only"


@dataclass
class SegmentSummary:
    """Counts of what `segment_plan` did, and a human-readable message for every unusual case."""

    tracks: int = 0
    segments: int = 0
    both_sided: int = 0
    end_segments: int = 0
    one_sided_left: int = 0
    one_sided_right: int = 0
    one_sided_frames_skipped: int = 0  # (track, frame) pairs left without a pose by the one_sided rule
    assigned_track_ids: int = 0  # persons that had no track id
    matched_untracked: int = 0  # of those, continued from the previous label by pose similarity
    refused_matches: int = 0  # candidate continuations refused as ambiguous or too dissimilar
    extend: int = 0  # frames filled past a track's first/last label (0: bounded)
    left_out_before_first: int = 0  # (track, frame) pairs before a track's first label left without a pose
    left_out_after_last: int = 0  # (track, frame) pairs after a track's last label left without a pose
    extended_frames: int = 0  # (track, frame) pairs filled by `extend`
    matches: list[dict[str, Any]] = field(default_factory=list)  # untracked matches: frames, ids, cost
    refusals: list[str] = field(default_factory=list)  # why candidate matches were refused
    duplicate_track_ids: int = 0  # persons whose track id was already taken in their frame
    messages: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "messages"}


@dataclass
class SegmentPlan:
    """Segments plus bookkeeping: `track_ids[frame][k]` is the (possibly assigned) track id of person k of that
    labeled frame, so writers can put the same ids on the copied labels."""

    segments: list[TrackSegment]
    labeled: list[int]
    track_ids: dict[int, list[int]]
    summary: SegmentSummary


def normalize_labeled(video: Video, labeled: Sequence[int]) -> list[int]:
    """Sorted unique labeled indices; DataError naming the video when one is outside the video."""
    out = sorted({int(i) for i in labeled})
    bad = [i for i in out if not 0 <= i < video.num_frames]
    if bad:
        raise DataError(video.source or video.name,
                        f"labeled frame indices {bad[:5]} are outside the video's {video.num_frames} frames")
    return out


def person_box(person: Person) -> Box | None:
    """The label's bbox, else the tight box around its annotated joints; None when neither exists."""
    box = person.bbox if person.bbox is not None else person.box_from_keypoints()
    return None if box is None else tuple(float(v) for v in box)  # type: ignore[return-value]


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _iou_matrix(a: Sequence[Box], b: Sequence[Box]) -> np.ndarray:
    return np.array([[box_iou(x, y) for y in b] for x in a], dtype=np.float64).reshape(len(a), len(b))


def _match(cost_iou: np.ndarray, min_iou: float) -> list[tuple[int, int]]:
    """Hungarian matching maximising IoU; pairs below `min_iou` are dropped."""
    if cost_iou.size == 0:
        return []
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(-cost_iou)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if cost_iou[r, c] >= min_iou]


def _assign_track_ids(video: Video, labeled: list[int], summary: SegmentSummary,
                      frames: Any = None) -> dict[int, list[int]]:
    """Track id of every person of every labeled frame; see the module docstring for the rules."""
    from stdpose.propagation.matching import match_untracked

    existing = [p.track_id for i in labeled for p in video.frames[i].persons if p.track_id is not None]
    next_id = max(existing, default=-1) + 1
    ids: dict[int, list[int]] = {}
    prev_untracked: list[tuple[int, Person]] = []  # (assigned id, person) of the previous label's untracked
    prev_frame = -1
    for i in labeled:
        frame = video.frames[i]
        frame_ids: list[int | None] = []
        taken: set[int] = set()
        untracked: list[int] = []
        for k, person in enumerate(frame.persons):
            tid = person.track_id
            if tid is not None and tid in taken:
                summary.duplicate_track_ids += 1
                summary.messages.append(f"frame {i} ('{frame.file_name}'): track id {tid} used twice; "
                                        f"person {k} treated as untracked")
                tid = None
            if tid is None:
                untracked.append(k)
            else:
                taken.add(tid)
            frame_ids.append(tid)
        matched: dict[int, int] = {}
        if untracked and prev_untracked:
            result = match_untracked([p for _, p in prev_untracked], [frame.persons[k] for k in untracked],
                                     prev_frame, i, frames)
            for r, c, cost in result.pairs:
                tid = prev_untracked[r][0]
                if tid in taken:
                    continue
                matched[c] = tid
                summary.matches.append({"from_frame": prev_frame, "to_frame": i, "track_id": tid,
                                        "cost": round(float(cost), 4), "motion": result.motion})
                summary.messages.append(f"frame {prev_frame} -> {i}: untracked person continued as track {tid} "
                                        f"(cost 1 - OKS = {cost:.3f}, {result.motion})")
            for note in result.refused:
                summary.refused_matches += 1
                summary.refusals.append(f"frame {prev_frame} -> {i}: {note}")
                summary.messages.append(summary.refusals[-1])
        new_prev: list[tuple[int, Person]] = []
        for n, k in enumerate(untracked):
            tid = matched.get(n)
            if tid is None:
                tid, next_id = next_id, next_id + 1
            else:
                summary.matched_untracked += 1
            taken.add(tid)
            frame_ids[k] = tid
            new_prev.append((tid, frame.persons[k]))
            summary.assigned_track_ids += 1
        if untracked:
            summary.messages.append(f"frame {i} ('{frame.file_name}'): {len(untracked)} person(s) without a "
                                    f"track id; {len(matched)} continued by pose similarity, the rest given new ids")
        prev_untracked, prev_frame = new_prev, i
        ids[i] = [int(t) for t in frame_ids]  # type: ignore[arg-type]
    return ids


def segment_plan(video: Video, labeled: Sequence[int], one_sided: str = "half", extend: int = 0,
                 frames: Any = None) -> SegmentPlan:
    """All track segments of `video` given its labeled frame indices, with a summary of unusual cases.

    extend: frames filled past a track's first/last label (0, the default: only between its labels).
    frames: the video's frames (optional); used only to match persons without track ids by optical flow."""
    if one_sided not in ONE_SIDED_RULES:
        raise ConfigError(f"one_sided must be one of {', '.join(ONE_SIDED_RULES)}, got {one_sided!r}")
    if isinstance(extend, bool) or not isinstance(extend, int | np.integer) or extend < 0:
        raise ConfigError(f"extend must be a whole number of frames >= 0, got {extend!r}")
    extend = int(extend)
    labeled = normalize_labeled(video, labeled)
    summary = SegmentSummary(extend=extend)
    if not labeled:
        summary.messages.append(f"video {video.name}: no labeled frames, nothing to propagate")
        return SegmentPlan([], [], {}, summary)
    track_ids = _assign_track_ids(video, labeled, summary, frames)
    persons = {i: dict(zip(track_ids[i], video.frames[i].persons)) for i in labeled}
    unknown = {i: {int(t) for t in video.frames[i].extra.get(UNLABELED_TRACKS, ())} for i in labeled}
    n = video.num_frames

    segments: list[TrackSegment] = []
    for tid in sorted({t for ids in track_ids.values() for t in ids} | {t for u in unknown.values() for t in u}):
        known = [i for i in labeled if tid not in unknown[i]]  # labels that say where (or whether) tid is
        present = [i for i in known if tid in persons[i]]
        if not present:
            continue
        first, last = present[0], present[-1]
        for left, right in zip(known[:-1], known[1:]):
            if right - left < 2:
                continue  # adjacent labels: no frame between them
            a, b = persons[left].get(tid), persons[right].get(tid)
            if a is None and b is None:
                continue
            seg = TrackSegment(tid, left, right, a, b)
            if a is None or b is None:
                gap = right - left - 1
                mid = (left + right) / 2
                if one_sided == "none":
                    seg.first, seg.last = left + 1, left  # empty
                elif one_sided == "half" and b is None:
                    seg.last = int(np.floor(mid))
                elif one_sided == "half":
                    seg.first = int(np.ceil(mid))
                summary.one_sided_frames_skipped += gap - len(seg.frames)
                if b is None:
                    summary.one_sided_left += 1
                else:
                    summary.one_sided_right += 1
                if one_sided == "none":
                    continue
            segments.append(seg)
        # before the first / after the last label of the track: `extend` frames at most (bounded by default)
        if first == known[0] and first > 0:
            k = min(extend, first)
            summary.left_out_before_first += first - k
            summary.extended_frames += k
            if k:
                p = persons[first][tid]
                nxt = present[1] if len(present) > 1 else None
                segments.append(TrackSegment(tid, first, first, p, p, first - k, first - 1, nxt,
                                             persons[nxt][tid] if nxt is not None else None))
        if last == known[-1] and last < n - 1:
            k = min(extend, n - 1 - last)
            summary.left_out_after_last += n - 1 - last - k
            summary.extended_frames += k
            if k:
                p = persons[last][tid]
                prev = present[-2] if len(present) > 1 else None
                segments.append(TrackSegment(tid, last, last, p, p, last + 1, last + k, prev,
                                             persons[prev][tid] if prev is not None else None))

    summary.segments = len(segments)
    summary.tracks = len({s.track_id for s in segments} | {t for ids in track_ids.values() for t in ids})
    summary.end_segments = sum(s.left == s.right for s in segments)
    summary.both_sided = sum(s.kind == "both" for s in segments)
    if summary.one_sided_left or summary.one_sided_right:
        summary.messages.append(
            f"video {video.name}: {summary.one_sided_left} track(s) end and {summary.one_sided_right} start between "
            f"two labeled frames (present in one label only); rule one_sided={one_sided!r}, "
            f"{summary.one_sided_frames_skipped} (track, frame) pair(s) left without a pose")
    if summary.left_out_before_first or summary.left_out_after_last:
        summary.messages.append(
            f"video {video.name}: {summary.left_out_before_first} (track, frame) pair(s) before a track's first "
            f"label and {summary.left_out_after_last} after its last label left without a pose (propagation is "
            f"bounded by the labels; extend={extend} frame(s) past them"
            + (f", {summary.extended_frames} pair(s) filled that way)" if extend else ")"))
    return SegmentPlan(segments, labeled, track_ids, summary)


def track_segments(video: Video, labeled: Sequence[int], one_sided: str = "half",
                   extend: int = 0) -> list[TrackSegment]:
    """Segments of `segment_plan`, logging its summary messages as warnings."""
    plan = segment_plan(video, labeled, one_sided, extend)
    for msg in plan.summary.messages:
        log.warning(msg)
    return plan.segments


def _segment_boxes(segment: TrackSegment) -> tuple[Box | None, Box | None]:
    """Left and right boxes of the segment's labels, from one consistent source (`_consistent_boxes`)."""
    return _consistent_boxes(segment.left_person, segment.right_person)


def _consistent_boxes(lp: Person | None, rp: Person | None) -> tuple[Box | None, Box | None]:
    """Two labels' boxes from one consistent source: both bboxes when both labels have one, else both derived
    from keypoints (mixing a labeled bbox with a tight keypoint box would make an interpolated box jump)."""
    if lp is not None and rp is not None and (lp.bbox is None) != (rp.bbox is None):
        lb, rb = lp.box_from_keypoints(), rp.box_from_keypoints()
        if lb is not None and rb is not None:
            return lb, rb
    return (person_box(lp) if lp is not None else None), (person_box(rp) if rp is not None else None)


def interpolate_box(segment: TrackSegment, index: int) -> Box | None:
    """The track's box at frame `index`: linear between the labeled boxes, the one side's box for one-sided and end
    segments. None when neither label has a bbox or two annotated joints (nothing to place a box on)."""
    lb, rb = _segment_boxes(segment)
    if lb is None or rb is None or segment.left == segment.right:
        return lb if lb is not None else rb
    t = float(np.clip((index - segment.left) / (segment.right - segment.left), 0.0, 1.0))
    return tuple(float((1 - t) * a + t * b) for a, b in zip(lb, rb))  # type: ignore[return-value]


def end_velocity(segment: TrackSegment) -> np.ndarray | None:
    """Pixels per frame of the person's box centre between the end label and its next-nearest label, signed for
    moving away from the label (a video-end segment's constant-velocity motion); None without a second label."""
    if segment.left != segment.right or segment.motion_person is None or segment.motion_frame is None:
        return None
    a, b = _consistent_boxes(segment.left_person, segment.motion_person)
    if a is None or b is None:
        return None
    ca = np.array([a[0] + a[2] / 2, a[1] + a[3] / 2])
    cb = np.array([b[0] + b[2] / 2, b[1] + b[3] / 2])
    return (ca - cb) / abs(segment.left - segment.motion_frame)


def segment_crop_box(segment: TrackSegment) -> Box | None:
    """Union of the two labeled boxes: contains every interpolated box of the segment (each side of a linearly
    interpolated box moves monotonically), so a propagator can crop one region per track per segment."""
    boxes = [b for b in _segment_boxes(segment) if b is not None]
    if not boxes:
        return None
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    return (x0, y0, x1 - x0, y1 - y0)


def _detection_box(item: Any) -> tuple[Box, float]:
    """(box, score) from a detection given as a 4-tuple, a (box, score) pair, a dict or an object with bbox/score."""
    if isinstance(item, Mapping):
        box, score = item["bbox"], item.get("score", 1.0)
    elif hasattr(item, "bbox"):
        box, score = item.bbox, getattr(item, "score", 1.0)
    elif len(item) == 2:
        box, score = item
    else:
        box, score = item, 1.0
    return tuple(float(v) for v in box), float(1.0 if score is None else score)  # type: ignore[return-value]


@dataclass
class DetectionMatchSummary:
    """How many (track, frame) boxes came from a detection and how many fell back to interpolation."""

    matched: int = 0
    interpolated: int = 0
    no_box: int = 0


def boxes_from_detections(
    segments: Sequence[TrackSegment],
    detections: Mapping[int, Sequence[Any]],
    min_iou: float = DETECTION_MATCH_IOU,
    min_score: float = 0.0,
    summary: DetectionMatchSummary | None = None,
) -> dict[tuple[int, int], Box]:
    """Box of every (track_id, frame) the segments cover: the detection matched to the track's interpolated box on
    that frame (Hungarian on IoU, each detection used once, IoU >= `min_iou`), else the interpolated box.

    `detections` maps a frame index to that frame's detections (a 4-tuple box, a (box, score) pair, a dict with
    'bbox'/'score', or an object with .bbox/.score); detections below `min_score` are ignored.
    """
    summary = summary if summary is not None else DetectionMatchSummary()
    by_frame: dict[int, list[tuple[int, Box]]] = {}
    for seg in segments:
        for i in seg.frames:
            box = interpolate_box(seg, i)
            if box is None:
                summary.no_box += 1
            else:
                by_frame.setdefault(i, []).append((seg.track_id, box))
    out: dict[tuple[int, int], Box] = {}
    for i, tracks in by_frame.items():
        dets = [d for d in (_detection_box(x) for x in detections.get(i, ())) if d[1] >= min_score]
        det_boxes = [b for b, _ in dets if b[2] > 0 and b[3] > 0]
        pairs = _match(_iou_matrix([b for _, b in tracks], det_boxes), min_iou)
        for r, c in pairs:
            out[(tracks[r][0], i)] = det_boxes[c]
        for tid, box in tracks:
            out.setdefault((tid, i), box)
        summary.matched += len(pairs)
        summary.interpolated += len(tracks) - len(pairs)
    return out


def detections_for_video(video: Video, detections: Mapping[int, Sequence[Any]]) -> dict[int, list[Any]]:
    """Re-key detections read by `stdpose.data.formats.read_detections` (image_id -> detections) by the frame
    index of `video` (frames whose image_id has no detection get none), for `boxes_from_detections`."""
    return {f.index: list(detections.get(f.image_id, ())) for f in video.frames if f.image_id is not None}
