"""Triplet selection for propagation and estimation, label subsampling and the PoseWarper protocol, exactly."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from stdpose.data.sampling import (
    Triplet,
    estimation_triplets,
    group_by_auxiliaries,
    longest_labeled_run,
    nearest_labeled,
    posewarper_labeled_frames,
    posewarper_split,
    propagation_triplets,
    sparse_labeled_indices,
    training_propagation_triplets,
)


def test_propagation_triplets_between_and_at_the_ends():
    # 20 frames, labels at 3, 10, 17 (every 7)
    triplets = propagation_triplets(20, [10, 3, 17])
    assert [t.key for t in triplets] == [i for i in range(20) if i not in (3, 10, 17)]
    by_key = {t.key: t for t in triplets}
    assert by_key[0] == Triplet(3, 0, 3) and by_key[2] == Triplet(3, 2, 3)  # before the first label
    assert all(by_key[k] == Triplet(3, k, 10) for k in range(4, 10))
    assert all(by_key[k] == Triplet(10, k, 17) for k in range(11, 17))
    assert by_key[19] == Triplet(17, 19, 17)  # after the last label
    assert all(t.left <= t.key <= t.right or t.left == t.right for t in triplets)
    assert group_by_auxiliaries(triplets)[(3, 10)] == [4, 5, 6, 7, 8, 9]


def test_propagation_triplets_edge_cases():
    assert propagation_triplets(3, [0, 1, 2]) == []
    assert propagation_triplets(3, [1]) == [Triplet(1, 0, 1), Triplet(1, 2, 1)]
    with pytest.raises(ValueError, match="at least one labeled"):
        propagation_triplets(5, [])
    with pytest.raises(ValueError, match="must lie in"):
        propagation_triplets(5, [5])
    assert nearest_labeled(4, [4]) == (4, 4)
    assert nearest_labeled(5, [1, 5, 9]) == (1, 9)


def test_estimation_triplets_clamped():
    assert estimation_triplets(4) == [Triplet(0, 0, 1), Triplet(0, 1, 2), Triplet(1, 2, 3), Triplet(2, 3, 3)]
    assert estimation_triplets(1) == [Triplet(0, 0, 0)]
    assert estimation_triplets(0) == []


def test_sparse_labeled_indices():
    dense = list(range(10, 40))  # 30 consecutive labels, as in PoseTrack training videos
    assert sparse_labeled_indices(dense, 7) == [10, 17, 24, 31, 38]
    assert sparse_labeled_indices(dense, 7, start=3) == [13, 20, 27, 34]
    assert sparse_labeled_indices(dense, 1) == dense
    assert sparse_labeled_indices(dense, 2)[:3] == [10, 12, 14]
    # labels already every 4th frame: keep the next label at least 7 frames on
    assert sparse_labeled_indices(list(range(0, 41, 4)), 7) == [0, 8, 16, 24, 32, 40]
    assert sparse_labeled_indices([], 7) == []
    with pytest.raises(ValueError):
        sparse_labeled_indices(dense, 0)


def test_posewarper_protocol_frame_selection():
    run = list(range(50, 80))  # the 30 labeled frames in the middle of a PoseTrack17 val video
    # positions 3, 10, 17, 24 -> frames 53, 60, 67, 74; last frame 79 is 5 > 3 away -> also given
    assert posewarper_labeled_frames(run) == [53, 60, 67, 74, 79]
    given, evaluated = posewarper_split(run)
    assert given == [53, 60, 67, 74, 79] and len(evaluated) == 25 and set(given).isdisjoint(evaluated)
    # 28 frames: positions 3..24, last position 27 is exactly 3 away -> not given
    assert posewarper_labeled_frames(list(range(28))) == [3, 10, 17, 24]
    # 29 frames: last position 28 is 4 away -> given
    assert posewarper_labeled_frames(list(range(29))) == [3, 10, 17, 24, 28]
    # only the longest run counts (sparse every-4th labels elsewhere are ignored)
    labeled = [0, 4, 8, 12] + list(range(20, 40)) + [44, 48]
    assert longest_labeled_run(labeled) == list(range(20, 40))
    assert posewarper_labeled_frames(labeled) == [23, 30, 37]  # 39 is 2 away from 37
    assert posewarper_labeled_frames([5, 6]) == [6]
    assert posewarper_labeled_frames([]) == []


@pytest.mark.parametrize("interval", [2, 4, 7, 15])
def test_training_triplets_match_inference_distances(interval):
    labeled = list(range(30))
    inference_pairs = set()
    sparse = sparse_labeled_indices(labeled, interval)
    for t in propagation_triplets(30, sparse):
        if t.left != t.right:
            inference_pairs.add((t.key - t.left, t.right - t.key))
    triplets = training_propagation_triplets(labeled, interval, rng=0)
    assert [t.key for t in triplets] == labeled  # every labeled frame is a key once
    seen = Counter("two-sided" if t.left != t.right else "one-sided" for t in triplets)
    for t in triplets:
        assert t.left in labeled and t.right in labeled and t.key not in (t.left, t.right)
        if t.left != t.right:
            assert t.left < t.key < t.right and t.right - t.left == interval
            assert (t.key - t.left, t.right - t.key) in inference_pairs
        else:  # video-end rule: one label within T-1 frames serves both sides
            assert 1 <= abs(t.left - t.key) <= interval - 1
    # the interior keys see every offset 1..T-1 over many draws
    if interval <= 7:
        offsets = {t.key - t.left for seed in range(20)
                   for t in training_propagation_triplets(labeled, interval, rng=seed) if t.left != t.right}
        assert offsets == set(range(1, interval))
    assert seen["two-sided"] > 0


def test_training_triplets_are_reproducible_and_skip_isolated_labels():
    labeled = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 40]
    a = training_propagation_triplets(labeled, 4, rng=np.random.default_rng(5))
    b = training_propagation_triplets(labeled, 4, rng=np.random.default_rng(5))
    assert a == b
    assert 40 not in [t.key for t in a]  # no other label within 3 frames
    with pytest.raises(ValueError):
        training_propagation_triplets(labeled, 1)
