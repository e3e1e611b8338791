"""Following points through a video with OpenCV optical flow, computed only in regions around the people.

`RegionTracker.track(points, regions, start, stop)` follows (K, 2) points from frame `start` to frame `stop`, one
frame at a time, and returns every intermediate position plus a per-step forward-backward error (track the new
position back one frame and measure how far it lands from where it started: a large error means the flow lost the
point). The flow is computed inside rectangular regions only (one per point; regions that overlap are merged into
one, so tracks close to each other share the computation), never on the full frame.

Flows (`kind`), all shipped with OpenCV:
- "lk": sparse pyramidal Lucas-Kanade (`cv2.calcOpticalFlowPyrLK`) on the points themselves;
- "farneback": dense Farneback flow of the region, sampled bilinearly at the points;
- "dis": dense DIS flow (`cv2.DISOpticalFlow`, medium preset) of the region, sampled bilinearly.
The default is chosen by measurement (docs/propagation.md, benchmarks/real_propagation.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stdpose.errors import ConfigError
from stdpose.propagation.common import FrameSource
from stdpose.propagation.flow import FARNEBACK_DEFAULTS, sample_bilinear

FLOW_KINDS = ("lk", "farneback", "dis")
LK_WINDOW = 21  # pixels; Lucas-Kanade window (people in the test videos are 80-300 px tall)
LK_LEVELS = 3  # pyramid levels above the base image
LOST_ERROR = 1e6  # forward-backward error given to a point the flow failed on
PHOTO_PATCH = 7  # pixels; patch compared before and after each step (photometric residual)
PHOTO_CONTRAST = 8.0  # grey levels added to a patch's contrast so flat patches do not divide by ~0

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) in image pixels


def merge_rects(rects: Sequence[Rect]) -> tuple[list[Rect], list[int]]:
    """Union overlapping rectangles until none overlap: (merged rects, index of the merged rect of each input)."""
    groups = [[i] for i in range(len(rects))]
    boxes = [list(r) for r in rects]
    changed = True
    while changed:
        changed = False
        for a in range(len(boxes)):
            for b in range(a + 1, len(boxes)):
                ra, rb = boxes[a], boxes[b]
                if ra[0] < rb[2] and rb[0] < ra[2] and ra[1] < rb[3] and rb[1] < ra[3]:
                    boxes[a] = [min(ra[0], rb[0]), min(ra[1], rb[1]), max(ra[2], rb[2]), max(ra[3], rb[3])]
                    groups[a] += groups[b]
                    del boxes[b], groups[b]
                    changed = True
                    break
            if changed:
                break
    owner = [0] * len(rects)
    for g, members in enumerate(groups):
        for i in members:
            owner[i] = g
    return [tuple(b) for b in boxes], owner  # type: ignore[misc]


def region_around(box: Sequence[float], margin: float, width: int, height: int) -> Rect:
    """The (x, y, w, h) box grown by `margin` times its larger side (+ 8 px) on every side, clipped to the image."""
    x, y, w, h = (float(v) for v in box)
    m = margin * max(w, h) + 8.0
    x0, y0 = int(max(0, np.floor(x - m))), int(max(0, np.floor(y - m)))
    x1, y1 = int(min(width, np.ceil(x + w + m))), int(min(height, np.ceil(y + h + m)))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


@dataclass
class TrackResult:
    """Positions (K, 2) on every frame from start to stop, the forward-backward error (K,) of the step that
    reached each frame (0 on the start frame; LOST_ERROR where the flow failed) and its photometric residual (K,):
    mean absolute grey-level difference of the patch before and after the step over the patch's contrast
    (about 0.1-0.5 for a true match, about 1 for an unrelated patch)."""

    positions: dict[int, np.ndarray]
    fb_error: dict[int, np.ndarray]
    photo_error: dict[int, np.ndarray]


def photometric_residual(a: np.ndarray, pa: np.ndarray, b: np.ndarray, pb: np.ndarray) -> np.ndarray:
    """(K,) mean |patch of a at pa - patch of b at pb| / (contrast of a's patch + PHOTO_CONTRAST), bilinear patches."""
    import cv2

    out = np.zeros(len(pa))
    size = (PHOTO_PATCH, PHOTO_PATCH)
    for k, (p, q) in enumerate(zip(pa, pb)):
        u = cv2.getRectSubPix(a, size, (float(p[0]), float(p[1]))).astype(np.float32)
        v = cv2.getRectSubPix(b, size, (float(q[0]), float(q[1]))).astype(np.float32)
        out[k] = float(np.abs(u - v).mean() / (u.std() + PHOTO_CONTRAST))
    return out


class RegionTracker:
    """Point tracking with one OpenCV flow, inside regions. Grayscale frames are cached until `release`."""

    def __init__(self, frames: FrameSource, kind: str = "lk") -> None:
        if kind not in FLOW_KINDS:
            raise ConfigError(f"unknown flow {kind!r}; choose one of {', '.join(FLOW_KINDS)}")
        self.frames = frames
        self.kind = kind
        self._gray: dict[int, np.ndarray] = {}
        self._dis = None
        self.pixels = 0  # region pixels flow was computed on (per direction and step; for benchmarks)

    def gray(self, i: int) -> np.ndarray:
        import cv2

        if i not in self._gray:
            img = np.asarray(self.frames[i])
            self._gray[i] = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img.astype(np.uint8)
        return self._gray[i]

    def size(self, i: int) -> tuple[int, int]:
        h, w = self.gray(i).shape[:2]
        return w, h

    def release(self, keep: Sequence[int] = ()) -> None:
        """Forget cached frames except `keep`."""
        self._gray = {i: g for i, g in self._gray.items() if i in set(keep)}

    # ------------------------------------------------------------------ one step in one region

    def _dense(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        import cv2

        if self.kind == "dis":
            if self._dis is None:
                self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
            return self._dis.calc(np.ascontiguousarray(a), np.ascontiguousarray(b), None)
        p = FARNEBACK_DEFAULTS
        levels = int(max(1, min(p["levels"], np.log2(max(min(a.shape[:2]), 2) / 8.0))))
        return cv2.calcOpticalFlowFarneback(a, b, None, p["pyr_scale"], levels, p["winsize"], p["iterations"],
                                            p["poly_n"], p["poly_sigma"], p["flags"])

    def _step_region(self, a: np.ndarray, b: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(new positions, forward-backward error) of (K, 2) region-pixel points from image a to image b."""
        import cv2

        self.pixels += a.size
        if self.kind == "lk":
            params = {"winSize": (LK_WINDOW, LK_WINDOW), "maxLevel": LK_LEVELS,
                      "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)}
            p0 = pts.astype(np.float32).reshape(-1, 1, 2)
            p1, st1, _ = cv2.calcOpticalFlowPyrLK(a, b, p0, None, **params)
            p0r, st2, _ = cv2.calcOpticalFlowPyrLK(b, a, p1, None, **params)
            new = p1.reshape(-1, 2).astype(np.float64)
            err = np.linalg.norm(p0r.reshape(-1, 2) - pts, axis=1)
            ok = (st1.ravel() == 1) & (st2.ravel() == 1) & np.all(np.isfinite(new), axis=1)
        else:
            fwd, bwd = self._dense(a, b), self._dense(b, a)
            self.pixels += a.size
            new = pts + sample_bilinear(fwd, pts)
            err = np.linalg.norm(new + sample_bilinear(bwd, new) - pts, axis=1)
            ok = np.all(np.isfinite(new), axis=1)
        new = np.where(ok[:, None], new, pts)  # a lost point stays where it was
        return new, np.where(ok, err, LOST_ERROR)

    # ------------------------------------------------------------------ public

    def track(self, points: np.ndarray, regions: Sequence[Rect], start: int, stop: int) -> TrackResult:
        """Follow `points` (K, 2, on frame `start`) to frame `stop`; point k uses region `regions[k]` (rects that
        overlap are merged, so points of nearby tracks share one flow computation)."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2).copy()
        out = TrackResult({start: pts.copy()}, {start: np.zeros(len(pts))}, {start: np.zeros(len(pts))})
        if len(pts) == 0 or start == stop:
            return out
        merged, owner = merge_rects(list(regions))
        members = [np.flatnonzero(np.asarray(owner) == g) for g in range(len(merged))]
        step = 1 if stop > start else -1
        for i in range(start, stop, step):
            a, b = self.gray(i), self.gray(i + step)
            err = np.zeros(len(pts))
            before = pts.copy()
            for (x0, y0, x1, y1), idx in zip(merged, members):
                off = np.array([x0, y0], dtype=np.float64)
                local = np.clip(pts[idx] - off, 0.0, [x1 - x0 - 1, y1 - y0 - 1])
                new, e = self._step_region(a[y0:y1, x0:x1], b[y0:y1, x0:x1], local)
                pts[idx] = new + off
                err[idx] = e
            out.positions[i + step] = pts.copy()
            out.fb_error[i + step] = err
            out.photo_error[i + step] = photometric_residual(a, before, b, pts)
        return out
