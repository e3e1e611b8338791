"""The `auto` propagator: reliability-weighted flow + interpolation (stdpose.propagation.auto)."""

from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest
from conftest import REPO, run_propagate, shared_data

from stdpose.data.records import Frame, Person, Video
from stdpose.errors import ConfigError
from stdpose.propagation.methods import METHODS, get_propagator
from stdpose.propagation.point_tracking import merge_rects

N, LEFT, RIGHT = 13, 0, 12
H, W = 220, 260
# joints spread over a 60 x 120 person box whose top-left corner is the track position
OFFSETS = np.array([[30, 8], [30, 18], [30, 0], [0, 0], [0, 0], [15, 25], [45, 25], [10, 45], [50, 45], [8, 62],
                    [52, 62], [20, 65], [40, 65], [20, 90], [40, 90], [20, 115], [40, 115]], dtype=np.float64)


def true_position(i: int) -> np.ndarray:
    """Non-linear motion: the person goes right and comes half way back; linear interpolation is far off."""
    t = i / RIGHT
    return np.array([40 + 50 * np.sin(np.pi * t) + 30 * t, 50 + 20 * t])


def person_at(i: int) -> Person:
    kps = np.zeros((17, 3))
    kps[:, :2] = true_position(i) + OFFSETS
    kps[:, 2] = 1
    kps[[3, 4]] = 0
    x, y = true_position(i)
    return Person(kps, track_id=1, bbox=(float(x), float(y), 60.0, 120.0))


def texture(seed: int, contrast: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (H + 200, W + 400)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 3.0)
    return 128 + contrast * (smooth - smooth.mean()) / smooth.std()


def textured_frames() -> list[np.ndarray]:
    """A textured person (its own texture) translating over a faintly textured background."""
    background, body = texture(1, 10.0), texture(2, 45.0)[:120, :60]
    frames = []
    for i in range(N):
        img = background[:H, :W].copy()
        x, y = np.round(true_position(i)).astype(int)
        img[y:y + 120, x:x + 60] = body
        frames.append(cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR))
    return frames


def noise_frames() -> list[np.ndarray]:
    """Independent noise on every frame: whatever flow finds is garbage."""
    rng = np.random.default_rng(5)
    return [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(N)]


def sparse_video(exact: bool = True) -> Video:
    frames = [Frame(i, f"{i:06d}.jpg") for i in range(N)]
    for i in (LEFT, RIGHT):
        frames[i].persons = [person_at(i)]
        frames[i].is_labeled = True
    return Video("synthetic", frames)


def predicted(out: Video, i: int) -> Person:
    (p,) = out.frames[i].persons
    return p


def errors(out: Video) -> np.ndarray:
    """(frames, joints) pixel error against the true motion on the unlabeled frames."""
    rows = []
    for i in range(LEFT + 1, RIGHT):
        p = predicted(out, i)
        truth = person_at(i)
        ok = truth.annotated
        rows.append(np.linalg.norm(p.keypoints[ok, :2] - truth.keypoints[ok, :2], axis=1))
    return np.array(rows)


def test_registry_knows_auto_and_checks_its_options():
    assert "auto" in METHODS
    prop = get_propagator("auto")
    assert prop.name == "auto" and prop.needs_frames
    with pytest.raises(ConfigError, match="unknown flow"):
        get_propagator("auto", flow="magic")
    with pytest.raises(ConfigError, match="must be > 0"):
        get_propagator("auto", fb_sigma=0)


def test_merge_rects_unions_overlapping_regions_only():
    merged, owner = merge_rects([(0, 0, 10, 10), (5, 5, 20, 20), (50, 50, 60, 60)])
    assert sorted(merged) == [(0, 0, 20, 20), (50, 50, 60, 60)]
    assert owner[0] == owner[1] != owner[2]


