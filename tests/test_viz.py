"""Overlays, overlay videos and AP charts: they draw what they should, and write readable files atomically."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_data

from stdpose import viz
from stdpose.data.records import Frame, Person, Video
from stdpose.errors import ConfigError, DataError
from stdpose.skeleton import SLOT


def standing_person(cx: float = 160.0, top: float = 40.0, propagated: bool = False, track_id: int = 3) -> Person:
    """A simple upright figure; joints far enough apart that each joint's centre pixel is its own."""
    kps = np.zeros((17, 3))
    pos = {
        "head_top": (cx, top), "nose": (cx, top + 20), "head_bottom": (cx, top + 40),
        "left_shoulder": (cx + 40, top + 50), "right_shoulder": (cx - 40, top + 50),
        "left_elbow": (cx + 60, top + 90), "right_elbow": (cx - 60, top + 90),
        "left_wrist": (cx + 70, top + 130), "right_wrist": (cx - 70, top + 130),
        "left_hip": (cx + 25, top + 140), "right_hip": (cx - 25, top + 140),
        "left_knee": (cx + 30, top + 190), "right_knee": (cx - 30, top + 190),
        "left_ankle": (cx + 30, top + 235), "right_ankle": (cx - 30, top + 235),
    }
    for name, (x, y) in pos.items():
        kps[SLOT[name]] = (x, y, 1)
    scores = np.where(kps[:, 2] > 0, 0.8, 0.0) if propagated else None
    return Person(kps, track_id=track_id, propagated=propagated, scores=scores, score=0.8 if propagated else None)


def blank(h: int = 300, w: int = 320) -> np.ndarray:
    return np.full((h, w, 3), 30, np.uint8)


def px(img: np.ndarray, person: Person, slot: str) -> tuple[int, ...]:
    x, y = person.keypoints[SLOT[slot], :2]
    return tuple(int(v) for v in img[round(y), round(x)])


def near(img: np.ndarray, xy, color, r: int = 2, tol: int = 40) -> bool:
    """Some pixel within `r` of xy is within `tol` of `color` (anti-aliased lines)."""
    x, y = (round(float(v)) for v in xy)
    patch = img[y - r:y + r + 1, x - r:x + r + 1].astype(int)
    return bool(np.any(np.all(np.abs(patch - np.array(color)) <= tol, axis=-1)))


def test_draw_pose_colours_joints_by_side_and_leaves_the_input_alone():
    image = blank()
    person = standing_person()
    out = viz.draw_pose(image, person)
    assert np.all(image == 30) and out is not image
    assert px(out, person, "left_knee") == viz.LEFT_COLOR
    assert px(out, person, "right_knee") == viz.RIGHT_COLOR
    assert px(out, person, "nose") == viz.MID_COLOR
    # the bone between the left hip and knee is drawn (solid): its midpoint is coloured
    mid = (person.keypoints[SLOT["left_hip"], :2] + person.keypoints[SLOT["left_knee"], :2]) / 2
    assert near(out, mid, viz.LEFT_COLOR)
    # nothing is drawn far from the person
    assert np.all(out[285:, :] == 30)


def test_propagated_poses_look_different_from_labels():
    label, prop = standing_person(), standing_person(propagated=True)
    a, b = viz.draw_pose(blank(), label), viz.draw_pose(blank(), prop)
    # hollow joints: centre pixel keeps the background, the ring is coloured
    assert px(b, prop, "left_knee") == (30, 30, 30)
    x, y = prop.keypoints[SLOT["left_knee"], :2]
    ring = b[int(y) - 6:int(y) + 7, int(x) - 6:int(x) + 7]
    assert np.any(np.all(ring == viz.LEFT_COLOR, axis=-1))
    # dashed bones: fewer bone pixels than the solid label drawing; and the tags differ
    assert (a != 30).any(axis=-1).sum() > (b != 30).any(axis=-1).sum()
    assert not np.array_equal(a, b)


