"""Review flags (`--review-below`) in every output format, and the review sheet (image and HTML) on real frames."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import run_propagate, shared_data

from stdpose.data.formats import read_annotations, write_coco_keypoints, write_posetrack17, write_posetrack18
from stdpose.data.records import Frame, Person, Video
from stdpose.errors import ConfigError
from stdpose.propagation.review import mark_for_review, review_joints
from stdpose.review_sheet import review_items, write_review_sheet

FIXTURES = Path(__file__).parent / "fixtures"


def _person(scores, propagated=True, track=1) -> Person:
    kps = np.zeros((17, 3))
    kps[:, :2] = np.arange(34).reshape(17, 2) + 10
    kps[:, 2] = 1
    kps[3:5] = 0  # ears not predicted
    return Person(kps, track_id=track, scores=np.asarray(scores, float) if scores is not None else None,
                  propagated=propagated, bbox=(5, 5, 60, 60))


def test_mark_for_review_flags_joints_below_the_threshold_and_leaves_labels_alone():
    scores = np.full(17, 0.9)
    scores[[0, 9, 16]] = [0.2, 0.49, 0.5]
    scores[3] = 0.0  # an ear: not predicted, never flagged
    prop, ok, label = _person(scores), _person(np.full(17, 0.8), track=2), _person(None, propagated=False, track=3)
    video = Video("v", [Frame(0, "a.jpg", [label], is_labeled=True), Frame(1, "b.jpg", [prop, ok])])
    summary = mark_for_review(video, 0.5)
    assert prop.extra["review_joints"] == [0, 9] and prop.extra["review"] is True  # 0.5 itself is not below
    assert ok.extra["review_joints"] == [] and ok.extra["review"] is False
    assert "review" not in label.extra
    assert (summary.poses, summary.flagged_poses, summary.flagged_joints) == (2, 1, 2)
    assert summary.flagged == [(1, 1)] and summary.flagged_frames == [1]
    assert review_joints(_person(None), 0.5) == [j for j in range(17) if j not in (3, 4)]  # no scores: check all
    for bad in (-0.1, 1.5, float("nan"), "x"):
        with pytest.raises(ConfigError, match="review threshold"):
            mark_for_review(video, bad)


def _check_flags(persons: list[dict], threshold: float, slot_of=None) -> int:
    """Every propagated annotation carries review fields that match its scores; returns how many were flagged."""
    flagged = 0
    for ann in persons:
        if not ann.get("propagated") and "method" not in ann:
            assert "review" not in ann
            continue
        expected = [j for j, s in enumerate(ann["scores"]) if s > 0 and s < threshold]
        if slot_of is not None:  # COCO layout: scores are in COCO order, review_joints in PoseTrack slots
            expected = sorted(slot_of[j] for j in expected)
        assert ann["review_joints"] == expected
        assert ann["review"] is bool(expected)
        flagged += bool(expected)
    return flagged


def _sparse_labels(tiny_synthetic) -> tuple[Video, Path]:
    path = sorted((tiny_synthetic / "annotations" / "val").glob("*.json"))[0]
    return read_annotations(path)[0], path


def test_review_flags_are_written_in_every_format(tiny_synthetic, tmp_path, capsys):
    from stdpose.skeleton import COCO_TO_POSETRACK

    video, pt18 = _sparse_labels(tiny_synthetic)
    threshold = 0.7  # linear scores are 2^(-d/7): joints 4+ frames from a label fall below 0.7
    # PoseTrack18
    rc, text, err = run_propagate(capsys, "--labels", pt18, "--method", "linear", "--interval", "7", "--review-below",
                         threshold, "--out", tmp_path / "pt18.json")
    assert rc == 0, err
    assert "review (scores below 0.7)" in text
    anns = json.loads((tmp_path / "pt18.json").read_text())["annotations"]
    assert _check_flags(anns, threshold) > 0
    back = read_annotations(tmp_path / "pt18.json")[0]  # read back: the flags survive in Person.extra
    assert any(p.extra.get("review") for f in back.frames for p in f.persons)
    # PoseTrack17
    write_posetrack17(video, tmp_path / "in17.json")
    rc, _, err = run_propagate(capsys, "--labels", tmp_path / "in17.json", "--method", "linear", "--interval", "7",
                      "--review-below", threshold, "--out", tmp_path / "pt17.json")
    assert rc == 0, err
    rects = [r for e in json.loads((tmp_path / "pt17.json").read_text())["annolist"] for r in e["annorect"]]
    flagged17 = [r for r in rects if r.get("review")]
    assert flagged17 and all("review_joints" in r for r in rects if "method" in r)
    # COCO, both layouts (review_joints are PoseTrack18 slot indices in every format)
    slot_of = {src: slot for slot, src in enumerate(COCO_TO_POSETRACK) if src >= 0}  # coco index -> slot
    for layout in ("posetrack", "coco"):
        write_coco_keypoints(video, tmp_path / f"in_{layout}.json", layout=layout)
        rc, _, err = run_propagate(capsys, "--labels", tmp_path / f"in_{layout}.json", "--method", "linear",
                                   "--interval",
                          "7", "--review-below", threshold, "--out", tmp_path / f"coco_{layout}.json")
        assert rc == 0, err
        anns = json.loads((tmp_path / f"coco_{layout}.json").read_text())["annotations"]
        if layout == "posetrack":
            assert _check_flags(anns, threshold) > 0
        else:
            for ann in (a for a in anns if a.get("propagated")):
                coco_flagged = sorted(slot_of[j] for j, s in enumerate(ann["scores"]) if 0 < s < threshold)
                # head_bottom / head_top have no COCO joint, so the slots can hold more than the COCO scores show
                assert set(coco_flagged) <= set(ann["review_joints"]) and ann["review"] is bool(ann["review_joints"])
    # CVAT for video 1.1: the skeleton attributes `review` / `review_joints`, read back into Person.extra
    rc, _, err = run_propagate(capsys, "--labels", pt18, "--method", "linear", "--interval", "7", "--review-below",
                      threshold, "--out", tmp_path / "cvat.xml")
    assert rc == 0, err
    assert '<attribute name="review">true</attribute>' in (tmp_path / "cvat.xml").read_text()
    cvat_back = read_annotations(tmp_path / "cvat.xml")[0]
    from_pt18 = {(f.index, p.track_id): p.extra.get("review_joints") for f in back.frames for p in f.persons
                 if p.extra.get("review")}
    from_cvat = {(f.index, p.track_id): p.extra.get("review_joints") for f in cvat_back.frames for p in f.persons
                 if p.extra.get("review")}
    assert from_cvat and from_cvat == from_pt18


def test_review_threshold_errors_are_one_line(tiny_synthetic, tmp_path, capsys):
    _, pt18 = _sparse_labels(tiny_synthetic)
    rc, _, err = run_propagate(capsys, "--labels", pt18, "--method", "linear", "--review-below", "2", "--out",
                      tmp_path / "o.json")
    assert rc == 2 and "review threshold must be in [0, 1]" in err and len(err.strip().splitlines()) == 1
    rc, _, err = run_propagate(capsys, "--labels", pt18, "--method", "linear", "--review-sheet", tmp_path / "s.jpg",
                      "--out", tmp_path / "o.json")
    assert rc == 2 and "--review-sheet needs --review-below" in err
    assert not (tmp_path / "o.json").exists()


def _flagged_video() -> Video:
    """Track 1 flagged on frames 1-3 and 6, track 2 on frame 2 only; frame 4-5 poses pass."""
    frames = []
    for i in range(8):
        persons = []
        for track, bad in ((1, i in (1, 2, 3, 6)), (2, i == 2)):
            scores = np.full(17, 0.9)
            if bad:
                scores[[9, 10]] = 0.1 + 0.05 * i
            p = _person(scores, track=track)
            p.keypoints[:, 0] += 100 * track
            p.bbox = (100 * track, 5, 60, 60)
            persons.append(p)
        frames.append(Frame(i, f"{i:06d}.jpg", persons, is_labeled=i in (0, 7)))
    for f in frames:
        if f.is_labeled:
            for p in f.persons:
                p.propagated = False
    video = Video("clip", frames)
    mark_for_review(video, 0.5)
    return video


def test_review_items_group_runs_of_consecutive_frames_worst_first():
    items = review_items(_flagged_video())
    assert [(it.track_id, it.frames) for it in items] == [(1, [1, 2, 3]), (2, [2]), (1, [6])]
    assert items[0].worst_frame == 1 and items[0].worst_score == pytest.approx(0.15)
    assert items[0].joint_names() == ["left_wrist", "right_wrist"]


def test_review_sheet_image_and_html_list_the_flagged_frames(tmp_path):
    video = _flagged_video()
    images = [np.full((120, 320, 3), 40 + 10 * i, np.uint8) for i in range(8)]
    sheet = write_review_sheet(video, images, tmp_path / "sheet.jpg", threshold=0.5)
    img = cv2.imread(str(sheet.path))
    assert img is not None and img.shape[1] >= 3 * 160 and sheet.shown == 3
    assert sheet.frames == [1, 2, 3, 6]
    page = write_review_sheet(video, images, tmp_path / "sheet.html", threshold=0.5)
    text = page.path.read_text()
    assert "Frames to check</b> (4): 1 2 3 6" in text
    assert text.count("data:image/jpeg;base64,") == 3 and "left_wrist, right_wrist" in text
    few = write_review_sheet(video, images, tmp_path / "few.jpg", max_items=1)
    assert few.shown == 1 and len(few.items) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["few.jpg", "sheet.html", "sheet.jpg"]
    with pytest.raises(ConfigError, match="needs the video frames"):
        write_review_sheet(video, None, tmp_path / "x.jpg")


@pytest.mark.realdata
@pytest.mark.parametrize("clip", ["vtest", "posetrack"])
def test_review_sheet_on_real_frames(clip, tmp_path, capsys):
    if clip == "vtest":
        video, labels = shared_data("opencv_samples", "vtest.avi"), FIXTURES / "vtest_hand.json"
    else:
        video = shared_data("posetrack18_samples", "videos", "000001_mpiinew_test")
        labels = FIXTURES / "000001_mpiinew_test_hand.json"
    rc, text, err = run_propagate(capsys, "--video", video, "--labels", labels, "--method", "flow", "--review-below",
                                  "0.5", "--review-sheet", tmp_path / "sheet.html", "--out", tmp_path / "out.json")
    assert rc == 0, err
    out = read_annotations(tmp_path / "out.json")[0]
    flagged = sorted({f.index for f in out.frames for p in f.persons if p.extra.get("review")})
    assert flagged, "flow scores on a 9-frame gap fall below 0.5 mid-gap"
    page = (tmp_path / "sheet.html").read_text()
    assert f"({len(flagged)}): {' '.join(map(str, flagged))}" in page
    assert "review sheet:" in text
    rc, _, err = run_propagate(capsys, "--video", video, "--labels", labels, "--method", "flow", "--review-below",
                               "0.5", "--review-sheet", tmp_path / "sheet.jpg", "--out", tmp_path / "out.json")
    assert rc == 0, err
    img = cv2.imread(str(tmp_path / "sheet.jpg"))
    # crops of real people: varied content, not a blank canvas
    assert img is not None and img.shape[0] > 200 and float(img[40:].std()) > 20


def test_write_posetrack18_keeps_review_fields_round_trip(tmp_path):
    video = _flagged_video()
    write_posetrack18(video, tmp_path / "v.json")
    back = read_annotations(tmp_path / "v.json")[0]
    got = [(f.index, p.track_id, p.extra.get("review_joints")) for f in back.frames for p in f.persons
           if p.extra.get("review")]
    assert got == [(1, 1, [9, 10]), (2, 1, [9, 10]), (2, 2, [9, 10]), (3, 1, [9, 10]), (6, 1, [9, 10])]
