"""Propagation baselines: nearest label, linear interpolation, Farneback flow, and the shared output assembly."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_data

from stdpose.data.records import Frame, Person, Video
from stdpose.errors import ConfigError, DataError
from stdpose.propagation.flow import FlowCache, sample_bilinear
from stdpose.propagation.methods import BASELINES, get_propagator


def make_person(xy0: tuple[float, float], track_id: int | None = 1, bbox=None, missing=(3, 4)) -> Person:
    """A pose whose joints sit on a small grid around xy0; `missing` slots are unannotated."""
    kps = np.zeros((17, 3))
    kps[:, 0] = xy0[0] + 4 * (np.arange(17) % 4)
    kps[:, 1] = xy0[1] + 4 * (np.arange(17) // 4)
    kps[:, 2] = 1
    kps[list(missing)] = 0
    return Person(kps, track_id=track_id, bbox=bbox)


def make_video(n: int, labels: dict[int, list[Person]]) -> Video:
    frames = [Frame(i, f"{i:06d}.jpg") for i in range(n)]
    for i, persons in labels.items():
        frames[i].persons = persons
        frames[i].is_labeled = True
    return Video("vid", frames)


def person_of(frame: Frame, track_id: int) -> Person:
    found = [p for p in frame.persons if p.track_id == track_id]
    assert len(found) == 1, f"frame {frame.index}: {len(found)} persons with track {track_id}"
    return found[0]


@pytest.fixture
def two_label_video() -> Video:
    # track 1 at both labels (frames 2 and 9); slot 7 only on the left label, slot 8 only on the right
    left = make_person((10, 20), missing=(3, 4, 8))
    right = make_person((80, 48), missing=(3, 4, 7))
    return make_video(13, {2: [left], 9: [right]})


def test_registry_names_and_errors():
    assert set(BASELINES) == {"nearest", "linear", "flow"}
    for name in BASELINES:
        prop = get_propagator(name)
        assert prop.name == name and callable(prop.propagate)
    with pytest.raises(ConfigError, match="unknown propagation method"):
        get_propagator("magic")
    with pytest.raises(ConfigError, match="bad option"):
        get_propagator("linear", colour="red")
    with pytest.raises(ConfigError, match="Farneback"):
        get_propagator("flow", farneback={"window": 3})


def test_nearest_copies_the_nearest_labeled_side_per_joint(two_label_video):
    out = get_propagator("nearest", extend=100).propagate(two_label_video, None, [2, 9])
    left, right = two_label_video.frames[2].persons[0], two_label_video.frames[9].persons[0]
    for i, near in [(3, left), (5, left), (6, right), (8, right), (0, left), (12, right)]:
        p = person_of(out.frames[i], 1)
        common = [j for j in range(17) if j not in (3, 4, 7, 8)]
        np.testing.assert_array_equal(p.keypoints[common, :2], near.keypoints[common, :2])
    # slot 7 exists only on the left, slot 8 only on the right: copied from there even when that side is far
    np.testing.assert_array_equal(person_of(out.frames[8], 1).keypoints[7, :2], left.keypoints[7, :2])
    np.testing.assert_array_equal(person_of(out.frames[3], 1).keypoints[8, :2], right.keypoints[8, :2])


def test_nearest_tie_goes_to_the_left_label():
    video = make_video(5, {0: [make_person((0, 0))], 4: [make_person((40, 0))]})
    out = get_propagator("nearest").propagate(video, None, [0, 4])
    assert person_of(out.frames[2], 1).keypoints[0, 0] == 0.0


def test_linear_gives_the_exact_midpoint_and_linear_steps():
    video = make_video(9, {0: [make_person((10, 20))], 8: [make_person((90, 60))]})
    out = get_propagator("linear").propagate(video, None, [0, 8])
    a, b = video.frames[0].persons[0].keypoints[:, :2], video.frames[8].persons[0].keypoints[:, :2]
    ann = video.frames[0].persons[0].annotated
    for i in range(1, 8):
        got = person_of(out.frames[i], 1).keypoints[ann, :2]
        np.testing.assert_allclose(got, (a + (b - a) * i / 8)[ann], atol=1e-9)
    np.testing.assert_allclose(person_of(out.frames[4], 1).keypoints[ann, :2], ((a + b) / 2)[ann], atol=1e-9)


def test_linear_copies_joints_known_on_one_side(two_label_video):
    out = get_propagator("linear").propagate(two_label_video, None, [2, 9])
    left, right = two_label_video.frames[2].persons[0], two_label_video.frames[9].persons[0]
    p = person_of(out.frames[5], 1)
    np.testing.assert_array_equal(p.keypoints[7, :2], left.keypoints[7, :2])
    np.testing.assert_array_equal(p.keypoints[8, :2], right.keypoints[8, :2])


@pytest.mark.parametrize("method", ["nearest", "linear"])
def test_output_video_contract(two_label_video, method):
    video = two_label_video
    video.frames[9].persons.append(make_person((200, 10), track_id=5))  # enters between the labels
    video.frames[4].persons = [make_person((0, 0), track_id=99)]  # stale pose on an unlabeled frame: replaced
    out = get_propagator(method, extend=100).propagate(video, None, [2, 9])
    assert out is not video and out.num_frames == video.num_frames
    assert [f.file_name for f in out.frames] == [f.file_name for f in video.frames]
    # labeled frames: copies of the human labels
    for i in (2, 9):
        assert out.frames[i].is_labeled
        for orig, copy in zip(video.frames[i].persons, out.frames[i].persons):
            assert copy is not orig and not copy.propagated
            np.testing.assert_array_equal(copy.keypoints, orig.keypoints)
    # unlabeled frames: one person per covering segment
    expected_tracks = {i: {1} for i in range(13) if i not in (2, 9)}
    for i in (6, 7, 8):  # track 5: right-only, half gap (midpoint 5.5 -> frames 6..8), and the video tail
        expected_tracks[i].add(5)
    for i in (10, 11, 12):
        expected_tracks[i].add(5)
    for i, tracks in expected_tracks.items():
        frame = out.frames[i]
        assert not frame.is_labeled
        assert {p.track_id for p in frame.persons} == tracks, i
        for p in frame.persons:
            assert p.propagated and p.scores.shape == (17,)
            assert np.all((p.scores >= 0) & (p.scores <= 1))
            assert np.all(p.keypoints[p.scores > 0, 2] == 1) and np.all(p.keypoints[p.scores == 0] == 0)
            assert p.keypoints[3, 2] == 0 and p.keypoints[4, 2] == 0  # ears: in neither label
            assert p.bbox is not None and p.extra["method"] == method
            p.validate(f"frame {i}")
    assert out.extra["propagation"]["one_sided_right"] == 1
    assert video.frames[4].persons[0].track_id == 99  # input untouched


@pytest.mark.parametrize("method", ["nearest", "linear"])
def test_scores_decay_with_distance_to_the_label(method):
    video = make_video(16, {0: [make_person((0, 0))], 14: [make_person((30, 0))]})
    out = get_propagator(method, half_life=4.0, extend=100).propagate(video, None, [0, 14])
    s = [person_of(out.frames[i], 1).scores[0] for i in range(1, 8)]
    assert all(a > b for a, b in zip(s, s[1:]))
    assert s[0] == pytest.approx(2 ** (-1 / 4))
    tail = [person_of(out.frames[15], 1).scores[0]]
    assert tail[0] == pytest.approx(s[0])


def test_untracked_labels_get_track_ids_in_the_output():
    video = make_video(6, {0: [make_person((0, 0), track_id=None, bbox=(0, 0, 20, 20))],
                           5: [make_person((2, 0), track_id=None, bbox=(2, 0, 20, 20))]})
    out = get_propagator("linear").propagate(video, None, [0, 5])
    tid = out.frames[0].persons[0].track_id
    assert tid is not None and out.frames[5].persons[0].track_id == tid
    assert all(p.track_id == tid for i in range(1, 5) for p in out.frames[i].persons)
    assert video.frames[0].persons[0].track_id is None


def test_detection_boxes_are_used_for_unlabeled_frames():
    video = make_video(4, {0: [make_person((0, 0), bbox=(0, 0, 40, 40))],
                           3: [make_person((30, 0), bbox=(30, 0, 40, 40))]})
    dets = {1: [((11, 1, 40, 40), 0.9)], 2: []}
    out = get_propagator("linear", detections=dets).propagate(video, None, [0, 3])
    assert out.frames[1].persons[0].bbox == (11, 1, 40, 40)
    assert out.frames[2].persons[0].bbox == pytest.approx((20, 0, 40, 40))


# --- Farneback flow ---------------------------------------------------------------------------------------------

VELOCITY = np.array([3.0, 2.0])  # px per frame
SQUARE_AT = np.array([40.0, 30.0])


def moving_square_frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """A smooth random texture (120 px square) translating by VELOCITY over a faint static texture."""
    import cv2

    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.integers(0, 256, (120, 120), dtype=np.uint8), (0, 0), 2)
    tex = cv2.normalize(tex, None, 0, 255, cv2.NORM_MINMAX)
    bg = cv2.GaussianBlur(rng.integers(0, 256, (200, 280), dtype=np.uint8), (0, 0), 3) // 4
    out = []
    for t in range(n):
        img = bg.copy()
        x0, y0 = (SQUARE_AT + VELOCITY * t).astype(int)
        img[y0:y0 + 120, x0:x0 + 120] = tex
        out.append(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    return out


def test_sample_bilinear_interpolates_and_clamps():
    field = np.arange(12, dtype=np.float64).reshape(3, 4, 1)  # value = 4 y + x
    got = sample_bilinear(field, np.array([[1.5, 0.5], [0.0, 0.0], [10.0, -3.0]]))[:, 0]
    np.testing.assert_allclose(got, [3.5, 0.0, 3.0])


@pytest.mark.parametrize("max_side,tolerance", [(None, 0.002), (140, 0.1)])  # docs/baselines.md; measured 0.0019, 0.05
def test_flow_tracks_a_translating_texture_to_the_documented_accuracy(max_side, tolerance):
    frames = moving_square_frames(8)
    cache = FlowCache(frames, max_side=max_side)
    pts = SQUARE_AT + np.array([[30.0, 30.0], [60.0, 45.0], [85.0, 80.0], [25.0, 90.0]])
    fwd = cache.track(pts, 0, 7)
    bwd = cache.track(pts + 7 * VELOCITY, 7, 0)
    for t in range(8):
        np.testing.assert_allclose(fwd[t], pts + t * VELOCITY, rtol=0, atol=tolerance)
        np.testing.assert_allclose(bwd[t], pts + t * VELOCITY, rtol=0, atol=tolerance)
    assert cache.computed == 14  # 7 pairs x 2 directions
    assert cache.scale == (1.0 if max_side is None else 0.5)


def test_flow_propagator_follows_the_motion_and_reuses_flow_between_tracks(monkeypatch):
    import cv2

    frames = moving_square_frames(10)
    truth = {t: SQUARE_AT + VELOCITY * t for t in range(10)}
    # two tracks on the same square (different joints), labeled at 1 and 8; frame 0 and 9 are video ends
    labels = {t: [make_person(tuple(truth[t] + 30), track_id=1), make_person(tuple(truth[t] + 60), track_id=2)]
              for t in (1, 8)}
    video = make_video(10, labels)
    calls = []
    farneback = cv2.calcOpticalFlowFarneback

    def counting(prev, nxt, *args):
        calls.append(1)
        return farneback(prev, nxt, *args)

    monkeypatch.setattr(cv2, "calcOpticalFlowFarneback", counting)
    out = get_propagator("flow", max_side=None, extend=100).propagate(video, frames, [1, 8])
    for t in (0, 2, 4, 5, 7, 9):
        for tid, offset in ((1, 30), (2, 60)):
            p = person_of(out.frames[t], tid)
            ann = p.keypoints[:, 2] > 0
            expected = make_person(tuple(truth[t] + offset)).keypoints[:, :2]
            np.testing.assert_allclose(p.keypoints[ann, :2], expected[ann], atol=0.002, err_msg=f"frame {t}")  # 0.0003
            assert np.all(p.scores[ann] > 0.5)
    # each (pair, direction) flow computed once although two tracks use it: 1 (head) + 6 + 6 (gap) + 1 (tail)
    assert len(calls) == 14
    assert out.extra["propagation"]["method"] == "flow"


def test_flow_blends_forward_and_backward_tracks_by_temporal_distance():
    # a static scene: forward tracks stay at the left label, backward tracks at the right label, so the blend by
    # temporal distance must equal linear interpolation between the two labels
    frames = moving_square_frames(1) * 8
    video = make_video(8, {0: [make_person((60, 50))], 7: [make_person((74, 57))]})
    flow = get_propagator("flow", max_side=None).propagate(video, frames, [0, 7])
    linear = get_propagator("linear").propagate(video, None, [0, 7])
    for t in range(1, 7):
        a, b = person_of(flow.frames[t], 1), person_of(linear.frames[t], 1)
        np.testing.assert_allclose(a.keypoints, b.keypoints, atol=0.05)
    # forward and backward tracks disagree by 14-16 px here: lower confidence than where they agree
    assert person_of(flow.frames[3], 1).scores[0] < person_of(linear.frames[3], 1).scores[0]


def test_flow_beats_linear_interpolation_on_non_linear_motion():
    import cv2

    rng = np.random.default_rng(3)
    tex = cv2.normalize(cv2.GaussianBlur(rng.integers(0, 256, (120, 120), dtype=np.uint8), (0, 0), 3),
                        None, 0, 255, cv2.NORM_MINMAX)
    bg = cv2.GaussianBlur(rng.integers(0, 256, (280, 360), dtype=np.uint8), (0, 0), 3) // 4

    def corner(t):  # swings right and back within the gap: linear interpolation sees no horizontal motion
        return np.round([100 + 25 * np.sin(2 * np.pi * t / 14), 60 + 3 * t]).astype(int)

    frames = []
    for t in range(8):
        img = bg.copy()
        x0, y0 = corner(t)
        img[y0:y0 + 120, x0:x0 + 120] = tex
        frames.append(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    video = make_video(8, {t: [make_person(tuple(corner(t) + 30))] for t in (0, 7)})
    errors = {}
    for method in ("linear", "flow"):
        out = get_propagator(method).propagate(video, frames, [0, 7])
        errors[method] = max(
            np.abs(person_of(out.frames[t], 1).keypoints[:, :2] - make_person(tuple(corner(t) + 30)).keypoints[:, :2]
                   ).max() for t in range(1, 7))
    assert errors["linear"] > 20 and errors["flow"] < 0.02  # docs/baselines.md: up to 24 px and 0.02 px


def test_flow_needs_frames_that_cover_the_video():
    video = make_video(5, {0: [make_person((0, 0))], 4: [make_person((8, 0))]})
    with pytest.raises(DataError, match="needs the video frames"):
        get_propagator("flow").propagate(video, None, [0, 4])
    with pytest.raises(DataError, match="only 3"):
        get_propagator("flow").propagate(video, moving_square_frames(3), [0, 4])
    frames = moving_square_frames(5)
    frames[2] = frames[2][:100]
    with pytest.raises(DataError, match="frame 2 is 280x100"):
        get_propagator("flow").propagate(video, frames, [0, 4])


@pytest.mark.realdata
def test_flow_on_a_real_frame_pair_is_finite_and_small():
    import cv2

    folder = shared_data("opencv_samples")
    frames = [cv2.imread(str(folder / name)) for name in ("basketball1.png", "basketball2.png")]
    cache = FlowCache(frames, max_side=320)
    field = cache.flow(0, 1)
    assert field.shape[:2] == (240, 320) and np.all(np.isfinite(field))
    mag = np.linalg.norm(field, axis=2) / cache.scale  # full-resolution pixels
    assert np.median(mag) < 2.0  # mostly static scene
    assert 2.0 < np.percentile(mag, 99.5) < 60.0  # the players and the ball do move
    h, w = frames[0].shape[:2]
    grid = np.stack(np.meshgrid(np.linspace(20, w - 20, 6), np.linspace(20, h - 20, 5)), -1).reshape(-1, 2)
    moved = cache.track(grid, 0, 1)[1]
    assert np.all(np.isfinite(moved)) and np.all(np.linalg.norm(moved - grid, axis=1) < 60)
