import numpy as np
import pytest

from stdpose import skeleton as sk


def test_slot_order_and_poseval_order():
    assert sk.POSETRACK_SLOTS[1] == "head_bottom" and sk.NUM_SLOTS == 17
    assert len(sk.EVALUATED_SLOTS) == 15 and sk.SLOT["left_ear"] not in sk.EVALUATED_SLOTS
    # poseval joint 12 ("neck") is PoseTrack18 head_bottom; 13 nose; 14 head_top; 0 right ankle.
    assert sk.POSEVAL_ORDER[12] == sk.SLOT["head_bottom"]
    assert sk.POSEVAL_ORDER[13] == sk.SLOT["nose"]
    assert sk.POSEVAL_ORDER[14] == sk.SLOT["head_top"]
    assert sk.POSEVAL_ORDER[0] == sk.SLOT["right_ankle"]
    assert sorted(sk.POSEVAL_ORDER) == sorted(sk.EVALUATED_SLOTS)


def test_flip_permutation_is_involution_and_keeps_midline():
    p = sk.flip_permutation()
    assert np.array_equal(p[p], np.arange(17))
    for name in ("nose", "head_bottom", "head_top"):
        assert p[sk.SLOT[name]] == sk.SLOT[name]
    assert p[sk.SLOT["left_wrist"]] == sk.SLOT["right_wrist"]


def test_groups_cover_evaluated_joints_once():
    members = [j for g in sk.JOINT_GROUPS.values() for j in g]
    assert sorted(members) == sorted(sk.EVALUATED_SLOTS)


def test_coco_and_mpii_mapping():
    coco = np.arange(17 * 3, dtype=float).reshape(17, 3) + 1
    pt = sk.to_posetrack(coco, "coco")
    assert np.array_equal(pt[sk.SLOT["left_knee"]], coco[13])
    assert np.all(pt[sk.SLOT["head_top"]] == 0) and np.all(pt[sk.SLOT["head_bottom"]] == 0)
    mpii = np.arange(16 * 3, dtype=float).reshape(16, 3) + 1
    pt = sk.to_posetrack(mpii, "mpii")
    assert np.array_equal(pt[sk.SLOT["head_bottom"]], mpii[8])
    assert np.array_equal(pt[sk.SLOT["head_top"]], mpii[9])
    assert np.all(pt[sk.SLOT["nose"]] == 0)
    with pytest.raises(ValueError, match="unknown keypoint layout"):
        sk.to_posetrack(coco, "h36m")
    with pytest.raises(ValueError, match="shape"):
        sk.to_posetrack(coco[:5], "coco")
