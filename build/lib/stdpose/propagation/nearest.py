"""Nearest-label baseline: every unlabeled frame gets the pose of the temporally nearest labeled frame.

Per joint: the joint is copied from the nearest label that annotates it (so a joint missing on the near side is
taken from the far side). A frame exactly midway takes the left (earlier) label. Scores decay with the distance to
the label copied from (`distance_score`).
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


class NearestPropagator(SegmentPropagator):
    """Copy the nearest labeled pose (ties go to the left label)."""

    name = "nearest"

    def predict_segment(self, segment: TrackSegment, frames: FrameSource | None) -> dict[int, PosePrediction]:
        lxy, lmask = side_keypoints(segment.left_person)
        rxy, rmask = side_keypoints(segment.right_person)
        out: dict[int, PosePrediction] = {}
        for i in segment.frames:
            dl, dr = side_distances(segment, i)
            use_left = lmask & ((dl <= dr) | ~rmask)  # (17,)
            use_right = rmask & ~use_left
            xy = np.where(use_left[:, None], lxy, rxy)
            dist = np.where(use_left, dl, dr)
            scores = joint_scores(dist, use_left | use_right, self.half_life)
            out[i] = PosePrediction(xy, scores)
        return out
