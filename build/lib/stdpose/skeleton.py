"""Joint layouts: PoseTrack18 slots, poseval's 15-joint order, flip pairs, mAP groups, COCO/MPII mappings.

Every keypoint array inside stdpose uses the PoseTrack18 17-slot order (`POSETRACK_SLOTS`). The ears are never
annotated in PoseTrack, so the evaluation uses 15 of the 17 slots, in poseval's order (`POSEVAL_ORDER`).
"""

from __future__ import annotations

import numpy as np

POSETRACK_SLOTS: tuple[str, ...] = (
    "nose",
    "head_bottom",
    "head_top",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
NUM_SLOTS = len(POSETRACK_SLOTS)
SLOT = {name: i for i, name in enumerate(POSETRACK_SLOTS)}

# The 15 joints PoseTrack annotates and evaluates (ears excluded), as slot indices.
EVALUATED_SLOTS: tuple[int, ...] = tuple(i for i, n in enumerate(POSETRACK_SLOTS) if not n.endswith("_ear"))

# poseval's joint order (PoseTrack17 / MPII ids 0..14): position p holds the PoseTrack18 slot index.
# poseval joint 12 is "neck", which is PoseTrack18 `head_bottom`.
POSEVAL_NAMES: tuple[str, ...] = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "head_bottom",
    "nose",
    "head_top",
)
POSEVAL_ORDER: tuple[int, ...] = tuple(SLOT[n] for n in POSEVAL_NAMES)

# Left/right pairs swapped by a horizontal flip. head_bottom/head_top lie on the midline and are not swapped.
FLIP_PAIRS: tuple[tuple[int, int], ...] = tuple(
    (SLOT["left_" + part], SLOT["right_" + part])
    for part in ("ear", "shoulder", "elbow", "wrist", "hip", "knee", "ankle")
)


def flip_permutation(num_slots: int = NUM_SLOTS) -> np.ndarray:
    """Index array p such that flipped[..., i] = original[..., p[i]] (left and right exchanged)."""
    perm = np.arange(num_slots)
    for a, b in FLIP_PAIRS:
        perm[a], perm[b] = b, a
    return perm


# mAP table groups, in the order the field prints them; each lists PoseTrack18 slots.
JOINT_GROUPS: dict[str, tuple[int, ...]] = {
    "Head": (SLOT["nose"], SLOT["head_bottom"], SLOT["head_top"]),
    "Shoulder": (SLOT["left_shoulder"], SLOT["right_shoulder"]),
    "Elbow": (SLOT["left_elbow"], SLOT["right_elbow"]),
    "Wrist": (SLOT["left_wrist"], SLOT["right_wrist"]),
    "Hip": (SLOT["left_hip"], SLOT["right_hip"]),
    "Knee": (SLOT["left_knee"], SLOT["right_knee"]),
    "Ankle": (SLOT["left_ankle"], SLOT["right_ankle"]),
}
GROUP_NAMES: tuple[str, ...] = (*JOINT_GROUPS, "Mean")

# Bones drawn in overlays (slot pairs).
SKELETON_EDGES: tuple[tuple[int, int], ...] = (
    (SLOT["head_top"], SLOT["nose"]),
    (SLOT["nose"], SLOT["head_bottom"]),
    (SLOT["head_bottom"], SLOT["left_shoulder"]),
    (SLOT["head_bottom"], SLOT["right_shoulder"]),
    (SLOT["left_shoulder"], SLOT["left_elbow"]),
    (SLOT["left_elbow"], SLOT["left_wrist"]),
    (SLOT["right_shoulder"], SLOT["right_elbow"]),
    (SLOT["right_elbow"], SLOT["right_wrist"]),
    (SLOT["left_shoulder"], SLOT["left_hip"]),
    (SLOT["right_shoulder"], SLOT["right_hip"]),
    (SLOT["left_hip"], SLOT["right_hip"]),
    (SLOT["left_hip"], SLOT["left_knee"]),
    (SLOT["left_knee"], SLOT["left_ankle"]),
    (SLOT["right_hip"], SLOT["right_knee"]),
    (SLOT["right_knee"], SLOT["right_ankle"]),
)

COCO_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
# COCO index feeding each PoseTrack18 slot (-1: COCO has no such joint, i.e. head_bottom and head_top).
COCO_TO_POSETRACK: tuple[int, ...] = tuple(
    COCO_NAMES.index(n) if n in COCO_NAMES else -1 for n in POSETRACK_SLOTS
)

MPII_NAMES: tuple[str, ...] = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "pelvis",
    "thorax",
    "upper_neck",
    "head_top",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
)
# MPII's upper_neck plays PoseTrack's head_bottom; MPII has no nose and no ears (-1).
_MPII_ALIAS = {"head_bottom": "upper_neck"}
MPII_TO_POSETRACK: tuple[int, ...] = tuple(
    MPII_NAMES.index(_MPII_ALIAS.get(n, n)) if _MPII_ALIAS.get(n, n) in MPII_NAMES else -1
    for n in POSETRACK_SLOTS
)

# PoseTrack17 JSON (poseval) annopoint ids 0..14 follow POSEVAL_NAMES.
POSETRACK17_TO_SLOT: tuple[int, ...] = POSEVAL_ORDER

LAYOUTS: dict[str, tuple[int, ...]] = {"coco": COCO_TO_POSETRACK, "mpii": MPII_TO_POSETRACK}


def to_posetrack(keypoints: np.ndarray, layout: str) -> np.ndarray:
    """Convert (K, 3) keypoints in `layout` ("posetrack", "coco", "mpii") to the 17 PoseTrack18 slots.

    Slots with no source joint become (0, 0, 0), which the rest of stdpose reads as "not annotated".
    """
    kps = np.asarray(keypoints, dtype=np.float64)
    if layout == "posetrack":
        if kps.shape != (NUM_SLOTS, 3):
            raise ValueError(f"PoseTrack keypoints must have shape (17, 3), got {kps.shape}")
        return kps.copy()
    if layout not in LAYOUTS:
        raise ValueError(f"unknown keypoint layout {layout!r}; known: posetrack, {', '.join(LAYOUTS)}")
    source_of_slot = LAYOUTS[layout]
    expected = len(COCO_NAMES) if layout == "coco" else len(MPII_NAMES)
    if kps.shape != (expected, 3):
        raise ValueError(f"{layout} keypoints must have shape ({expected}, 3), got {kps.shape}")
    out = np.zeros((NUM_SLOTS, 3))
    for slot, src in enumerate(source_of_slot):
        if src >= 0:
            out[slot] = kps[src]
    return out
