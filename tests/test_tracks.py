"""Track segments: gaps, video ends, one-sided tracks, assigned track ids, boxes, detection matching."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from stdpose.data.records import Frame, Person, Video
from stdpose.errors import ConfigError, DataError
from stdpose.propagation.tracks import (
    DetectionMatchSummary,
    box_iou,
    boxes_from_detections,
    detections_for_video,
    interpolate_box,
    segment_crop_box,
    segment_plan,
    track_segments,
)


def make_person(x: float, y: float = 50.0, track_id: int | None = 1, bbox=None) -> Person:
    kps = np.zeros((17, 3))
    kps[:, 0] = x + np.arange(17)
    kps[:, 1] = y + 2 * np.arange(17)
    kps[:, 2] = 1
    kps[3:5] = 0  # ears unannotated, as in PoseTrack
    return Person(kps, track_id=track_id, bbox=bbox)


def make_video(n: int, labels: dict[int, list[Person]]) -> Video:
    frames = [Frame(i, f"{i:06d}.jpg", image_id=1000 + i) for i in range(n)]
    for i, persons in labels.items():
        frames[i].persons = persons
        frames[i].is_labeled = True
    return Video("vid", frames)


def by_key(segments):
    return {(s.track_id, s.left, s.right, s.kind): s for s in segments}


def test_interior_and_end_segments_cover_every_frame_once():
    video = make_video(20, {3: [make_person(10)], 10: [make_person(30)], 17: [make_person(50)]})
    segs = track_segments(video, [3, 10, 17], extend=10)
    keys = by_key(segs)
    assert list(keys[(1, 3, 3, "head")].frames) == [0, 1, 2]
    assert list(keys[(1, 3, 10, "both")].frames) == list(range(4, 10))
    assert list(keys[(1, 10, 17, "both")].frames) == list(range(11, 17))
    assert list(keys[(1, 17, 17, "tail")].frames) == [18, 19]
    covered = sorted(i for s in segs for i in s.frames)
    assert covered == sorted(set(range(20)) - {3, 10, 17})
    # the end segments use the single labeled person on both sides
    head = keys[(1, 3, 3, "head")]
    assert head.left_person is head.right_person is video.frames[3].persons[0]


def test_labels_at_both_video_ends_and_adjacent_labels_give_no_end_or_empty_segments():
    video = make_video(6, {0: [make_person(0)], 1: [make_person(1)], 5: [make_person(5)]})
    segs = track_segments(video, [0, 1, 5])
    assert [(s.left, s.right, list(s.frames)) for s in segs] == [(1, 5, [2, 3, 4])]


@pytest.mark.parametrize("rule, left_frames, right_frames", [
    ("half", [1, 2, 3], [4, 5, 6]),
    ("full", [1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]),
    ("none", None, None),
])
def test_one_sided_tracks_follow_the_documented_rule(rule, left_frames, right_frames):
    # track 1 leaves after frame 0, track 2 enters before frame 7; track 3 is present at both labels
    video = make_video(8, {0: [make_person(0, track_id=1), make_person(100, track_id=3)],
                           7: [make_person(200, track_id=2), make_person(110, track_id=3)]})
    plan = segment_plan(video, [0, 7], one_sided=rule)
    keys = {s.track_id: s for s in plan.segments}
    assert keys[3].kind == "both" and list(keys[3].frames) == list(range(1, 7))
    assert plan.summary.one_sided_left == 1 and plan.summary.one_sided_right == 1
    if left_frames is None:
        assert set(keys) == {3}
        assert plan.summary.one_sided_frames_skipped == 12
    else:
        assert keys[1].kind == "left_only" and keys[1].right_person is None
        assert keys[2].kind == "right_only" and keys[2].left_person is None
        assert list(keys[1].frames) == left_frames and list(keys[2].frames) == right_frames
        assert plan.summary.one_sided_frames_skipped == 12 - len(left_frames) - len(right_frames)
    assert any("present in one label only" in m for m in plan.summary.messages)


def test_one_sided_half_includes_the_midpoint_frame_for_even_gaps():
    video = make_video(7, {0: [make_person(0, track_id=1)], 6: [make_person(0, track_id=2)]})
    keys = {s.track_id: s for s in segment_plan(video, [0, 6]).segments}
    assert list(keys[1].frames) == [1, 2, 3] and list(keys[2].frames) == [3, 4, 5]


def test_one_sided_summary_is_logged(caplog):
    video = make_video(8, {0: [make_person(0, track_id=1)], 7: []})
    with caplog.at_level(logging.WARNING, logger="stdpose.propagation.tracks"):
        segs = track_segments(video, [0, 7])
    assert [s.kind for s in segs] == ["left_only"]
    assert "1 track(s) end" in caplog.text


def test_untracked_persons_get_ids_continued_by_box_overlap():
    a0 = make_person(10, track_id=None, bbox=(10, 50, 40, 80))
    b0 = make_person(300, track_id=None, bbox=(300, 50, 40, 80))
    a1 = make_person(14, track_id=None, bbox=(14, 52, 40, 80))  # overlaps a0
    c1 = make_person(600, track_id=None, bbox=(600, 50, 40, 80))  # overlaps nobody
    video = make_video(10, {0: [a0, b0, make_person(900, track_id=7)], 5: [c1, a1, make_person(905, track_id=7)]})
    plan = segment_plan(video, [0, 5])
    ids0, ids5 = plan.track_ids[0], plan.track_ids[5]
    assert ids0[2] == ids5[2] == 7
    assert ids5[1] == ids0[0]  # a continued
    assert len({ids0[0], ids0[1], ids5[0], 7}) == 4  # b and c got fresh, distinct ids
    assert min(ids0[0], ids0[1], ids5[0]) > 7  # fresh ids never collide with real ones
    assert plan.summary.assigned_track_ids == 4
    kinds = {s.track_id: s.kind for s in plan.segments if (s.left, s.right) == (0, 5)}
    assert kinds[ids0[0]] == "both" and kinds[ids0[1]] == "left_only" and kinds[ids5[0]] == "right_only"
    assert a0.track_id is None  # the input is not modified


def test_duplicate_track_id_in_one_frame_is_counted_not_merged():
    video = make_video(5, {0: [make_person(0, track_id=4), make_person(200, track_id=4)], 4: [make_person(2)]})
    plan = segment_plan(video, [0, 4])
    assert plan.summary.duplicate_track_ids == 1
    assert plan.track_ids[0][0] == 4 and plan.track_ids[0][1] != 4
    assert any("used twice" in m for m in plan.summary.messages)


def test_bad_labeled_indices_and_rules_raise_clear_errors():
    video = make_video(5, {0: [make_person(0)]})
    with pytest.raises(DataError, match="outside the video"):
        segment_plan(video, [0, 5])
    with pytest.raises(ConfigError, match="one_sided"):
        segment_plan(video, [0], one_sided="sometimes")
    empty = segment_plan(video, [])
    assert empty.segments == [] and "no labeled frames" in empty.summary.messages[0]


def test_interpolate_box_is_linear_between_labeled_boxes_and_constant_at_ends():
    video = make_video(12, {2: [make_person(0, bbox=(0, 0, 10, 20))], 8: [make_person(0, bbox=(60, 30, 40, 20))]})
    keys = by_key(track_segments(video, [2, 8], extend=100))
    mid = keys[(1, 2, 8, "both")]
    assert interpolate_box(mid, 5) == pytest.approx((30, 15, 25, 20))
    assert interpolate_box(mid, 3) == pytest.approx((10, 5, 15, 20))
    assert interpolate_box(keys[(1, 8, 8, "tail")], 11) == pytest.approx((60, 30, 40, 20))
    assert segment_crop_box(mid) == pytest.approx((0, 0, 100, 50))


def test_boxes_from_keypoints_when_a_label_has_no_bbox():
    left = make_person(0, y=0, bbox=(-5, -5, 100, 100))
    right = make_person(20, y=10, bbox=None)  # no bbox: both sides derive boxes from keypoints, consistently
    video = make_video(5, {0: [left], 4: [right]})
    seg = track_segments(video, [0, 4])[0]
    # keypoint boxes: (0, 0, 16, 32) and (20, 10, 16, 32)
    assert interpolate_box(seg, 2) == pytest.approx((10, 5, 16, 32))
    lone = Person(np.zeros((17, 3)), track_id=1)  # no bbox and no joints: no box at all
    video = make_video(5, {0: [lone], 4: [lone]})
    assert interpolate_box(track_segments(video, [0, 4])[0], 2) is None


def test_detections_are_matched_by_iou_and_fall_back_to_interpolation():
    video = make_video(6, {0: [make_person(0, track_id=1, bbox=(0, 0, 50, 100)),
                               make_person(0, track_id=2, bbox=(200, 0, 50, 100))],
                           5: [make_person(0, track_id=1, bbox=(50, 0, 50, 100)),
                               make_person(0, track_id=2, bbox=(200, 0, 50, 100))]})
    segs = track_segments(video, [0, 5])
    # frame 1: track 1's interpolated box is (10, 0, 50, 100); a shifted detection and a far-away one
    dets = {1: [((13, 2, 50, 100), 0.9), ((500, 0, 50, 50), 0.99)],
            2: [{"bbox": (198, 1, 52, 98), "score": 0.8}],
            3: [((21, 0, 50, 100), 0.05)]}  # below min_score
    summary = DetectionMatchSummary()
    boxes = boxes_from_detections(segs, dets, min_score=0.1, summary=summary)
    assert boxes[(1, 1)] == (13, 2, 50, 100)
    assert boxes[(2, 1)] == pytest.approx((200, 0, 50, 100))  # the far detection is not forced on track 2
    assert boxes[(2, 2)] == (198, 1, 52, 98)
    assert boxes[(1, 3)] == pytest.approx((30, 0, 50, 100))
    assert len(boxes) == 8 and summary.matched == 2 and summary.interpolated == 6
    assert box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(1 / 3)


def test_detections_are_rekeyed_from_image_id_to_frame_index():
    video = make_video(3, {0: [make_person(0)]})
    per_frame = detections_for_video(video, {1001: ["d1"], 4242: ["other video"]})
    assert per_frame == {0: [], 1: ["d1"], 2: []}
