"""OKS-based non-maximum suppression of whole-body pose predictions (numpy).

A detector often fires twice on one person (two overlapping boxes), and the top-down estimator then returns two
near-identical poses. The PoseTrack metric counts the second one as a false positive for every joint, so the
usual post-processing (HRNet / DCPose / PoseWarper) drops poses whose Object Keypoint Similarity (OKS) with a
higher-scoring pose exceeds a threshold (0.9 in those releases).

OKS follows the COCO definition: exp(-d^2 / (2 s^2 k^2)) averaged over joints, with s^2 the object area (here the
person box area) and k the per-joint constant 2*sigma. PoseTrack publishes no sigmas; we use COCO's sigma for each
joint that COCO has, and COCO's eye sigma (0.025) for head_bottom and head_top (the mmpose PoseTrack18 choice).
Joints that the pose does not have (v == 0, e.g. the ears) are left out of the average.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stdpose.skeleton import NUM_SLOTS, POSETRACK_SLOTS

_COCO_SIGMAS = {
    "nose": 0.026,
    "head_bottom": 0.025,
    "head_top": 0.025,
    "left_ear": 0.035,
    "right_ear": 0.035,
    "left_shoulder": 0.079,
    "right_shoulder": 0.079,
    "left_elbow": 0.072,
    "right_elbow": 0.072,
    "left_wrist": 0.062,
    "right_wrist": 0.062,
    "left_hip": 0.107,
    "right_hip": 0.107,
    "left_knee": 0.087,
    "right_knee": 0.087,
    "left_ankle": 0.089,
    "right_ankle": 0.089,
}
# (17,) per-slot sigmas in PoseTrack18 slot order.
POSETRACK_SIGMAS: np.ndarray = np.array([_COCO_SIGMAS[name] for name in POSETRACK_SLOTS])


def oks(
    reference: np.ndarray,
    others: np.ndarray,
    area: float,
    sigmas: np.ndarray = POSETRACK_SIGMAS,
    min_joint_score: float | None = None,
) -> np.ndarray:
    """OKS of `reference` (17, 3) against each pose in `others` (M, 17, 3); returns (M,) values in [0, 1].

    The third column is a visibility or score: joints of `reference` with value <= 0 (or below
    `min_joint_score` when given) do not count. `area` is the reference person's scale s^2 (box area, pixels^2).
    With no usable joint the OKS is 0 (nothing to say the poses are the same person).
    """
    reference = np.asarray(reference, dtype=np.float64)
    others = np.asarray(others, dtype=np.float64).reshape(-1, reference.shape[0], 3)  # (M, J, 3)
    if reference.shape != (len(sigmas), 3):
        raise ValueError(f"reference pose must have shape ({len(sigmas)}, 3), got {reference.shape}")
    use = reference[:, 2] > (0.0 if min_joint_score is None else min_joint_score)  # (J,)
    if not use.any() or len(others) == 0:
        return np.zeros(len(others))
    variances = (2.0 * np.asarray(sigmas)) ** 2  # (J,)
    d2 = ((others[:, :, :2] - reference[None, :, :2]) ** 2).sum(axis=2)  # (M, J)
    e = d2 / variances[None, :] / (max(float(area), 1e-9) * 2.0)
    return np.exp(-e)[:, use].mean(axis=1)


def oks_nms(
    poses: Sequence[np.ndarray] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    areas: Sequence[float] | np.ndarray,
    threshold: float = 0.9,
    sigmas: np.ndarray = POSETRACK_SIGMAS,
    min_joint_score: float | None = None,
) -> list[int]:
    """Greedy OKS-NMS: indices of the poses to keep, best score first.

    poses: (N, 17, 3) x, y and a per-joint score/visibility; scores: (N,) pose scores used for the order;
    areas: (N,) box areas. A pose is dropped when its OKS with an already kept, higher-scoring pose is
    > `threshold` (the OKS is measured with the kept pose's area and joints). Ties keep the earlier index.
    """
    poses = np.asarray(poses, dtype=np.float64)
    n = len(poses)
    if n == 0:
        return []
    if poses.shape[1:] != (NUM_SLOTS, 3) and poses.shape[1:] != (len(sigmas), 3):
        raise ValueError(f"poses must have shape (N, {len(sigmas)}, 3), got {poses.shape}")
    scores = np.asarray(scores, dtype=np.float64)
    areas = np.asarray(areas, dtype=np.float64)
    if scores.shape != (n,) or areas.shape != (n,):
        raise ValueError(f"need one score and one area per pose: {n} poses, {scores.shape} scores, {areas.shape} areas")
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while len(order) > 0:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        overlap = oks(poses[best], poses[rest], areas[best], sigmas, min_joint_score)
        order = rest[overlap <= threshold]
    return keep
