"""What every propagation method shares: the `Propagator` interface, per-(track, frame) predictions, and building
the output video from them.

A propagator turns a sparsely-labeled `Video` into a new `Video` with the same frames, where labeled frames keep
their human persons and unlabeled frames get one propagated Person per track segment covering them. The baselines
here and the learned STDPose propagator only differ in how they predict the keypoints of one segment; the rest
(segments, boxes, output assembly, progress, summary) lives in this module so they all behave alike.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from stdpose.data.records import Box, Frame, Person, Video
from stdpose.errors import DataError
from stdpose.propagation.tracks import (
    SegmentPlan,
    TrackSegment,
    boxes_from_detections,
    interpolate_box,
    segment_plan,
)
from stdpose.skeleton import NUM_SLOTS

log = logging.getLogger(__name__)


@runtime_checkable
class FrameSource(Protocol):
    """What propagators need from `stdpose.data.video.FrameReader`: BGR uint8 (H, W, 3) images by index."""

    def __getitem__(self, index: int) -> np.ndarray: ...

    def __len__(self) -> int: ...


class Propagator(Protocol):
    """Propagates labeled poses to the unlabeled frames of a video.

    `propagate` returns a NEW Video with the same frames: frames in `labeled` keep copies of their human persons
    (propagated=False; persons without a track id get the id they were followed by); every other frame gets one
    Person per track segment covering it, propagated=True, with the source `track_id`, per-keypoint `scores` (17,)
    in [0, 1] and v=1 on the joints it predicts (joints annotated in neither label stay (0, 0, 0)).
    """

    name: str

    def propagate(self, video: Video, frames: FrameSource | None, labeled: Sequence[int]) -> Video: ...


@dataclass
class PosePrediction:
    """One track's pose on one unlabeled frame. keypoints (17, 2) x, y in image pixels; scores (17,) in [0, 1],
    0 meaning "not predicted" (written as an unannotated (0, 0, 0) slot); box overrides the track's box."""

    keypoints: np.ndarray
    scores: np.ndarray
    box: Box | None = None


def distance_score(distance: float | np.ndarray, half_life: float) -> np.ndarray:
    """Confidence of a pose copied/propagated `distance` frames from a label: 2 ** (-distance / half_life).

    Poses far from any label are less reliable; the mAP ranks predictions by score, so this ordering matters.
    """
    return np.power(2.0, -np.asarray(distance, dtype=np.float64) / max(float(half_life), 1e-6))


def joint_scores(distance: np.ndarray, predicted: np.ndarray, half_life: float) -> np.ndarray:
    """(17,) scores: `distance_score` of each predicted joint's distance to its label, 0 for joints not predicted."""
    distance = np.where(predicted & np.isfinite(distance), distance, 0.0)
    return np.where(predicted, distance_score(distance, half_life), 0.0)


def side_keypoints(person: Person | None) -> tuple[np.ndarray, np.ndarray]:
    """(17, 2) coordinates and (17,) annotated mask of a label side (all False for an absent side)."""
    if person is None:
        return np.zeros((NUM_SLOTS, 2)), np.zeros(NUM_SLOTS, dtype=bool)
    return person.keypoints[:, :2].copy(), person.annotated.copy()


def side_distances(segment: TrackSegment, index: int) -> tuple[float, float]:
    """Frames from `index` to the left and right label of the segment (inf for an absent side)."""
    dl = abs(index - segment.left) if segment.left_person is not None else np.inf
    dr = abs(segment.right - index) if segment.right_person is not None else np.inf
    return float(dl), float(dr)


def _copy_label(person: Person, track_id: int) -> Person:
    out = copy.deepcopy(person)
    if out.track_id is None:
        out.track_id = track_id
    return out


def _propagated_person(pred: PosePrediction, track_id: int, box: Box | None, method: str,
                       segment: TrackSegment) -> Person:
    scores = np.clip(np.nan_to_num(np.asarray(pred.scores, dtype=np.float64), nan=0.0), 0.0, 1.0)
    xy = np.asarray(pred.keypoints, dtype=np.float64).reshape(NUM_SLOTS, 2)
    ok = (scores > 0) & np.all(np.isfinite(xy), axis=1)
    kps = np.zeros((NUM_SLOTS, 3))
    kps[ok, :2] = xy[ok]
    kps[ok, 2] = 1.0
    scores = np.where(ok, scores, 0.0)
    if pred.box is not None:
        box = pred.box
    person = Person(keypoints=kps, track_id=track_id, scores=scores, propagated=True,
                    score=float(scores[ok].mean()) if ok.any() else 0.0,
                    extra={"method": method, "from_labels": [segment.left, segment.right]})
    if box is None:
        box = person.box_from_keypoints()
    person.bbox = box if box is not None and box[2] > 0 and box[3] > 0 else None
    return person