def test_colour_override_scores_and_unannotated_joints():
    person = standing_person(propagated=True)
    person.keypoints[SLOT["left_ankle"]] = 0  # not annotated: not drawn, nor its bone
    out = viz.draw_pose(blank(), person, color=(0, 0, 255), draw_scores=True)
    x, y = 190, 275  # where the left ankle would have been
    assert np.all(out[y - 3:y + 4, x - 3:x + 4] == 30)
    joint = person.keypoints[SLOT["right_knee"], :2].round().astype(int)
    ring = out[joint[1] - 6:joint[1] + 7, joint[0] - 6:joint[0] + 7]
    assert np.any(np.all(ring == (0, 0, 255), axis=-1))
    assert not np.any(np.all(out == viz.RIGHT_COLOR, axis=-1))
    with_scores = out
    without = viz.draw_pose(blank(), person, color=(0, 0, 255))
    assert (with_scores != without).any()  # score text drawn
    with pytest.raises(ValueError, match="uint8"):
        viz.draw_pose(np.zeros((10, 10, 3), np.float32), person)


def test_draw_frame_draws_every_person_and_ignore_regions():
    frame = Frame(4, "x.jpg", persons=[standing_person(90, track_id=1), standing_person(230, 40, True, 2)],
                  ignore_regions=[((5.0, 60.0, 60.0, 5.0), (200.0, 200.0, 290.0, 290.0))])
    out = viz.draw_frame(blank(), frame)
    assert px(out, frame.persons[0], "left_knee") == viz.LEFT_COLOR
    assert px(out, frame.persons[1], "left_knee") == (30, 30, 30)  # hollow
    assert near(out, (30, 200), viz.IGNORE_COLOR, tol=20)  # top edge of the ignore polygon
    assert not near(out, (30, 240), viz.IGNORE_COLOR, r=10, tol=20)  # outlined, not filled


def make_video(n: int) -> tuple[Video, list[np.ndarray]]:
    frames = [Frame(i, f"{i:06d}.jpg", persons=[standing_person(120 + 5 * i, propagated=i % 3 != 0)],
                    is_labeled=i % 3 == 0) for i in range(n)]
    images = [np.full((300, 320, 3), 20 * i, np.uint8) for i in range(n)]
    return Video("clip", frames), images


def _read_all(path) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    read = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        read.append(img)
    cap.release()
    return read


def test_overlay_video_is_readable_with_every_frame(tmp_path):
    video, images = make_video(7)
    path = viz.write_overlay_video(video, images, tmp_path / "out" / "clip.mp4", fps=5, progress=False, min_side=0)
    assert path == tmp_path / "out" / "clip.mp4"
    assert sorted(p.name for p in path.parent.iterdir()) == ["clip.mp4"]  # no temporary files left
    read = _read_all(path)
    assert len(read) == 7 and read[0].shape == (300, 320, 3)
    # the frames' own content, in order: the background (most pixels; tags and encoder artefacts move between
    # encoder builds, so a median, not a strip's mean) is the grey level each frame was written with
    backgrounds = [float(np.median(img)) for img in read]
    assert all(abs(b - 20 * i) < 8 for i, b in enumerate(backgrounds)), backgrounds
    # the pose is in the video: coloured pixels at a joint of frame 0 (a label)
    p = video.frames[0].persons[0]
    x, y = p.keypoints[SLOT["left_knee"], :2].round().astype(int)
    assert read[0][y, x, 2] > 150  # orange has a strong red channel


