"""The one in-memory form of pose annotations: Video -> Frame -> Person.

Readers of every file format produce these records and writers consume them, so the rest of stdpose never sees a
file format. Keypoints always use the PoseTrack18 17-slot order (`stdpose.skeleton.POSETRACK_SLOTS`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stdpose.errors import DataError
from stdpose.skeleton import NUM_SLOTS

Box = tuple[float, float, float, float]  # x, y, width, height in image pixels
Polygon = tuple[tuple[float, ...], tuple[float, ...]]  # xs, ys of one ignore region
# Frame.extra key: ids of the tracks a labeled frame gives no pose for (CVAT keyframes are per track); readers set
# it, `stdpose.propagation.tracks` fills those tracks there like on an unlabeled frame.
UNLABELED_TRACKS = "_unlabeled_tracks"


@dataclass
class Person:
    """One person in one frame.

    keypoints: (17, 3) array of x, y, v; v > 0 means the joint is annotated (PoseTrack18 writes 1), and a slot
    that is not annotated is (0, 0, 0). scores: optional (17,) per-keypoint confidences (predictions).
    propagated: True for poses that stdpose produced (pseudo-labels), False for human labels.
    """

    keypoints: np.ndarray
    track_id: int | None = None
    bbox: Box | None = None
    bbox_head: Box | None = None
    scores: np.ndarray | None = None
    score: float | None = None
    person_id: int | None = None
    propagated: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, dtype=np.float64)
        if self.scores is not None:
            self.scores = np.asarray(self.scores, dtype=np.float64)

    @property
    def annotated(self) -> np.ndarray:
        """(17,) boolean mask of annotated joints."""
        return self.keypoints[:, 2] > 0

    def validate(self, where: str) -> None:
        """Raise DataError (naming `where`) if shapes or values are unusable."""
        if self.keypoints.shape != (NUM_SLOTS, 3):
            raise DataError(where, f"keypoints must have 17 slots of (x, y, v), got shape {self.keypoints.shape}")
        if not np.all(np.isfinite(self.keypoints)):
            raise DataError(where, "keypoints contain NaN or infinite values")
        if self.scores is not None and self.scores.shape != (NUM_SLOTS,):
            raise DataError(where, f"keypoint scores must have 17 values, got shape {self.scores.shape}")
        if self.scores is not None and not np.all(np.isfinite(self.scores)):
            raise DataError(where, "keypoint scores contain NaN or infinite values")
        for name, box in (("bbox", self.bbox), ("bbox_head", self.bbox_head)):
            if box is None:
                continue
            if len(box) != 4 or not all(math.isfinite(float(v)) for v in box):
                raise DataError(where, f"{name} must be 4 finite numbers (x, y, w, h), got {box}")
        if self.bbox is not None and (self.bbox[2] <= 0 or self.bbox[3] <= 0):
            raise DataError(where, f"bbox has zero or negative size: {self.bbox}")

    def box_from_keypoints(self, margin: float = 0.0) -> Box | None:
        """Tight box around the annotated joints, enlarged by `margin` of its size; None with fewer than 2 joints."""
        pts = self.keypoints[self.annotated, :2]
        if len(pts) < 2:
            return None
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
        return (x0 - margin * w / 2, y0 - margin * h / 2, w * (1 + margin), h * (1 + margin))


@dataclass
class Frame:
    """One frame of a video. `index` is the 0-based position in the video; `is_labeled` is True when the
    annotators labeled this frame (its people, or the absence of people, are ground truth)."""

    index: int
    file_name: str
    persons: list[Person] = field(default_factory=list)
    is_labeled: bool = False
    image_id: int | None = None
    frame_id: int | None = None
    ignore_regions: list[Polygon] = field(default_factory=list)
    width: int | None = None
    height: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Video:
    """A video's frames in order, with its PoseTrack identity (`vid_id`, `name`)."""

    name: str
    frames: list[Frame] = field(default_factory=list)
    vid_id: str | None = None
    source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def labeled_indices(self) -> list[int]:
        return [f.index for f in self.frames if f.is_labeled]

    def validate(self) -> None:
        """Check every person; raise DataError naming the video, frame and person at the first problem."""
        where_video = self.source or self.name
        for position, frame in enumerate(self.frames):
            if frame.index != position:
                raise DataError(where_video, f"frame {frame.file_name} has index {frame.index}, expected {position}")
            for k, person in enumerate(frame.persons):
                person.validate(f"{where_video} (frame {frame.index} '{frame.file_name}', person {k})")