@pytest.mark.parametrize("flow", ["lk", "dis"])  # ROI Farneback loses this fast fine texture
def test_auto_follows_true_motion_of_a_translating_texture(flow):
    video, frames = sparse_video(), textured_frames()
    auto = get_propagator("auto", flow=flow).propagate(video, frames, [LEFT, RIGHT])
    linear = get_propagator("linear").propagate(video, None, [LEFT, RIGHT])
    err_auto, err_lin = errors(auto), errors(linear)
    assert err_lin.mean() > 20  # the motion is far from linear
    # the interpolation prior keeps a small share next to the labels; the flow carries the rest
    assert err_auto.mean() < 0.15 * err_lin.mean(), (err_auto.mean(axis=1), err_lin.mean())


def test_auto_degrades_to_linear_when_flow_is_garbage():
    video, frames = sparse_video(), noise_frames()
    auto = get_propagator("auto").propagate(video, frames, [LEFT, RIGHT])
    linear = get_propagator("linear").propagate(video, None, [LEFT, RIGHT])
    flow = get_propagator("flow").propagate(video, frames, [LEFT, RIGHT])
    gap_auto, gap_flow = [], []
    for i in range(LEFT + 1, RIGHT):
        lin = predicted(linear, i).keypoints[:, :2]
        gap_auto.append(np.abs(predicted(auto, i).keypoints[:, :2] - lin).max())
        gap_flow.append(np.abs(predicted(flow, i).keypoints[:, :2] - lin).max())
    assert max(gap_auto) < 1.0, gap_auto
    assert max(gap_flow) > 3.0  # the flow really is garbage: the flow baseline leaves linear


def test_auto_scores_are_lower_where_tracking_is_unreliable():
    video = sparse_video()
    good = get_propagator("auto").propagate(video, textured_frames(), [LEFT, RIGHT])
    bad = get_propagator("auto").propagate(video, noise_frames(), [LEFT, RIGHT])
    for i in range(LEFT + 2, RIGHT - 1):
        s_good, s_bad = predicted(good, i).scores, predicted(bad, i).scores
        ok = predicted(good, i).annotated
        assert np.all(s_good[ok] > s_bad[ok] + 0.05), (i, s_good[ok], s_bad[ok])
        assert np.all((s_bad[ok] > 0) & (s_good[ok] <= 1))


def test_auto_tracks_past_the_last_label_and_outside_stays_in_the_image():
    frames = textured_frames()
    video = sparse_video()
    video.frames[RIGHT].persons, video.frames[RIGHT].is_labeled = [], False
    video.frames[6].persons, video.frames[6].is_labeled = [person_at(6)], True
    out = get_propagator("auto", extend=RIGHT - 6).propagate(video, frames, [LEFT, 6])  # past the label
    tail = [np.linalg.norm(predicted(out, i).keypoints[:, :2] - person_at(i).keypoints[:, :2], axis=1)[
        person_at(i).annotated].mean() for i in range(7, RIGHT + 1)]
    copy_err = [np.linalg.norm(person_at(6).keypoints[:, :2] - person_at(i).keypoints[:, :2], axis=1)[
        person_at(i).annotated].mean() for i in range(7, RIGHT + 1)]
    assert np.mean(tail) < 0.25 * np.mean(copy_err), (tail, copy_err)


def walker_at(i: int) -> Person:
    """A person walking right at 4 px per frame (constant velocity)."""
    kps = np.zeros((17, 3))
    kps[:, :2] = np.array([20.0 + 4 * i, 40.0]) + OFFSETS
    kps[:, 2] = 1
    return Person(kps, track_id=1, bbox=(20.0 + 4 * i, 40.0, 60.0, 120.0))