def test_overlay_video_is_h264_when_pyav_is_installed(tmp_path):
    av = pytest.importorskip("av")
    video, images = make_video(5)
    result = viz.encode_overlay_video(video, images, tmp_path / "clip.mp4", fps=5, progress=False)
    assert result.codec == "libx264" and result.codec_name == "H.264"
    with av.open(str(result.path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert sum(1 for _ in container.decode(stream)) == 5


def test_overlay_video_without_pyav_falls_back_to_mpeg4_with_a_warning(tmp_path, monkeypatch, caplog):
    import sys

    monkeypatch.setitem(sys.modules, "av", None)  # `import av` raises ImportError
    video, images = make_video(3)
    result = viz.encode_overlay_video(video, images, tmp_path / "clip.mp4", progress=False)
    assert result.codec == "mp4v" and result.path == tmp_path / "clip.mp4"
    assert "PyAV is not installed (pip install av)" in caplog.text and "MPEG-4 Part 2" in caplog.text
    assert len(_read_all(result.path)) == 3


def test_small_frames_are_upscaled_so_the_header_is_readable(tmp_path):
    video, _ = make_video(2)
    images = [np.full((144, 192, 3), 60, np.uint8) for _ in range(2)]
    for f in video.frames:  # a person that fits the small frame
        f.persons = [viz.scale_frame(Frame(0, "", persons=[standing_person(cx=100, top=10)]), 0.5).persons[0]]
    result = viz.encode_overlay_video(video, images, tmp_path / "small.mp4", fps=5, progress=False)
    assert result.upscale == 3
    read = _read_all(result.path)
    assert read[0].shape == (432, 576, 3)
    # the header text is at least 10 pixels high at native size
    header = (read[0][:40, :300] > 200).any(axis=-1)
    rows = np.flatnonzero(header.any(axis=1))
    assert rows.size and rows.max() - rows.min() >= 10


def _single_joint_person(box, propagated=True) -> Person:
    kps = np.zeros((17, 3))
    x, y, w, h = box
    kps[SLOT["nose"]] = (x + w / 2, y + h / 2, 1)
    scores = np.full(17, 0.9) if propagated else None
    return Person(kps, track_id=1, bbox=box, propagated=propagated, scores=scores, score=0.9)


def _ring_radius(img: np.ndarray, centre) -> int:
    """Farthest changed pixel from the centre along its row (the ring's outer edge)."""
    cx, cy = (round(v) for v in centre)
    row = np.any(img[cy] != 30, axis=-1)
    xs = np.flatnonzero(row)
    return int(np.max(np.abs(xs - cx))) if xs.size else 0


def test_marker_sizes_follow_the_person_box_not_the_image():
    small, big = (100, 100, 40, 100), (100, 100, 200, 500)
    assert viz.marker_sizes(_single_joint_person(small)) == (1, 3)
    assert viz.marker_sizes(_single_joint_person(big)) == (5, 13)
    r_small = _ring_radius(viz.draw_pose(blank(800, 800), _single_joint_person(small)), (120, 150))
    r_big = _ring_radius(viz.draw_pose(blank(800, 800), _single_joint_person(big)), (200, 350))
    assert 3 <= r_small <= 5 and 13 <= r_big <= 17
    # the same small person in a 4x bigger image keeps its small rings (the image size does not matter)
    assert _ring_radius(viz.draw_pose(blank(800, 3200), _single_joint_person(small)), (120, 150)) == r_small


def test_tags_do_not_overlap_each_other_or_the_header():
    layout = viz._TagLayout(blank(300, 320))
    header = layout.place(150, 16, None, fixed=(2, 2))
    rects = [header] + [layout.place(60, 16, (10 + 5 * k, 20, 50, 120)) for k in range(4)]  # crowded, same top
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            assert min(a[2], b[2]) <= max(a[0], b[0]) or min(a[3], b[3]) <= max(a[1], b[1]), (a, b)
        assert 0 <= a[0] and a[2] <= 320 and 0 <= a[1] and a[3] <= 300


def test_low_scores_are_faded_and_flagged_joints_ringed_red():
    person = standing_person(propagated=True)
    faded = standing_person(propagated=True)
    faded.scores[SLOT["left_knee"]] = 0.1
    faded.extra["review_joints"] = [SLOT["left_knee"]]
    faded.extra["review"] = True
    a, b = viz.draw_pose(blank(), person), viz.draw_pose(blank(), faded)
    x, y = person.keypoints[SLOT["left_knee"], :2].round().astype(int)
    _, radius = viz.marker_sizes(person)
    yy, xx = np.mgrid[:a.shape[0], :a.shape[1]]
    ring = np.hypot(xx - x, yy - y) <= radius + 1  # the joint's ring, inside the red review ring
    full = np.abs(a[ring].astype(int) - 30).sum(axis=-1).max()
    dim = np.abs(b[ring].astype(int) - 30).sum(axis=-1).max()
    assert dim < 0.5 * full  # the faded ring is much closer to the background
    outer = b[y - radius - 8:y + radius + 9, x - radius - 8:x + radius + 9]
    assert np.any(np.all(np.abs(outer.astype(int) - viz.REVIEW_COLOR) <= 40, axis=-1))  # a solid red ring
    # other joints look the same in both
    x2, y2 = person.keypoints[SLOT["right_knee"], :2].round().astype(int)
    assert np.array_equal(a[y2 - 4:y2 + 5, x2 - 4:x2 + 5], b[y2 - 4:y2 + 5, x2 - 4:x2 + 5])


def test_overlay_video_falls_back_to_avi_when_mp4_cannot_be_written(tmp_path, monkeypatch, caplog):
    import cv2

    monkeypatch.setattr(viz, "VIDEO_CODECS", (("XXXX", ".mp4"), ("MJPG", ".avi")))
    video, images = make_video(3)
    path = viz.write_overlay_video(video, images, tmp_path / "clip.mp4", progress=False)
    assert path == tmp_path / "clip.avi" and path.exists() and not (tmp_path / "clip.mp4").exists()
    assert "instead of" in caplog.text
    cap = cv2.VideoCapture(str(path))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    cap.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.avi"]


def test_overlay_video_rejects_missing_frames(tmp_path):
    video, images = make_video(4)
    with pytest.raises(DataError, match="only 2 video frames"):
        viz.write_overlay_video(video, images[:2], tmp_path / "c.mp4", progress=False)
    images[2] = images[2][:200]
    with pytest.raises(DataError, match="frame 2 is 320x200"):
        viz.write_overlay_video(video, images, tmp_path / "c.mp4", progress=False)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_save_overlay_frame_writes_an_image(tmp_path):
    import cv2

    frame = Frame(0, "a.jpg", persons=[standing_person()], is_labeled=True)
    path = viz.save_overlay_frame(blank(), frame, tmp_path / "f.png")
    img = cv2.imread(str(path))
    assert img.shape == (300, 320, 3) and px(img, frame.persons[0], "left_knee") == viz.LEFT_COLOR


@pytest.mark.realdata
def test_overlay_on_a_real_posetrack_frame(tmp_path):
    import cv2

    from stdpose.data.formats import read_posetrack18

    root = shared_data("posetrack18_samples")
    video = read_posetrack18(root / "annotations" / "val" / "012834_mpii_test.json")[0]
    frame = next(f for f in video.frames if f.is_labeled)
    image = cv2.imread(str(root / "images" / "val" / "012834_mpii_test" / "000000.jpg"))
    out = viz.draw_frame(image, frame)
    changed = (out != image).any(axis=-1)
    assert 0.005 < changed.mean() < 0.3  # skeletons, tags and ignore regions, not a wash over the image
    for person in frame.persons:
        j = np.flatnonzero(person.annotated)[0]
        x, y = person.keypoints[j, :2].round().astype(int)
        if 0 <= x < image.shape[1] and 0 <= y < image.shape[0]:
            assert changed[y, x]


ROWS = {
    "nearest": {"Head": 70.1, "Shoulder": 65.0, "Elbow": 50.0, "Wrist": 40.0, "Hip": 60.0, "Knee": 50.0,
                "Ankle": 45.0, "Mean": 55.0},
    "flow": {"Head": 76.5, "Shoulder": 82.3, "Elbow": 74.3, "Wrist": 69.2, "Hip": 80.8, "Knee": 74.8,
             "Ankle": 70.1, "Mean": 75.5},
    "partial": {"Head": 0.9, "Mean": float("nan")},
}


def test_ap_chart_is_a_valid_png(tmp_path):
    import cv2

    path = viz.plot_ap_chart(ROWS, tmp_path / "charts" / "ap.png", "Propagation T=7")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and 10_000 < len(data) < 2_000_000
    img = cv2.imread(str(path))
    assert img is not None and img.shape[0] > 300 and img.shape[1] > 600
    assert (img < 200).any(axis=-1).mean() > 0.05  # bars and text, not an empty canvas
    assert sorted(p.name for p in path.parent.iterdir()) == ["ap.png"]


def test_ap_chart_rejects_empty_input(tmp_path):
    with pytest.raises(ConfigError):
        viz.plot_ap_chart({}, tmp_path / "a.png", "x")
    with pytest.raises(ConfigError, match="groups"):
        viz.plot_ap_chart({"m": {"Torso": 1.0}}, tmp_path / "a.png", "x")
