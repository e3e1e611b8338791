"""`auto`: weight-free propagation that uses optical flow where it can be trusted and interpolation elsewhere.

Neither baseline is safe on its own: linear interpolation misses every non-linear motion between two labels, and
flow tracking drifts (on texture-poor clothes, under occlusion) and is never pulled back to the next label. `auto`
combines, per track and per joint, four estimates of the joint on an unlabeled frame t between labels l and r:

- L(t): linear interpolation of the two labels (the prior);
- F(t): the left label tracked forward with optical flow, drift-corrected so it ends on the right label:
  Fc(t) = F(t) + (t - l) / (r - l) * (R - F(r)) (zero flow gives exactly L(t));
- B(t): the right label tracked backward, corrected the same way towards the left label: Bc(t);
- the one-sided tracks F or B where only one label has the joint (one-sided segments, video ends).

Each direction gets a reliability in [0, 1] from the evidence the flow leaves behind:
- forward-backward consistency: the mean per-step forward-backward error along the track so far (FB_SIGMA);
- photometric consistency: the mean per-step difference of the patch before and after each step, over the patch's
  contrast (PHOTO_SIGMA) - the cue that catches a dense flow that is smooth and self-consistent but meaningless;
- closure: how far the track lands from the other label, relative to the person size (CLOSURE_SIGMA);
- optional (`use_appearance`, off by default: it lowered PCKh on the real set): correlation of the patch at the
  tracked position with the patch at the label (APPEARANCE_NCC);
and the nearer label weighs more (weights (r - t) / (r - l) and (t - l) / (r - l)). The flow estimate Phi(t) is the
reliability-weighted mean of Fc and Bc, and the two directions must agree (AGREE_SIGMA): flow weight
W = agreement x weighted reliability. The interpolation prior has weight P = PRIOR_WEIGHT x 2 ** (-d / PRIOR_HALF_LIFE)
(d: frames to the nearer label; interpolation is exact at the labels and loses trust away from them), and
X(t) = a * Phi(t) + (1 - a) * L(t) with a = W / (W + P). Without flow evidence (W -> 0) `auto` is interpolation,
not drift. Joints on one label only, and video ends, blend the one track with the prior in the same way; their
prior is the label moved with the person's interpolated box. At video ends (with the weaker END_PRIOR_WEIGHT) it
is the label moved on at constant velocity: the person's box-centre velocity between the end label and the track's
next-nearest label (`end_motion`, on by default; a copy of the label when the track has one label only).

Per-joint scores: 2 ** (-d / half_life) (d: frames to the nearer label) times 0.4 + 0.6 * evidence, where the
evidence is the flow's weight (reliable and self-consistent tracking). Agreement of the flow with interpolation is
not used as evidence: a flow that lost the joint collapses onto interpolation by the drift correction. The
calibration of these scores is in docs/propagation.md.

Flow is computed only in a region around each track's boxes (`region_margin`), shared by tracks whose regions
overlap (`stdpose.propagation.point_tracking`); the flow kind was chosen by measurement (docs/propagation.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from stdpose.data.records import Video
from stdpose.errors import ConfigError
from stdpose.propagation.common import (
    FrameSource,
    PosePrediction,
    SegmentPropagator,
    distance_score,
    side_keypoints,
)
from stdpose.propagation.point_tracking import FLOW_KINDS, Rect, RegionTracker, region_around
from stdpose.propagation.tracks import SegmentPlan, TrackSegment, end_velocity, interpolate_box, segment_crop_box

DEFAULT_FLOW = "dis"  # chosen by measurement on the real hand-labeled set (docs/propagation.md)
REGION_MARGIN = 0.5  # flow region: the track's boxes grown by this x their larger side on each side
END_MARGIN_PER_FRAME = 0.05  # video-end segments: the region grows by this per frame away from the label (max 2)
FB_SIGMA = 0.02  # mean per-step forward-backward error (x person size) at which a track's reliability is 1/e
CLOSURE_SIGMA = 0.5  # distance between a track's end and the other label (x person size), same role
AGREE_SIGMA = 0.3  # disagreement of the two corrected directions (x person size), same role
APPEARANCE_NCC = 0.5  # patch correlation with the label's patch at and above which appearance does not lower trust
PRIOR_HALF_LIFE = 2.0  # frames: reliability of the interpolation prior halves every this many frames from a label
PRIOR_WEIGHT = 0.3  # weight of the interpolation prior next to a label (a fully reliable flow weighs 1)
PHOTO_SIGMA = 0.4  # mean per-step photometric residual (patch difference / patch contrast) at which trust is 1/e
END_PRIOR_WEIGHT = 0.1  # the same before the first / after the last label, where the prior is a copied label
PATCH_FRACTION = 0.15  # appearance patch side as a fraction of the person size (at least 7 px)


@dataclass
class _Track:
    """Flow track of one side of one segment: positions (17, 2) and reliability (17,) per frame."""

    positions: dict[int, np.ndarray]
    reliability: dict[int, np.ndarray]


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64).ravel() - a.mean()
    b = b.astype(np.float64).ravel() - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 1e-6 else 0.0


def _person_size(segment: TrackSegment, index: int) -> float:
    box = interpolate_box(segment, index)
    return float(np.sqrt(max(box[2] * box[3], 1.0))) if box is not None else 100.0


class AutoPropagator(SegmentPropagator):
    """Reliability-weighted fusion of forward/backward flow tracks with linear interpolation (module docstring)."""

    name = "auto"
    needs_frames = True

    def __init__(self, flow: str = DEFAULT_FLOW, region_margin: float = REGION_MARGIN, use_appearance: bool = False,
                 fb_sigma: float = FB_SIGMA, closure_sigma: float = CLOSURE_SIGMA, agree_sigma: float = AGREE_SIGMA,
                 prior_half_life: float = PRIOR_HALF_LIFE, prior_weight: float = PRIOR_WEIGHT,
                 appearance_ncc: float = APPEARANCE_NCC, photo_sigma: float = PHOTO_SIGMA,
                 end_prior_weight: float = END_PRIOR_WEIGHT, end_motion: bool = True,
                 one_sided: str = "half", half_life: float = 7.0,
                 detections: Mapping[int, Sequence[Any]] | None = None, progress: bool = False,
                 extend: int = 0) -> None:
        super().__init__(one_sided=one_sided, half_life=half_life, detections=detections, progress=progress,
                         extend=extend)
        if flow not in FLOW_KINDS:
            raise ConfigError(f"unknown flow {flow!r} for the auto propagator; choose one of {', '.join(FLOW_KINDS)}")
        if not region_margin >= 0:
            raise ConfigError(f"region_margin must be >= 0, got {region_margin}")
        self.flow = flow
        self.region_margin = float(region_margin)
        self.use_appearance = bool(use_appearance)
        positive = {"end_prior_weight": end_prior_weight, "photo_sigma": photo_sigma, "appearance_ncc": appearance_ncc,
                    "prior_weight": prior_weight, "prior_half_life": prior_half_life, "fb_sigma": fb_sigma,
                    "closure_sigma": closure_sigma, "agree_sigma": agree_sigma}
        for key, value in positive.items():
            if not value > 0:
                raise ConfigError(f"{key} must be > 0, got {value}")
        self.prior_half_life, self.prior_weight = float(prior_half_life), float(prior_weight)
        self.end_prior_weight = float(end_prior_weight)
        self.end_motion = bool(end_motion)
        self.appearance_ncc, self.photo_sigma = float(appearance_ncc), float(photo_sigma)
        self.fb_sigma, self.closure_sigma, self.agree_sigma = float(fb_sigma), float(closure_sigma), float(agree_sigma)
        self._tracker: RegionTracker | None = None
        self._gaps: dict[tuple[int, int], list[TrackSegment]] = {}
        self._tracks: dict[tuple[int, int, int, str], _Track] = {}  # (track id, left, right, side) -> track

    # ------------------------------------------------------------------ lifecycle

    def propagate(self, video: Video, frames: FrameSource | None, labeled: Sequence[int]) -> Video:
        try:
            return super().propagate(video, frames, labeled)
        finally:
            self._gaps, self._tracks = {}, {}
            if self._tracker is not None:
                self._tracker.release()
            self._tracker = None

    def prepare(self, video: Video, frames: FrameSource | None, plan: SegmentPlan) -> None:
        assert frames is not None
        self._gaps = {}
        for seg in plan.segments:  # a gap's segments are tracked together (their regions share the frames)
            self._gaps.setdefault((seg.left, seg.right), []).append(seg)
        self._tracker = RegionTracker(frames, self.flow)

    def finish_gap(self, left: int, right: int) -> None:
        self._tracks = {k: v for k, v in self._tracks.items() if (k[1], k[2]) != (left, right)}
        if self._tracker is not None:
            self._tracker.release(keep=(right,))

    # ------------------------------------------------------------------ tracking a whole gap at once

    def _region(self, segment: TrackSegment, size: tuple[int, int]) -> Rect:
        box = segment_crop_box(segment)
        w, h = size
        if box is None:
            return 0, 0, w, h
        margin = self.region_margin
        if segment.left == segment.right:  # video end: the person may walk away from the labeled box
            margin += min(END_MARGIN_PER_FRAME * len(segment.frames), 2.0)
        return region_around(box, margin, w, h)

    def _track_gap(self, left: int, right: int) -> None:
        """Forward and backward flow tracks of every segment of the gap, one tracker call per start frame."""
        assert self._tracker is not None
        segments = self._gaps.pop((left, right), [])  # tracked once, even when no job finds points to track
        jobs: dict[tuple[int, int], list[tuple[TrackSegment, str, np.ndarray, np.ndarray]]] = {}
        for seg in segments:
            if not len(seg.frames):
                continue
            if seg.left == seg.right:  # video end: away from the single label
                xy, mask = side_keypoints(seg.left_person)
                target, side = (seg.first, "R") if seg.last < seg.left else (seg.last, "L")
                jobs.setdefault((seg.left, target), []).append((seg, side, xy, mask))
                continue
            if seg.left_person is not None:
                xy, mask = side_keypoints(seg.left_person)
                stop = seg.right if seg.right_person is not None else seg.last
                jobs.setdefault((seg.left, stop), []).append((seg, "L", xy, mask))
            if seg.right_person is not None:
                xy, mask = side_keypoints(seg.right_person)
                stop = seg.left if seg.left_person is not None else seg.first
                jobs.setdefault((seg.right, stop), []).append((seg, "R", xy, mask))
        # one call per (start, direction): extend every job of a start frame to the farthest stop
        by_start: dict[tuple[int, int], list[tuple[int, list]]] = {}
        for (start, stop), items in jobs.items():
            by_start.setdefault((start, int(np.sign(stop - start))), []).append((stop, items))
        for (start, _direction), groups in by_start.items():
            stop = max((s for s, _ in groups), key=lambda s: abs(s - start))
            items = [it for _, its in groups for it in its]
            size = self._tracker.size(start)
            pts, regions, owners = [], [], []
            for n, (seg, _side, xy, mask) in enumerate(items):
                region = self._region(seg, size)
                for j in np.flatnonzero(mask):
                    pts.append(xy[j])
                    regions.append(region)
                    owners.append((n, j))
            if not pts:
                continue
            result = self._tracker.track(np.array(pts), regions, start, stop)
            self._store(items, owners, result, start, stop)

    def _store(self, items: list, owners: list[tuple[int, int]], result: Any, start: int, stop: int) -> None:
        """Split the tracker result back into per-segment `_Track`s with reliability from FB error + appearance."""
        assert self._tracker is not None
        step = 1 if stop > start else -1
        frames = list(range(start, stop + step, step))
        owners_arr = np.array(owners)
        for n, (seg, side, xy, mask) in enumerate(items):
            rows = np.flatnonzero(owners_arr[:, 0] == n)
            joints = owners_arr[rows, 1]
            size = _person_size(seg, start)
            patch = max(7, int(PATCH_FRACTION * size) | 1)
            ref = [self._patch(start, xy[j], patch) for j in joints] if self.use_appearance else []
            cum = np.zeros(len(rows))
            photo = np.zeros(len(rows))
            positions: dict[int, np.ndarray] = {}
            reliability: dict[int, np.ndarray] = {}
            for i in frames:
                pos = np.zeros((len(mask), 2))
                pos[joints] = result.positions[i][rows]
                cum = cum + result.fb_error[i][rows]
                photo = photo + result.photo_error[i][rows]
                steps = max(abs(i - start), 1)
                rel = np.zeros(len(mask))
                r = np.exp(-((cum / steps / (self.fb_sigma * size)) ** 2))  # mean per-step FB error so far
                r = r * np.exp(-((photo / steps / self.photo_sigma) ** 2))  # mean per-step photometric residual
                if self.use_appearance and i != start:
                    ncc = np.array([_ncc(ref[k], self._patch(i, pos[j], patch)) for k, j in enumerate(joints)])
                    r = r * np.clip(ncc / self.appearance_ncc, 0.0, 1.0)
                rel[joints] = r
                positions[i], reliability[i] = pos, rel
            self._tracks[(seg.track_id, seg.left, seg.right, side)] = _Track(positions, reliability)

    def _patch(self, i: int, xy: np.ndarray, patch: int) -> np.ndarray:
        import cv2

        assert self._tracker is not None
        gray = self._tracker.gray(i)
        return cv2.getRectSubPix(gray, (patch, patch), (float(xy[0]), float(xy[1])))

    # ------------------------------------------------------------------ fusion

    def predict_segment(self, segment: TrackSegment, frames: FrameSource | None) -> dict[int, PosePrediction]:
        if not len(segment.frames):
            return {}
        key_l = (segment.track_id, segment.left, segment.right, "L")
        key_r = (segment.track_id, segment.left, segment.right, "R")
        if (segment.left, segment.right) in self._gaps:  # the gap's first segment: track all of them
            self._track_gap(segment.left, segment.right)
        fwd, bwd = self._tracks.get(key_l), self._tracks.get(key_r)
        lxy, lmask = side_keypoints(segment.left_person)
        rxy, rmask = side_keypoints(segment.right_person)
        end = segment.left == segment.right
        if end:  # one label: it is "left" for a tail and "right" for a head
            if segment.last < segment.left:
                lmask = np.zeros_like(lmask)
            else:
                rmask = np.zeros_like(rmask)
        both = lmask & rmask
        out: dict[int, PosePrediction] = {}
        span = max(segment.right - segment.left, 1)
        velocity = end_velocity(segment) if end and self.end_motion else None  # video ends: px per frame
        for i in segment.frames:
            size = _person_size(segment, i)
            dl, dr = abs(i - segment.left), abs(segment.right - i)
            t = dl / span if not end else 0.0
            lin = self._prior(segment, i, t, lxy, lmask, rxy, rmask, velocity)
            xy = lin.copy()
            evidence = np.zeros(len(lmask))
            # one-sided joints (and video ends): the track of the side that has the joint, or the copied label
            for track, mask in ((fwd, lmask & ~rmask), (bwd, rmask & ~lmask)):
                if track is None or not mask.any():
                    continue
                pos, rel = track.positions[i], track.reliability[i]
                weight = self.end_prior_weight if end else self.prior_weight
                prior = weight * float(distance_score(dl if track is fwd else dr, self.prior_half_life))
                alpha = self._share(rel[mask], prior)
                xy[mask] = alpha[:, None] * pos[mask] + (1 - alpha[:, None]) * lin[mask]
                evidence[mask] = rel[mask]
            if both.any() and fwd is not None and bwd is not None:
                xy[both], evidence[both] = self._fuse(fwd, bwd, i, segment, lxy, rxy, lin, size, both)
            dist = np.where(both, min(dl, dr), np.where(lmask, dl, dr)).astype(np.float64)
            predicted = lmask | rmask
            scores = distance_score(dist, self.half_life) * (0.4 + 0.6 * np.clip(evidence, 0.0, 1.0))
            out[i] = PosePrediction(xy, np.where(predicted, scores, 0.0))
        return out

    @staticmethod
    def _share(flow_weight: np.ndarray, prior: float) -> np.ndarray:
        """Share of the flow estimate: its weight against the prior's (0 without flow evidence)."""
        return flow_weight / (flow_weight + prior + 1e-12)

    @staticmethod
    def _prior(segment: TrackSegment, i: int, t: float, lxy: np.ndarray, lmask: np.ndarray, rxy: np.ndarray,
               rmask: np.ndarray, velocity: np.ndarray | None = None) -> np.ndarray:
        """Interpolation prior (17, 2): linear for joints on both labels; a joint on one label only moves with the
        person's box (its centre interpolated between the labels) instead of staying where it was labeled; at video
        ends the label moves on at `velocity` (px per frame away from it, `end_velocity`; None: a copy)."""
        both = lmask & rmask
        prior = np.where(lmask[:, None], lxy, rxy)
        prior = np.where(both[:, None], (1 - t) * lxy + t * rxy, prior)
        if segment.left == segment.right:  # video end: the label moved on with the person's recent velocity
            return prior if velocity is None else prior + velocity * abs(i - segment.left)
        box = interpolate_box(segment, i)
        if box is None:
            return prior
        centre = np.array([box[0] + box[2] / 2, box[1] + box[3] / 2])
        for side, mask in ((segment.left, lmask & ~rmask), (segment.right, rmask & ~lmask)):
            if mask.any():
                ref = interpolate_box(segment, side)
                if ref is not None:
                    prior[mask] += centre - np.array([ref[0] + ref[2] / 2, ref[1] + ref[3] / 2])
        return prior

    def _fuse(self, fwd: _Track, bwd: _Track, i: int, segment: TrackSegment, lxy: np.ndarray, rxy: np.ndarray,
              lin: np.ndarray, size: float, both: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions and evidence of the joints annotated on both labels (see the module docstring)."""
        left, right = segment.left, segment.right
        span = right - left
        t = (i - left) / span
        f_end, b_end = fwd.positions[right], bwd.positions[left]
        fc = fwd.positions[i] + t * (rxy - f_end)  # drift-corrected forward track, (17, 2)
        bc = bwd.positions[i] + (1 - t) * (lxy - b_end)
        closure_f = np.linalg.norm(rxy - f_end, axis=1) / size
        closure_b = np.linalg.norm(lxy - b_end, axis=1) / size
        rel_f = fwd.reliability[i] * np.exp(-((closure_f / self.closure_sigma) ** 2))
        rel_b = bwd.reliability[i] * np.exp(-((closure_b / self.closure_sigma) ** 2))
        wf, wb = (1 - t) * rel_f, t * rel_b
        total = wf + wb
        phi = np.where(total[:, None] > 1e-9, (wf[:, None] * fc + wb[:, None] * bc) / np.maximum(total, 1e-9)[:, None],
                       lin)
        agree = np.exp(-((np.linalg.norm(fc - bc, axis=1) / size / self.agree_sigma) ** 2))
        flow_weight = agree * total
        prior = self.prior_weight * float(distance_score(min(i - left, right - i), self.prior_half_life))
        alpha = self._share(flow_weight, prior)
        xy = alpha[:, None] * phi + (1 - alpha[:, None]) * lin
        evidence = np.clip(flow_weight, 0.0, 1.0)  # (a lost flow collapses onto L: agreeing with L is no evidence)
        return xy[both], evidence[both]
