"""Review flags: which propagated joints and poses a person should check, from the per-joint scores.

After propagation an annotator checks the result. `mark_for_review(video, threshold)` marks every propagated
person (never a human label) with two fields that every writer saves (PoseTrack18/21 and COCO annotations,
PoseTrack17 annorects; other writers are asked to keep them too, e.g. as CVAT attributes):

- `person.extra["review_joints"]`: the slot indices (PoseTrack18 order, `stdpose.skeleton.POSETRACK_SLOTS`) of the
  predicted joints whose score is below the threshold;
- `person.extra["review"]`: True when that list is not empty (the pose needs a look), False otherwise.

What the scores mean differs per method (docs/propagation.md, "Scores and review"): nearest and linear decay with
the distance to the label, flow adds forward/backward agreement, stdpose is the heatmap maximum.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stdpose.data.records import Person, Video
from stdpose.errors import ConfigError

REVIEW_KEY = "review"
REVIEW_JOINTS_KEY = "review_joints"


@dataclass
class ReviewSummary:
    """What `mark_for_review` flagged: counts, and the (frame index, track id) of every flagged pose."""

    threshold: float
    poses: int = 0  # propagated poses looked at
    joints: int = 0  # predicted joints looked at
    flagged_poses: int = 0
    flagged_joints: int = 0
    flagged: list[tuple[int, int | None]] = field(default_factory=list)

    @property
    def flagged_frames(self) -> list[int]:
        """Frame indices holding at least one flagged pose, in order."""
        return sorted({i for i, _ in self.flagged})

    def line(self) -> str:
        """One line for the command's output."""
        return (f"review (scores below {self.threshold:g}): {self.flagged_poses} of {self.poses} propagated "
                f"pose(s) on {len(self.flagged_frames)} frame(s), {self.flagged_joints} of {self.joints} joint(s)")


def check_threshold(threshold: float) -> float:
    """The threshold as a float in [0, 1], or ConfigError (scores are in [0, 1])."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ConfigError(f"the review threshold must be a number in [0, 1], got {threshold!r}") from None
    if not 0.0 <= value <= 1.0 or not np.isfinite(value):
        raise ConfigError(f"the review threshold must be in [0, 1] (scores are), got {threshold!r}")
    return value


def review_joints(person: Person, threshold: float) -> list[int]:
    """Slots of `person`'s predicted joints whose score is below `threshold` (all of them when it has no scores)."""
    predicted = np.flatnonzero(person.annotated)
    if person.scores is None:
        return [int(j) for j in predicted]
    return [int(j) for j in predicted if person.scores[j] < threshold]


def mark_for_review(video: Video, threshold: float) -> ReviewSummary:
    """Set the review fields on every propagated person of `video` (in place); human labels are left alone."""
    threshold = check_threshold(threshold)
    summary = ReviewSummary(threshold)
    for frame in video.frames:
        for person in frame.persons:
            if not person.propagated:
                continue
            joints = review_joints(person, threshold)
            person.extra[REVIEW_JOINTS_KEY] = joints
            person.extra[REVIEW_KEY] = bool(joints)
            summary.poses += 1
            summary.joints += int(person.annotated.sum())
            if joints:
                summary.flagged_poses += 1
                summary.flagged_joints += len(joints)
                summary.flagged.append((frame.index, person.track_id))
    return summary

