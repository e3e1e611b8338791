"""Farneback optical-flow baseline (the paper's "Farneback" row of Table 1).

Dense optical flow (`cv2.calcOpticalFlowFarneback`) is computed once per pair of consecutive frames and direction,
on grayscale frames optionally downscaled so the longer side is at most `max_side` pixels (speed; flow is scaled
back to full-resolution pixels). Every track of a gap reuses the same flow fields; they are freed when the gap is
done. Each labeled joint is tracked forward from the left label and backward from the right label, one frame at a
time (x_{t+1} = x_t + flow_{t->t+1}(x_t), flow sampled bilinearly); where both exist the two tracks are blended
linearly by temporal distance (the nearer label weighs more), otherwise the one available track is used.

Scores: `distance_score` of the distance to the nearer label, times a forward-backward consistency factor
0.5 + 0.5 * exp(-(d / (CONSISTENCY_SIGMA * size))^2), where d is the distance between the forward- and the backward-
tracked positions and size the sqrt of the track's box area: where the two tracks disagree, the flow lost the joint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from stdpose.data.records import Video
from stdpose.errors import ConfigError, DataError
from stdpose.propagation.common import (
    FrameSource,
    PosePrediction,
    SegmentPropagator,
    joint_scores,
    side_keypoints,
)
from stdpose.propagation.tracks import SegmentPlan, TrackSegment, interpolate_box

# OpenCV's Farneback parameters (names as in cv2.calcOpticalFlowFarneback); 5 pyramid levels for fast motion.
FARNEBACK_DEFAULTS: dict[str, Any] = {
    "pyr_scale": 0.5,
    "levels": 5,
    "winsize": 15,
    "iterations": 3,
    "poly_n": 5,
    "poly_sigma": 1.2,
    "flags": 0,
}
CONSISTENCY_SIGMA = 0.1  # fraction of the person size at which forward/backward disagreement halves the bonus


def sample_bilinear(field: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Values of an (H, W, C) field at (K, 2) x, y points, bilinear, with coordinates clamped to the image."""
    h, w = field.shape[:2]
    x = np.clip(points[:, 0], 0.0, w - 1.0)
    y = np.clip(points[:, 1], 0.0, h - 1.0)
    x0 = np.minimum(np.floor(x).astype(np.int64), w - 2) if w > 1 else np.zeros(len(x), np.int64)
    y0 = np.minimum(np.floor(y).astype(np.int64), h - 2) if h > 1 else np.zeros(len(y), np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = field[y0, x0] * (1 - fx) + field[y0, x1] * fx  # (K, C)
    bottom = field[y1, x0] * (1 - fx) + field[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


class FlowCache:
    """Farneback flow between consecutive frames of one video, computed on demand and kept until `release`.

    `max_side`: downscale frames so their longer side is at most this (None: full resolution). Points and returned
    positions are always in full-resolution image pixels.
    """

    def __init__(self, frames: FrameSource, max_side: int | None = 640, params: Mapping[str, Any] | None = None,
                 where: str = "video") -> None:
        unknown = set(params or {}) - set(FARNEBACK_DEFAULTS)
        if unknown:
            raise ConfigError(f"unknown Farneback parameter(s) {sorted(unknown)}; known: {sorted(FARNEBACK_DEFAULTS)}")
        if max_side is not None and max_side < 16:
            raise ConfigError(f"flow max_side must be at least 16 pixels (or None), got {max_side}")
        self.frames = frames
        self.max_side = max_side
        self.params = {**FARNEBACK_DEFAULTS, **(params or {})}
        self.where = where
        self._gray: dict[int, np.ndarray] = {}
        self._flow: dict[tuple[int, int], np.ndarray] = {}
        self._size: tuple[int, int] | None = None  # full-resolution (w, h)
        self.computed = 0  # flow fields computed so far (for tests and benchmarks)

    def _load_gray(self, i: int) -> np.ndarray:
        import cv2

        if i in self._gray:
            return self._gray[i]
        img = np.asarray(self.frames[i])
        if img.ndim == 3 and img.shape[2] == 3:
            gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        elif img.ndim == 2:
            gray = img
        else:
            raise DataError(self.where, f"frame {i} has shape {img.shape}, expected (H, W, 3) BGR or (H, W)")
        if gray.dtype != np.uint8:
            gray = np.clip(gray, 0, 255).astype(np.uint8)
        h, w = gray.shape
        if self._size is None:
            self._size = (w, h)
        elif self._size != (w, h):
            raise DataError(self.where, f"frame {i} is {w}x{h} but earlier frames are {self._size[0]}x{self._size[1]}")
        s = self.scale
        if s < 1.0:
            gray = cv2.resize(gray, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        self._gray[i] = gray
        return gray

    @property
    def scale(self) -> float:
        """Downscale factor applied to the frames (1.0 = full resolution); needs one frame loaded."""
        if self._size is None:
            self._load_gray(0)
        assert self._size is not None
        if self.max_side is None:
            return 1.0
        return min(1.0, self.max_side / max(self._size))

    def flow(self, i: int, j: int) -> np.ndarray:
        """(h, w, 2) flow from frame i to frame j (= i +/- 1) at the working resolution, in working pixels."""
        import cv2

        if (i, j) not in self._flow:
            a, b = self._load_gray(i), self._load_gray(j)
            p = self.params
            self._flow[(i, j)] = cv2.calcOpticalFlowFarneback(
                a, b, None, p["pyr_scale"], p["levels"], p["winsize"], p["iterations"], p["poly_n"], p["poly_sigma"],
                p["flags"])
            self.computed += 1
        return self._flow[(i, j)]

    def track(self, points: np.ndarray, start: int, stop: int) -> dict[int, np.ndarray]:
        """Positions (K, 2) of `points` (given on frame `start`) on every frame from start to stop (both included),
        following the flow one frame at a time in the direction of `stop`."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        out = {start: pts.copy()}
        if len(pts) == 0 or start == stop:
            return out
        self._load_gray(start)
        assert self._size is not None
        w, h = self._size
        step = 1 if stop > start else -1
        for i in range(start, stop, step):
            field = self.flow(i, i + step)
            fh, fw = field.shape[:2]
            sx, sy = fw / w, fh / h
            work = np.stack([(pts[:, 0] + 0.5) * sx - 0.5, (pts[:, 1] + 0.5) * sy - 0.5], axis=1)  # pixel centres
            d = sample_bilinear(field, work)  # (K, 2) in working pixels
            pts = pts + d / np.array([sx, sy])
            out[i + step] = pts.copy()
        return out

    def release(self) -> None:
        """Forget every cached frame and flow field."""
        self._gray.clear()
        self._flow.clear()


class FlowPropagator(SegmentPropagator):
    """Track labeled joints with Farneback flow forward and backward and blend them by temporal distance."""

    name = "flow"
    needs_frames = True

    def __init__(self, max_side: int | None = 640, farneback: Mapping[str, Any] | None = None,
                 one_sided: str = "half", half_life: float = 7.0,
                 detections: Mapping[int, Sequence[Any]] | None = None, progress: bool = False,
                 extend: int = 0) -> None:
        super().__init__(one_sided=one_sided, half_life=half_life, detections=detections, progress=progress,
                         extend=extend)
        self.max_side = max_side
        self.farneback = dict(farneback or {})
        FlowCache([], max_side, self.farneback)  # validate the options now, not on the first video
        self._cache: FlowCache | None = None

    def prepare(self, video: Video, frames: FrameSource | None, plan: SegmentPlan) -> None:
        assert frames is not None
        self._cache = FlowCache(frames, self.max_side, self.farneback, where=video.source or video.name)

    def finish_gap(self, left: int, right: int) -> None:
        if self._cache is not None:
            self._cache.release()

    def _tracked(self, person_xy: np.ndarray, mask: np.ndarray, start: int, stop: int) -> dict[int, np.ndarray]:
        assert self._cache is not None
        full = np.zeros((len(mask), 2))
        idx = np.flatnonzero(mask)
        out: dict[int, np.ndarray] = {}
        for i, pts in self._cache.track(person_xy[idx], start, stop).items():
            xy = full.copy()
            xy[idx] = pts
            out[i] = xy
        return out

    def predict_segment(self, segment: TrackSegment, frames: FrameSource | None) -> dict[int, PosePrediction]:
        if not len(segment.frames):
            return {}
        lxy, lmask = side_keypoints(segment.left_person)
        rxy, rmask = side_keypoints(segment.right_person)
        if segment.left == segment.right:  # video end: track away from the one label
            target = segment.first if segment.last < segment.left else segment.last
            fwd, bwd = self._tracked(lxy, lmask, segment.left, target), {}
            rmask = np.zeros_like(rmask)
        else:
            fwd = self._tracked(lxy, lmask, segment.left, segment.last) if lmask.any() else {}
            bwd = self._tracked(rxy, rmask, segment.right, segment.first) if rmask.any() else {}
        both = lmask & rmask
        out: dict[int, PosePrediction] = {}
        for i in segment.frames:
            dl = abs(i - segment.left)
            dr = abs(segment.right - i) if segment.left != segment.right else np.inf
            f = fwd.get(i, lxy)
            b = bwd.get(i, rxy)
            t = dl / (dl + dr) if np.isfinite(dr) else 0.0  # weight of the backward (right) track
            xy = np.where(lmask[:, None], f, b)
            xy = np.where(both[:, None], (1 - t) * f + t * b, xy)
            dist = np.where(both, min(dl, dr), np.where(lmask, dl, dr))
            scores = joint_scores(dist, lmask | rmask, self.half_life)
            box = interpolate_box(segment, i)
            size = np.sqrt(box[2] * box[3]) if box is not None else 100.0
            disagreement = np.linalg.norm(f - b, axis=1)
            consistency = 0.5 + 0.5 * np.exp(-((disagreement / (CONSISTENCY_SIGMA * size)) ** 2))
            scores = np.where(both, scores * consistency, scores)
            out[i] = PosePrediction(xy, scores)
        return out
