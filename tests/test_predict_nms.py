"""OKS and OKS-NMS on hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stdpose.engine.nms import POSETRACK_SIGMAS, oks, oks_nms
from stdpose.skeleton import NUM_SLOTS, SLOT


def _pose(offset: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """A 17-slot pose on a 10 px grid, ears unannotated."""
    kps = np.zeros((NUM_SLOTS, 3))
    for slot in range(NUM_SLOTS):
        kps[slot] = (100 + offset + scale * 10 * (slot % 4), 100 + scale * 10 * slot, 1.0)
    kps[SLOT["left_ear"]] = kps[SLOT["right_ear"]] = 0.0
    return kps


def test_identical_poses_have_oks_one():
    p = _pose()
    assert oks(p, p[None], area=100 * 200)[0] == pytest.approx(1.0)


def test_oks_matches_formula_for_a_shift():
    p = _pose()
    q = _pose(offset=5.0)  # every joint moved 5 px right
    area = 50.0 * 100.0
    used = p[:, 2] > 0
    expected = np.mean(np.exp(-25.0 / (2 * area * (2 * POSETRACK_SIGMAS[used]) ** 2)))
    assert oks(p, q[None], area)[0] == pytest.approx(expected)
    # larger objects tolerate the same pixel shift better
    assert oks(p, q[None], area * 4)[0] > oks(p, q[None], area)[0]


def test_unannotated_joints_do_not_count():
    p = _pose()
    q = p.copy()
    q[SLOT["left_ear"], :2] = (5000, 5000)  # an ear that p does not have: must not lower the OKS
    assert oks(p, q[None], 1000.0)[0] == pytest.approx(1.0)
    empty = np.zeros((NUM_SLOTS, 3))
    assert oks(empty, p[None], 1000.0)[0] == 0.0


def test_min_joint_score_drops_low_confidence_joints():
    p = _pose()
    p[:, 2] = 0.9
    p[SLOT["nose"], 2] = 0.1
    q = p.copy()
    q[SLOT["nose"], :2] += 300  # far off, but only on a joint the reference is unsure about
    assert oks(p, q[None], 2000.0)[0] < 0.95
    assert oks(p, q[None], 2000.0, min_joint_score=0.2)[0] == pytest.approx(1.0)


def test_nms_drops_duplicate_keeps_distinct():
    a = _pose()
    a_dup = _pose(offset=1.0)  # the same person, found twice
    b = _pose(offset=400.0)  # another person
    keep = oks_nms([a_dup, b, a], scores=[0.8, 0.7, 0.9], areas=[4000.0] * 3, threshold=0.9)
    assert keep == [2, 1]


def test_nms_threshold_controls_suppression():
    a = _pose()
    near = _pose(offset=8.0)
    o = oks(a, near[None], 4000.0)[0]
    assert 0.0 < o < 1.0
    assert oks_nms([a, near], [0.9, 0.8], [4000.0, 4000.0], threshold=o - 1e-6) == [0]
    assert oks_nms([a, near], [0.9, 0.8], [4000.0, 4000.0], threshold=o + 1e-6) == [0, 1]


def test_nms_chain_uses_kept_poses_only():
    # b overlaps a and c, a and c do not overlap: a kept, b suppressed, c kept (suppressed b cannot suppress c)
    a, b, c = _pose(0.0), _pose(6.0), _pose(12.0)
    area = 3000.0
    assert oks(a, b[None], area)[0] > 0.5 and oks(b, c[None], area)[0] > 0.5 and oks(a, c[None], area)[0] < 0.5
    assert oks_nms([a, b, c], [0.9, 0.8, 0.7], [area] * 3, threshold=0.5) == [0, 2]


def test_nms_edge_cases():
    assert oks_nms([], [], []) == []
    assert oks_nms([_pose()], [0.5], [100.0]) == [0]
    with pytest.raises(ValueError, match="one score"):
        oks_nms([_pose(), _pose()], [0.5], [1.0, 1.0])
    assert not math.isnan(oks(_pose(), _pose()[None], 0.0)[0])
