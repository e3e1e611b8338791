"""Readers and writers: every real sample file, lossless round trips, and a clear DataError for each bad input."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_data

from stdpose.data import formats as pt
from stdpose.data.records import Frame, Person, Video
from stdpose.errors import DataError
from stdpose.skeleton import NUM_SLOTS, SLOT


def assert_same_videos(a: list[Video], b: list[Video], compare_names: bool = True, ids: bool = True) -> None:
    """Records equal field by field (ids=False: ignore the ids and `nframes` a writer fills in for new records)."""
    assert len(a) == len(b)
    for va, vb in zip(a, b):
        if compare_names:
            assert (va.name, va.vid_id) == (vb.name, vb.vid_id)
        assert va.num_frames == vb.num_frames
        for fa, fb in zip(va.frames, vb.frames):
            fields = ("index", "file_name", "is_labeled", "ignore_regions", "width", "height")
            fields += ("image_id", "frame_id") if ids else ()
            assert [getattr(fa, f) for f in fields] == [getattr(fb, f) for f in fields]
            if ids:
                assert fa.extra == fb.extra
            assert len(fa.persons) == len(fb.persons)
            for pa, pb in zip(fa.persons, fb.persons):
                np.testing.assert_array_equal(pa.keypoints, pb.keypoints)
                assert (pa.scores is None) == (pb.scores is None)
                if pa.scores is not None:
                    np.testing.assert_allclose(pa.scores, pb.scores)
                fields = ("track_id", "bbox", "bbox_head", "score", "person_id", "propagated")
                fields += ("extra",) if ids else ()
                assert [getattr(pa, f) for f in fields] == [getattr(pb, f) for f in fields]


def _person(seed: int, **kw) -> Person:
    rng = np.random.default_rng(seed)
    kps = np.zeros((NUM_SLOTS, 3))
    kps[:, 0] = rng.uniform(10, 300, NUM_SLOTS).round(2)
    kps[:, 1] = rng.uniform(10, 200, NUM_SLOTS).round(2)
    kps[:, 2] = 1
    kps[[SLOT["left_ear"], SLOT["right_ear"]]] = 0
    return Person(keypoints=kps, **kw)


def _toy_video(num_frames: int = 4) -> Video:
    frames = []
    for i in range(num_frames):
        persons = [_person(i, track_id=0, bbox=(5.0, 6.0, 100.0, 150.5), bbox_head=(20.0, 10.0, 30.0, 25.0))]
        if i % 2 == 0:
            persons.append(_person(100 + i, track_id=1, bbox=None, scores=np.linspace(0, 1, NUM_SLOTS), score=0.8,
                                   propagated=True))
        frames.append(Frame(index=i, file_name=f"images/val/000042_toy/{i:06d}.jpg", persons=persons,
                            is_labeled=i % 2 == 0, width=320, height=240,
                            ignore_regions=[((1.0, 5.0, 5.0), (1.0, 1.0, 7.5))] if i == 1 else []))
    return Video(name="000042_toy", frames=frames, vid_id="000042")


# ------------------------------------------------------------------------------------------------ real files


@pytest.mark.realdata
def test_reads_real_posetrack18_per_video_files():
    root = shared_data("posetrack18_samples", "annotations", "val")
    videos = pt.read_annotations(root)  # a folder: one file per video, sorted
    assert [v.name for v in videos] == ["003418_mpii_test", "009473_mpii_test", "012834_mpii_test"]
    assert [v.vid_id for v in videos] == ["003418", "009473", "012834"]
    assert [len(v.frames[0].persons) for v in videos] == [1, 2, 11]
    v = videos[0]
    frame = v.frames[0]
    assert frame.file_name == "images/val/003418_mpii_test/000000.jpg"
    assert frame.is_labeled and frame.image_id == 10034180000 and (frame.width, frame.height) == (1920, 1080)
    assert len(frame.ignore_regions) == 9
    assert all(len(xs) == len(ys) > 2 for xs, ys in frame.ignore_regions)
    p = frame.persons[0]
    np.testing.assert_array_equal(p.keypoints[SLOT["nose"]], [621, 471, 1])
    assert p.keypoints[SLOT["left_ear"], 2] == 0 and p.annotated.sum() == 11
    assert p.track_id == 0 and p.bbox == (214.25, 15.0, 1358.5, 1092.0) and p.bbox_head == (346, 337, 296, 237)
    assert p.scores is None
    assert Path(v.source).name == "003418_mpii_test.json"


@pytest.mark.realdata
def test_merged_file_groups_frames_by_vid_id():
    path = shared_data("posetrack18_samples", "annotations", "test_posetrack18_val.json")
    videos = pt.read_posetrack18(path)
    assert [v.vid_id for v in videos] == ["012834", "009473", "003418"]
    assert [sum(len(f.persons) for f in v.frames) for v in videos] == [11, 2, 1]
    assert [p.track_id for p in videos[0].frames[0].persons] == list(range(11))
    # the same people as in the per-video files
    single = pt.read_posetrack18(shared_data("posetrack18_samples", "annotations", "val", "012834_mpii_test.json"))
    assert_same_videos(videos[:1], single)


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["003418_mpii_test.json", "009473_mpii_test.json", "012834_mpii_test.json"])
def test_real_posetrack18_round_trip_is_lossless(tmp_path, name):
    path = shared_data("posetrack18_samples", "annotations", "val", name)
    videos = pt.read_posetrack18(path)
    out = tmp_path / name
    pt.write_posetrack18(videos[0], out)
    assert_same_videos(videos, pt.read_posetrack18(out))
    # even the JSON objects match the original file, field by field
    original, written = json.loads(path.read_text()), json.loads(out.read_text())
    assert written["images"] == original["images"]
    assert written["annotations"] == original["annotations"]
    assert written["categories"] == original["categories"]


@pytest.mark.realdata
def test_real_posetrack18_to_posetrack17_and_back(tmp_path):
    videos = pt.read_annotations(shared_data("posetrack18_samples", "annotations", "val", "012834_mpii_test.json"))
    pt.write_posetrack17(videos[0], tmp_path / "v17.json")
    data = json.loads((tmp_path / "v17.json").read_text())
    rect = data["annolist"][0]["annorect"][0]
    head = videos[0].frames[0].persons[0].bbox_head
    assert rect["x1"] == [head[0]] and rect["x2"] == [head[0] + head[2]]  # annorect box is the head box
    back = pt.read_annotations(tmp_path / "v17.json")
    assert back[0].name == "012834_mpii_test" and back[0].vid_id == "012834"
    fa, fb = videos[0].frames[0], back[0].frames[0]
    assert fb.is_labeled and fb.ignore_regions == fa.ignore_regions
    for pa, pb in zip(fa.persons, fb.persons):
        assert pa.track_id == pb.track_id and pa.bbox_head == pb.bbox_head
        np.testing.assert_array_equal(pa.annotated, pb.annotated)
        np.testing.assert_array_equal(pa.keypoints[:, :2], pb.keypoints[:, :2])
    # and PoseTrack17 -> PoseTrack17 keeps everything
    pt.write_posetrack17(back[0], tmp_path / "again.json")
    assert_same_videos(back, pt.read_posetrack17(tmp_path / "again.json"))


@pytest.mark.realdata
def test_reads_real_coco_keypoints_and_round_trips_the_file(tmp_path):
    path = shared_data("coco_samples", "test_coco.json")
    videos = pt.read_annotations(path)
    assert len(videos) == 1 and videos[0].num_frames == 4
    assert sum(len(f.persons) for f in videos[0].frames) == 14
    frame = videos[0].frames[0]
    assert frame.file_name == "000000000785.jpg" and frame.image_id == 785 and frame.is_labeled
    p = frame.persons[0]
    original = json.loads(path.read_text())
    coco = np.asarray(original["annotations"][0]["keypoints"], dtype=float).reshape(17, 3)
    np.testing.assert_array_equal(p.keypoints[SLOT["nose"]], coco[0])
    np.testing.assert_array_equal(p.keypoints[SLOT["right_ankle"]], coco[16])
    assert p.keypoints[SLOT["head_bottom"], 2] == 0 and p.keypoints[SLOT["head_top"], 2] == 0
    out = tmp_path / "coco.json"
    pt.write_coco_keypoints(videos, out)
    written = json.loads(out.read_text())
    assert written["annotations"] == original["annotations"] and written["images"] == original["images"]
    assert_same_videos(videos, pt.read_coco_keypoints(out), compare_names=False)


@pytest.mark.realdata
def test_reads_real_detections():
    path = shared_data("posetrack18_samples", "annotations", "test_posetrack18_human_detections.json")
    skipped: Counter = Counter()
    dets = pt.read_detections(path, skipped)
    raw = json.loads(path.read_text())
    assert sum(len(v) for v in dets.values()) + sum(skipped.values()) == len(raw) == 278
    assert set(dets) == {10128340000, 10094730000, 10034180000}
    for image_dets in dets.values():
        scores = [d.score for d in image_dets]
        assert scores == sorted(scores, reverse=True)
        assert all(d.bbox[2] > 0 and d.bbox[3] > 0 for d in image_dets)
    first = raw[0]
    assert any(d.bbox == tuple(first["bbox"]) and d.score == first["score"] for d in dets[first["image_id"]])


@pytest.mark.realdata
def test_reads_real_coco_detections():
    dets = pt.read_detections(shared_data("coco_samples", "test_coco_det_AP_H_56.json"))
    assert sum(len(v) for v in dets.values()) == 118 and 785 in dets


# ------------------------------------------------------------------------------------------------ round trips


def test_posetrack18_round_trip_of_generated_video(tmp_path):
    video = _toy_video()
    pt.write_posetrack18(video, tmp_path / "toy.json")
    back = pt.read_posetrack18(tmp_path / "toy.json")
    assert back[0].source == str(tmp_path / "toy.json")
    assert_same_videos([video], back, ids=False)
    pt.write_posetrack18(back, tmp_path / "again.json")
    assert_same_videos(back, pt.read_posetrack18(tmp_path / "again.json"))
    data = json.loads((tmp_path / "toy.json").read_text())
    assert data["images"][0]["id"] == 10000420000  # PoseTrack18 id convention
    anns = [a for a in data["annotations"] if a["track_id"] == 1]
    assert all(a["propagated"] is True and len(a["scores"]) == NUM_SLOTS for a in anns)
    assert all("bbox" not in a for a in anns)  # missing box stays missing
    assert back[0].frames[0].persons[1].bbox is None
    assert back[0].frames[0].persons[1].box_from_keypoints() is not None
    assert not any("propagated" in a for a in data["annotations"] if a["track_id"] == 0)


def test_frames_are_ordered_by_frame_id(tmp_path):
    video = _toy_video(3)
    data = pt.posetrack18_dict([video])
    data["images"] = data["images"][::-1]  # file order reversed
    (tmp_path / "rev.json").write_text(json.dumps(data))
    back = pt.read_posetrack18(tmp_path / "rev.json")[0]
    assert [f.file_name for f in back.frames] == [f.file_name for f in video.frames]
    assert [f.index for f in back.frames] == [0, 1, 2]


def test_posetrack21_fields(tmp_path):
    video = _toy_video(2)
    data = pt.posetrack18_dict([video])
    for i, ann in enumerate(data["annotations"]):
        ann["person_id"] = 500 + i
    data["images"][0]["has_labeled_person"] = True
    (tmp_path / "pt21.json").write_text(json.dumps(data))
    back = pt.read_annotations(tmp_path / "pt21.json")[0]
    assert [p.person_id for f in back.frames for p in f.persons] == [500, 501, 502]
    assert back.frames[0].extra["has_labeled_person"] is True
    pt.write_posetrack18(back, tmp_path / "again.json")
    assert_same_videos([back], pt.read_posetrack18(tmp_path / "again.json"))


def test_posetrack17_round_trip_with_scores_and_visibility(tmp_path):
    video = _toy_video(3)
    for frame in video.frames:
        for p in frame.persons:
            p.keypoints[[SLOT["left_ear"], SLOT["right_ear"]]] = 0  # no PoseTrack17 id for ears
            if p.scores is not None:
                p.scores[[SLOT["left_ear"], SLOT["right_ear"]]] = 0
    pt.write_posetrack17(video, tmp_path / "v.json")
    raw = json.loads((tmp_path / "v.json").read_text())
    assert raw["annolist"][0]["imgnum"] == [1] and raw["annolist"][1]["is_labeled"] == [0]
    point_ids = [p["id"][0] for p in raw["annolist"][0]["annorect"][0]["annopoints"][0]["point"]]
    assert point_ids == list(range(15))
    raw["annolist"][0]["annorect"][0]["annopoints"][0]["point"][0]["is_visible"] = [0]
    (tmp_path / "v.json").write_text(json.dumps(raw))
    back = pt.read_annotations(tmp_path / "v.json")[0]
    assert back.name == "000042_toy" and back.vid_id == "000042"
    p = back.frames[0].persons[1]
    np.testing.assert_allclose(p.scores, video.frames[0].persons[1].scores)
    assert p.score == 0.8 and p.bbox_head is None
    # is_visible 0 is still an annotated joint (poseval evaluates it) and is written back as given
    assert back.frames[0].persons[0].keypoints[SLOT["right_ankle"], 2] == 1
    pt.write_posetrack17(back, tmp_path / "again.json")
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["annolist"][0]["annorect"][0]["annopoints"][0]["point"][0]["is_visible"] == [0]
    assert_same_videos([back], pt.read_posetrack17(tmp_path / "again.json"))


def test_posetrack17_unwrapped_scalars_and_missing_is_labeled(tmp_path):
    data = {"annolist": [
        {"image": {"name": "images/bonn/000001_bonn/00000002.jpg"}, "imgnum": 2, "annorect": []},
        {"image": [{"name": "images/bonn/000001_bonn/00000001.jpg"}], "imgnum": [1], "annorect": [
            {"track_id": 3, "x1": 1, "y1": 2, "x2": 11, "y2": 22,
             "annopoints": [{"point": [{"id": 13, "x": 5.5, "y": 6.5}]}]}]},
    ]}  # fmt: skip
    (tmp_path / "a.json").write_text(json.dumps(data))
    video = pt.read_annotations(tmp_path / "a.json")[0]
    assert [f.file_name[-12:] for f in video.frames] == ["00000001.jpg", "00000002.jpg"]
    assert video.frames[0].is_labeled and not video.frames[1].is_labeled
    p = video.frames[0].persons[0]
    assert p.track_id == 3 and p.bbox_head == (1, 2, 10, 20)
    np.testing.assert_array_equal(p.keypoints[SLOT["nose"]], [5.5, 6.5, 1])


def test_write_coco_in_posetrack_layout_keeps_all_slots(tmp_path):
    video = _toy_video(2)
    pt.write_coco_keypoints(video, tmp_path / "c.json", layout="posetrack")
    back = pt.read_annotations(tmp_path / "c.json")[0]
    for fa, fb in zip(video.frames, back.frames):
        for pa, pb in zip(fa.persons, fb.persons):
            np.testing.assert_array_equal(pa.keypoints, pb.keypoints)
    pt.write_coco_keypoints(video, tmp_path / "coco.json", layout="coco")
    back = pt.read_annotations(tmp_path / "coco.json")[0]
    kp = back.frames[0].persons[0].keypoints
    assert kp[SLOT["head_top"], 2] == 0  # COCO has no head_top
    np.testing.assert_array_equal(kp[SLOT["left_wrist"]], video.frames[0].persons[0].keypoints[SLOT["left_wrist"]])


def test_detections_round_trip_and_zero_area_skip(tmp_path):
    rows = [
        {"image_id": 7, "bbox": [1, 2, 30, 40], "score": 0.5, "category_id": 1},
        {"image_id": 7, "bbox": [1, 2, 30, 40], "score": 0.9, "category_id": 1},
        {"image_id": 7, "bbox": [1, 2, 0, 40], "score": 0.9, "category_id": 1},
        {"image_id": 8, "bbox": [1, 2, 30, -4], "score": 0.9},
        {"image_id": 8, "bbox": [1, 2, 3, 4], "score": 0.9, "category_id": 2},
    ]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    skipped: Counter = Counter()
    dets = pt.read_detections(tmp_path / "d.json", skipped)
    assert skipped == Counter(zero_area_box=2, not_person=1)
    assert list(dets) == [7] and [d.score for d in dets[7]] == [0.9, 0.5]
    pt.write_detections(dets, tmp_path / "e.json")
    again = pt.read_detections(tmp_path / "e.json")
    assert [(d.bbox, d.score) for d in again[7]] == [(d.bbox, d.score) for d in dets[7]]


# ------------------------------------------------------------------------------------------------ bad input


def _write(tmp_path: Path, obj, name: str = "bad.json") -> Path:
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def _expect_error(path: Path, fragment: str, reader=pt.read_annotations) -> DataError:
    with pytest.raises(DataError) as info:
        reader(path)
    assert str(path) in str(info.value), info.value
    assert fragment in str(info.value), info.value
    return info.value


def test_truncated_and_malformed_json(tmp_path):
    good = json.dumps(pt.posetrack18_dict([_toy_video(2)]))
    _expect_error(_write(tmp_path, good[: len(good) // 2]), "malformed or truncated JSON")
    _expect_error(_write(tmp_path, "", "empty.json"), "empty")
    _expect_error(tmp_path / "missing.json", "not found")
    _expect_error(_write(tmp_path, [1, 2, 3], "list.json"), "unrecognised annotation format")
    _expect_error(_write(tmp_path, {"images": 3}, "x.json"), "unrecognised")
    _expect_error(_write(tmp_path, {"annolist": 5}, "y.json"), "annolist")
    _expect_error(tmp_path / "missing.json", "not found", reader=pt.read_detections)
    _expect_error(_write(tmp_path, {"a": 1}, "d.json"), "JSON list", reader=pt.read_detections)
    empty_dir = tmp_path / "empty_dir"
    empty_dir.mkdir()
    _expect_error(empty_dir, "no .json")


def test_unknown_keypoint_layout(tmp_path):
    data = pt.posetrack18_dict([_toy_video(2)])
    data["annotations"][0]["keypoints"] = data["annotations"][0]["keypoints"][:39]  # 13 joints
    _expect_error(_write(tmp_path, data), "unknown keypoint layout: 13 joints")
    data = pt.posetrack18_dict([_toy_video(2)])
    data["annotations"][0]["keypoints"] = data["annotations"][0]["keypoints"][:50]
    _expect_error(_write(tmp_path, data, "b.json"), "not a multiple of 3")
    data = pt.posetrack18_dict([_toy_video(2)])
    data["categories"][0]["keypoints"] = ["a", "b", "c"]
    _expect_error(_write(tmp_path, data, "c.json"), "unknown keypoint layout")
    pt17 = {"annolist": [{"image": [{"name": "a/b/0001.jpg"}], "annorect": [
        {"annopoints": [{"point": [{"id": [15], "x": [1], "y": [2]}]}]}]}]}  # fmt: skip
    _expect_error(_write(tmp_path, pt17, "d.json"), "unknown keypoint layout")


def test_degenerate_boxes_are_a_counted_skip(tmp_path):
    data = pt.posetrack18_dict([_toy_video(2)])
    data["annotations"][0]["bbox"] = [1, 2, 0, 5]
    data["annotations"][1]["bbox"] = [1, 2, 5, -3]
    skipped: Counter = Counter()
    video = pt.read_annotations(_write(tmp_path, data, "box.json"), skipped)[0]
    assert skipped == Counter(degenerate_bbox=2)
    persons = video.frames[0].persons
    assert persons[0].bbox is None and persons[1].bbox is None
    assert persons[0].box_from_keypoints() is not None  # what the dataset falls back to
    pt.write_posetrack18(video, tmp_path / "out.json")  # the original values are written back unchanged
    written = json.loads((tmp_path / "out.json").read_text())
    assert [a["bbox"] for a in written["annotations"][:2]] == [[1, 2, 0, 5], [1, 2, 5, -3]]
    assert_same_videos([video], pt.read_posetrack18(tmp_path / "out.json"))


def test_bad_boxes_and_references(tmp_path):
    data = pt.posetrack18_dict([_toy_video(2)])
    data["annotations"][0]["bbox"] = [1, 2, 3]
    _expect_error(_write(tmp_path, data, "box3.json"), "bbox must be")
    data = pt.posetrack18_dict([_toy_video(2)])
    data["annotations"][0]["image_id"] = 123
    _expect_error(_write(tmp_path, data, "ref.json"), "matches no image")
    data = pt.posetrack18_dict([_toy_video(2)])
    data["images"][0]["ignore_regions_y"] = []
    data["images"][0]["ignore_regions_x"] = [[1, 2, 3]]
    _expect_error(_write(tmp_path, data, "ign.json"), "ignore_regions")


def test_keypoints_outside_image(tmp_path):
    data = pt.posetrack18_dict([_toy_video(2)])
    data["annotations"][0]["keypoints"][0] = 320 * 3  # x far right of a 320-wide image
    _expect_error(_write(tmp_path, data), "outside the 320x240 image")
    data = pt.posetrack18_dict([_toy_video(2)])
    data["annotations"][0]["keypoints"][0] = 330  # slightly past the border: annotators do that; kept
    video = pt.read_posetrack18(_write(tmp_path, data, "ok.json"))[0]
    assert video.frames[0].persons[0].keypoints[0, 0] == 330


def test_non_finite_values(tmp_path):
    data = pt.posetrack18_dict([_toy_video(2)])
    text = json.dumps(data).replace('"keypoints": [', '"keypoints": [NaN, ', 1)
    text = text.replace("NaN, ", "", 1)  # sanity: without NaN it parses
    assert pt.read_posetrack18(_write(tmp_path, text, "fine.json"))
    data["annotations"][0]["keypoints"][3] = float("nan")
    _expect_error(_write(tmp_path, json.dumps(data), "nan.json"), "NaN")
    rows = [{"image_id": 1, "bbox": [1, 2, 3, 4], "score": "high"}]
    _expect_error(_write(tmp_path, rows, "det.json"), "must be numbers", reader=pt.read_detections)