def assemble_video(
    video: Video,
    plan: SegmentPlan,
    predictions: Mapping[tuple[int, int], PosePrediction],
    method: str,
    boxes: Mapping[tuple[int, int], Box] | None = None,
) -> Video:
    """The output video: labeled frames keep copies of their labels (with assigned track ids), unlabeled frames
    get the propagated persons keyed by (track_id, frame index), ordered by track id. Persons already present on
    unlabeled frames of the input are replaced. Frame metadata (file names, ids, ignore regions) is kept."""
    labeled = set(plan.labeled)
    segment_of = {(s.track_id, i): s for s in plan.segments for i in s.frames}
    per_frame: dict[int, list[tuple[int, Person]]] = {}
    for (tid, i), pred in predictions.items():
        seg = segment_of.get((tid, i))
        if seg is None:
            raise ValueError(f"prediction for track {tid} on frame {i}, which no segment covers")
        box = boxes.get((tid, i)) if boxes is not None else None
        if box is None:
            box = interpolate_box(seg, i)
        per_frame.setdefault(i, []).append((tid, _propagated_person(pred, tid, box, method, seg)))
    frames: list[Frame] = []
    for frame in video.frames:
        filled = [p for _, p in sorted(per_frame.get(frame.index, []), key=lambda tp: tp[0])]
        if frame.index in labeled:
            ids = plan.track_ids.get(frame.index, [])
            # a frame labeled for some tracks only (CVAT keyframes) also gets the other tracks' propagated poses
            persons = [_copy_label(p, t) for p, t in zip(frame.persons, ids)] + filled
            is_labeled = True
        else:
            persons = filled
            is_labeled = False
        frames.append(dataclasses.replace(frame, persons=persons, is_labeled=is_labeled,
                                          ignore_regions=list(frame.ignore_regions), extra=dict(frame.extra)))
    extra = dict(video.extra)
    extra["propagation"] = {"method": method, "labeled": list(plan.labeled), "propagated_poses": len(predictions),
                            **plan.summary.as_dict()}
    return dataclasses.replace(video, frames=frames, extra=extra)


def check_frames(video: Video, frames: FrameSource | None, method: str) -> FrameSource:
    """The frames, or a DataError saying why a frame-based method cannot run on them."""
    where = video.source or video.name
    if frames is None:
        raise DataError(where, f"the {method} method needs the video frames (none were given)")
    if len(frames) < video.num_frames:
        raise DataError(where, f"the annotations have {video.num_frames} frames but the video has only "
                               f"{len(frames)}")
    return frames


def _progress(segments: Sequence[TrackSegment], enabled: bool, desc: str) -> Iterable[TrackSegment]:
    """The segments, with a bar that counts their frames (a 40-frame segment moves it 40 times further than a
    1-frame one, so the ETA holds when one segment dominates)."""
    if not enabled:
        yield from segments
        return
    from tqdm import tqdm

    with tqdm(total=sum(len(s.frames) for s in segments), desc=desc, unit="frame", leave=False) as bar:
        for seg in segments:
            yield seg
            bar.update(len(seg.frames))


class SegmentPropagator:
    """Base for propagators that predict each track segment independently.

    Subclasses set `name` and implement `predict_segment(segment, frames) -> {frame index: PosePrediction}`;
    `prepare` may set up per-video state (e.g. an optical-flow cache), `finish_gap` may free it. Segments are
    visited gap by gap (all tracks of one pair of labeled frames together) so per-gap state is built once.

    Options shared by all: `one_sided` and `extend` (frames filled past a track's first/last label; 0 = bounded by
    the labels; see `stdpose.propagation.tracks`), `half_life` (frames; score decay with the distance to the
    label), `detections` (frame index -> detections; boxes of unlabeled frames are matched to them,
    see `boxes_from_detections`), `progress` (tqdm bar over the segments' frames).
    """

    name = "segment"
    needs_frames = False

    def __init__(self, one_sided: str = "half", half_life: float = 7.0,
                 detections: Mapping[int, Sequence[Any]] | None = None, progress: bool = False,
                 extend: int = 0) -> None:
        self.one_sided = one_sided
        self.extend = extend
        self.half_life = float(half_life)
        self.detections = detections
        self.progress = progress
        self.last_summary: dict[str, Any] = {}

    def prepare(self, video: Video, frames: FrameSource | None, plan: SegmentPlan) -> None:
        """Per-video setup before any segment; `plan` is the video's segment plan (made once, here)."""

    def finish_gap(self, left: int, right: int) -> None:
        """Called after all segments of the gap (left, right) are predicted."""

    def predict_segment(self, segment: TrackSegment, frames: FrameSource | None) -> dict[int, PosePrediction]:
        raise NotImplementedError

    def propagate(self, video: Video, frames: FrameSource | None, labeled: Sequence[int]) -> Video:
        if self.needs_frames:
            frames = check_frames(video, frames, self.name)
        plan = segment_plan(video, labeled, self.one_sided, self.extend, frames=frames)
        for msg in plan.summary.messages:
            log.warning(msg)
        self.prepare(video, frames, plan)
        predictions: dict[tuple[int, int], PosePrediction] = {}
        ordered = sorted(plan.segments, key=lambda s: (s.left, s.right, s.first, s.track_id))
        gap: tuple[int, int] | None = None
        for seg in _progress(ordered, self.progress, f"{self.name} {video.name}"):
            if gap is not None and gap != (seg.left, seg.right):
                self.finish_gap(*gap)
            gap = (seg.left, seg.right)
            for i, pred in self.predict_segment(seg, frames).items():
                predictions[(seg.track_id, i)] = pred
        if gap is not None:
            self.finish_gap(*gap)
        boxes = None
        if self.detections is not None:
            from stdpose.propagation.tracks import DetectionMatchSummary

            det_summary = DetectionMatchSummary()
            boxes = boxes_from_detections(plan.segments, self.detections, summary=det_summary)
            log.info("video %s: detection boxes for %d (track, frame) pairs, interpolated boxes for %d",
                     video.name, det_summary.matched, det_summary.interpolated)
        out = assemble_video(video, plan, predictions, self.name, boxes)
        self.last_summary = out.extra["propagation"]
        return out
