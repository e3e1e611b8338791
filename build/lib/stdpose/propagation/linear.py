"""Linear-interpolation baseline: joints move at constant speed between the two labeled poses of a track.

A joint annotated on both labels is interpolated linearly in time; a joint annotated on one label only (and every
joint of a one-sided or video-end segment) is copied from that label. Scores decay with the distance to the nearer
label that annotates the joint (`distance_score`).
"""

from __future__ import annotations

import numpy as np

from stdpose.propagation.common import (
    FrameSource,
    PosePrediction,
    SegmentPropagator,
    joint_scores,
    side_distances,
    side_keypoints,
)
from stdpose.propagation.tracks import TrackSegment


class LinearPropagator(SegmentPropagator):
    """Linear interpolation between the two labeled poses."""

    name = "linear"

    def predict_segment(self, segment: TrackSegment, frames: FrameSource | None) -> dict[int, PosePrediction]:
        lxy, lmask = side_keypoints(segment.left_person)
        rxy, rmask = side_keypoints(segment.right_person)
        both = lmask & rmask
        out: dict[int, PosePrediction] = {}
        for i in segment.frames:
            dl, dr = side_distances(segment, i)
            t = dl / (dl + dr) if np.isfinite(dl + dr) and dl + dr > 0 else 0.0  # weight of the right label
            xy = np.where(lmask[:, None], lxy, rxy)
            xy = np.where(both[:, None], (1 - t) * lxy + t * rxy, xy)
            dist = np.where(both, min(dl, dr), np.where(lmask, dl, dr))
            scores = joint_scores(dist, lmask | rmask, self.half_life)
            out[i] = PosePrediction(xy, scores)
        return out