@pytest.mark.parametrize("side", ["tail", "head"])
def test_auto_extrapolates_a_video_end_with_the_persons_velocity_when_flow_has_no_evidence(side):
    labels = (2, 6) if side == "tail" else (6, 10)
    ends = range(7, 12) if side == "tail" else range(1, 6)
    frames = [Frame(i, f"{i:06d}.jpg") for i in range(N)]
    for i in labels:
        frames[i].persons, frames[i].is_labeled = [walker_at(i)], True
    video = Video("walk", frames)
    moving = get_propagator("auto", extend=5).propagate(video, noise_frames(), list(labels))
    still = get_propagator("auto", extend=5, end_motion=False).propagate(video, noise_frames(), list(labels))
    for i in ends:
        truth = walker_at(i).keypoints[:, :2]
        err_moving = np.linalg.norm(predicted(moving, i).keypoints[:, :2] - truth, axis=1).mean()
        err_still = np.linalg.norm(predicted(still, i).keypoints[:, :2] - truth, axis=1).mean()
        steps = abs(i - labels[1 if side == "tail" else 0])
        assert err_moving < 1.0 + 0.2 * steps, (i, err_moving)  # the copied label is 4 px off per frame
        assert err_still > 2.0 * steps, (i, err_still)


def test_end_velocity_is_none_for_a_single_label_and_signed_away_from_the_label():
    from stdpose.propagation.tracks import end_velocity, segment_plan

    frames = [Frame(i, f"{i:06d}.jpg") for i in range(N)]
    frames[4].persons, frames[4].is_labeled = [walker_at(4)], True
    plan = segment_plan(Video("one", frames), [4], extend=3)
    assert [end_velocity(s) for s in plan.segments] == [None, None]
    frames[8].persons, frames[8].is_labeled = [walker_at(8)], True
    plan = segment_plan(Video("two", frames), [4, 8], extend=3)
    by_kind = {s.kind: end_velocity(s) for s in plan.segments if s.left == s.right}
    np.testing.assert_allclose(by_kind["tail"], [4.0, 0.0])  # after frame 8: onwards, to the right
    np.testing.assert_allclose(by_kind["head"], [-4.0, 0.0])  # before frame 4: back in time, to the left


# ------------------------------------------------------------------------------------------------ real footage


def _bench():
    spec = importlib.util.spec_from_file_location("real_propagation", REPO / "benchmarks" / "real_propagation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.realdata
@pytest.mark.parametrize("interval", [15, 20])
def test_auto_beats_linear_and_flow_on_the_real_hand_labels(interval):
    from stdpose.propagation.protocol import sparsify

    bench = _bench()
    video, frames = bench.load_fixture(video_path=shared_data("opencv_samples", "vtest.avi"))
    sparse, gt, kept = sparsify(video, interval, "every")
    pck = {}
    for name in ("linear", "flow", "auto"):
        out = bench.make_propagator(name).propagate(sparse, frames, kept)  # fills to the video ends
        pck[name] = bench.summarize(bench.joint_errors(gt, out, kept))["pckh@0.5"]
    assert pck["auto"] >= max(pck["linear"], pck["flow"]) + 2.0, pck


# ------------------------------------------------------------------------------------------------ CLI default


def test_cli_default_method_is_auto_without_a_checkpoint(tmp_path, capsys):
    from stdpose.data.formats import read_annotations, write_posetrack18

    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    for i, img in enumerate(textured_frames()):
        cv2.imwrite(str(frames_dir / f"{i:06d}.jpg"), img)
    labels = tmp_path / "labels.json"
    write_posetrack18(sparse_video(), labels)
    out = tmp_path / "out.json"
    rc, text, err = run_propagate(capsys, "--video", frames_dir, "--labels", labels, "--out", out)
    assert rc == 0, err
    assert text.startswith("auto:")
    result = read_annotations(out)[0]
    propagated = [p for f in result.frames for p in f.persons if p.propagated]
    assert len(propagated) == N - 2 and all(p.extra.get("method") == "auto" for p in propagated)
    # without --video the default (auto) needs the frames: a one-line error, exit 2
    rc, _, err = run_propagate(capsys, "--labels", labels, "--out", tmp_path / "o2.json")
    assert rc == 2 and "--video is required for --method auto" in err
