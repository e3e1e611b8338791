"""Issue 11: annotators' round trip. One test (at least) per case 1-7 of the issue, each failing on the code before
the fix: bounded propagation, files that list every frame, COCO output ids and visibility, CVAT's COCO
attributes and tracks without ids, CVAT XML and Label Studio, the Python API, and scoring files without head
boxes; plus the CVAT XML and CVAT COCO round trips."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO, shared_data

from stdpose.cli import main
from stdpose.data.formats import read_annotations, write_annotations, write_coco_keypoints, write_posetrack18
from stdpose.data.records import Frame, Person, Video
from stdpose.errors import DataError
from stdpose.propagation.methods import get_propagator
from stdpose.propagation.protocol import evaluate_propagators
from stdpose.propagation.tracks import segment_plan

FIXTURES = Path(__file__).parent / "fixtures"
CVAT_XML = FIXTURES / "cvat_video_skeleton.xml"


def walker(x: float, y: float = 100.0, track_id: int | None = 1, head: bool = True) -> Person:
    """A 17-slot pose around (x, y), ears unannotated; a head box and a body box."""
    kps = np.zeros((17, 3))
    kps[:, 0] = x + np.linspace(-10, 10, 17)
    kps[:, 1] = y + np.linspace(-40, 40, 17)
    kps[:, 2] = 1
    kps[3:5] = 0
    return Person(kps, track_id=track_id, bbox=(x - 15, y - 45, 30, 90),
                  bbox_head=(x - 6, y - 45, 12, 14) if head else None)


def video_with(n: int, labels: dict[int, list[Person]], name: str = "clip") -> Video:
    frames = [Frame(i, f"images/{name}/{i:06d}.jpg", image_id=1000 + i, frame_id=1000 + i) for i in range(n)]
    for i, persons in labels.items():
        frames[i].persons = persons
        frames[i].is_labeled = True
    return Video(name, frames, vid_id="000001")


def cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def frame_folder(path: Path, n: int, size: tuple[int, int] = (320, 240)) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(path / f"{i:06d}.png"), rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    return path


# ---------------------------------------------------------------------------------------------------------- case 1


def test_case1_bounded_by_default_and_counted():
    video = video_with(30, {3: [walker(50)], 10: [walker(120)]})
    out = get_propagator("linear").propagate(video, None, [3, 10])
    filled = [f.index for f in out.frames if not f.is_labeled and f.persons]
    assert filled == list(range(4, 10))  # nothing before frame 3 or after frame 10
    summary = out.extra["propagation"]
    assert summary["left_out_before_first"] == 3 and summary["left_out_after_last"] == 19


def test_case1_extend_fills_n_frames_with_falling_scores():
    video = video_with(30, {3: [walker(50)], 10: [walker(120)]})
    out = get_propagator("linear", extend=4).propagate(video, None, [3, 10])
    filled = [f.index for f in out.frames if not f.is_labeled and f.persons]
    assert filled == [0, 1, 2, *range(4, 10), 11, 12, 13, 14]
    tail = [out.frames[i].persons[0].score for i in (11, 12, 13, 14)]
    assert all(a > b for a, b in zip(tail, tail[1:]))
    assert out.extra["propagation"]["left_out_after_last"] == 15


def test_case1_posewarper_protocol_scores_are_those_of_unbounded_propagation():
    rng = np.random.default_rng(3)
    videos = []
    for k in range(3):
        xs = 40 + np.cumsum(rng.normal(3, 2, 24))
        videos.append(video_with(24, {i: [walker(float(xs[i]), track_id=1)] for i in range(24)}, name=f"v{k}"))
    bounded = evaluate_propagators(videos, None, {"linear": get_propagator("linear")}, 7)["linear"]
    unbounded = evaluate_propagators(videos, None, {"linear": get_propagator("linear", extend=1000)}, 7)["linear"]
    assert bounded.counts["pred_persons"] == unbounded.counts["pred_persons"] > 0
    assert bounded.groups == unbounded.groups


def test_case1_command_reports_the_left_out_pairs(tmp_path, capsys):
    labels = tmp_path / "l.json"
    write_posetrack18(video_with(30, {3: [walker(50)], 10: [walker(120)]}), labels)
    rc, text, err = cli(capsys, "propagate", "--labels", labels, "--method", "linear", "--out", tmp_path / "o.json")
    assert rc == 0, err
    assert "3 (track, frame) pair(s) before a track's first label and 19 after its last label" in text
    out = read_annotations(tmp_path / "o.json")[0]
    assert sum(len(f.persons) for f in out.frames if not f.is_labeled) == 6


# ---------------------------------------------------------------------------------------------------------- case 2


def test_case2_coco_file_listing_every_frame_propagates(tmp_path, capsys):
    video = video_with(15, {0: [walker(50)], 7: [walker(90)], 14: [walker(130)]})
    for f in video.frames:
        f.is_labeled = True  # a COCO file has no is_labeled: every listed image looks labeled to a naive reader
    coco = tmp_path / "every_frame.json"
    write_coco_keypoints(video, coco, layout="posetrack")
    assert "is_labeled" not in coco.read_text()
    assert read_annotations(coco)[0].labeled_indices() == [0, 7, 14]
    rc, text, err = cli(capsys, "propagate", "--labels", coco, "--method", "linear", "--out", tmp_path / "o.json")
    assert rc == 0, err
    assert text.startswith("linear: 12 propagated pose(s)")


def test_case2_posetrack18_nframes_larger_than_the_image_list(tmp_path, capsys):
    sparse = video_with(22, {0: [walker(50)], 7: [walker(90)], 14: [walker(130)], 21: [walker(170)]})
    sparse.frames = [f for f in sparse.frames if f.is_labeled]
    for k, f in enumerate(sparse.frames):
        f.index, f.extra["nframes"] = k, 22
    labels = tmp_path / "sparse.json"
    write_posetrack18(sparse, labels)
    rc, text, err = cli(capsys, "propagate", "--labels", labels, "--method", "linear", "--out", tmp_path / "o.json")
    assert rc == 0, err
    assert text.startswith("linear: 18 propagated pose(s)")
    out = read_annotations(tmp_path / "o.json")[0]
    assert out.num_frames == 22 and out.labeled_indices() == [0, 7, 14, 21]


def test_case2_posetrack18_without_is_labeled(tmp_path, capsys):
    video = video_with(10, {0: [walker(50)], 9: [walker(90)]})
    data = json.loads(json.dumps(__import__("stdpose.data.formats", fromlist=["x"]).posetrack18_dict([video])))
    for im in data["images"]:
        del im["is_labeled"]
    (tmp_path / "nolabel.json").write_text(json.dumps(data))
    rc, text, err = cli(capsys, "propagate", "--labels", tmp_path / "nolabel.json", "--method", "linear",
                        "--out", tmp_path / "o.json")
    assert rc == 0, err
    assert text.startswith("linear: 8 propagated pose(s)")
    for im in data["images"]:
        im["is_labeled"] = False
    (tmp_path / "false.json").write_text(json.dumps(data))
    rc, text, err = cli(capsys, "propagate", "--labels", tmp_path / "false.json", "--method", "linear",
                        "--out", tmp_path / "o2.json")
    assert rc == 2 and "is_labeled" in err and "2 frame(s) hold persons" in err
    assert len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------------------- case 3


def test_case3_coco_output_ids_unique_and_input_ids_kept_and_v2(tmp_path, capsys):
    video = video_with(22, {0: [walker(50)], 7: [walker(90)], 14: [walker(130)], 21: [walker(170)]})
    video.frames = [f for f in video.frames if f.is_labeled]
    for k, f in enumerate(video.frames):
        f.index, f.image_id = k, k + 1  # input image ids 1..4
        f.persons[0].extra["id"] = 10 + k  # annotation ids 10..13
    coco = tmp_path / "sparse_coco.json"
    write_coco_keypoints(video, coco, layout="posetrack")
    folder = frame_folder(tmp_path / "frames", 22)
    rc, text, err = cli(capsys, "propagate", "--video", folder, "--labels", coco, "--method", "linear",
                        "--out", tmp_path / "o.json")
    assert rc == 0, err
    data = json.loads((tmp_path / "o.json").read_text())
    image_ids = [im["id"] for im in data["images"]]
    ann_ids = [a["id"] for a in data["annotations"]]
    assert len(set(image_ids)) == len(image_ids) == 22
    assert len(set(ann_ids)) == len(ann_ids) == 4 + 18
    by_name = {im["file_name"]: im["id"] for im in data["images"]}
    assert [by_name[f"images/clip/{i:06d}.jpg"] for i in (0, 7, 14, 21)] == [1, 2, 3, 4]
    labels = [a for a in data["annotations"] if not a.get("propagated")]
    assert sorted(a["id"] for a in labels) == [10, 11, 12, 13]
    propagated = [a for a in data["annotations"] if a.get("propagated")]
    assert {v for a in propagated for v in a["keypoints"][2::3]} == {0, 2}
    from pycocotools.coco import COCO

    index = COCO()
    index.dataset = copy.deepcopy(data)
    index.createIndex()  # pycocotools keeps one annotation per id: all 22 must survive
    assert len(index.anns) == 22


# ---------------------------------------------------------------------------------------------------------- case 4


def cvat_coco(tmp_path: Path, with_track: bool = True) -> Path:
    """A CVAT-style COCO export: every frame listed, tracks in attributes, walkers moving 65 px per 7 frames."""
    images = [{"id": i + 1, "file_name": f"frame_{i:06d}.PNG", "width": 640, "height": 480} for i in range(15)]
    anns, aid = [], 1
    for i in (0, 7, 14):
        for tid, x0 in ((0, 100), (1, 400)):
            p = walker(x0 + 65 * i / 7, track_id=tid)
            coco = np.zeros((17, 3))
            from stdpose.skeleton import COCO_TO_POSETRACK

            for slot, src in enumerate(COCO_TO_POSETRACK):
                if src >= 0:
                    coco[src] = p.keypoints[slot] * [1, 1, 2]
            ann = {"id": aid, "image_id": i + 1, "category_id": 1, "keypoints": coco.reshape(-1).tolist(),
                   "bbox": list(p.bbox), "area": 2700.0, "iscrowd": 0, "num_keypoints": 15,
                   "attributes": {"occluded": False, "keyframe": True}}
            if with_track:
                ann["attributes"]["track_id"] = tid
            anns.append(ann)
            aid += 1
    anns.append({"id": aid, "image_id": 4, "category_id": 1, "keypoints": [1.0, 1.0, 2] * 17, "bbox": [0, 0, 5, 5],
                 "area": 25.0, "iscrowd": 0, "attributes": {"occluded": False, "keyframe": False, "track_id": 0}})
    from stdpose.data.formats import COCO_CATEGORY

    path = tmp_path / "cvat_coco.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": [COCO_CATEGORY]}))
    return path


def test_case4_cvat_coco_track_ids_from_attributes_make_linear_interpolate(tmp_path, capsys):
    path = cvat_coco(tmp_path)
    video = read_annotations(path)[0]
    assert video.labeled_indices() == [0, 7, 14]
    assert [p.track_id for p in video.frames[7].persons] == [0, 1]
    assert "_cvat_interpolated" in video.frames[3].extra  # CVAT's own keyframe=false pose: not a label
    rc, text, err = cli(capsys, "propagate", "--labels", path, "--method", "linear", "--out", tmp_path / "o.json")
    assert rc == 0, err
    assert "had no (or a duplicate) track id" not in text
    out = read_annotations(tmp_path / "o.json")[0]
    mid = {p.track_id: p for p in out.frames[3].persons}
    assert set(mid) == {0, 1}
    expected_x = 100 + 65 * 3 / 7  # interpolated, not a copy of the nearer label
    assert mid[0].keypoints[0, 0] == pytest.approx(expected_x - 10, abs=1e-6)
    data = json.loads((tmp_path / "o.json").read_text())
    prop = [a for a in data["annotations"] if a.get("propagated")]
    assert all(a["attributes"]["track_id"] in (0, 1) and a["attributes"]["keyframe"] for a in prop)
    assert not any(a["attributes"].get("keyframe") is False for a in data["annotations"])  # replaced


def moving_textures(n: int, step: float) -> list[np.ndarray]:
    """Two textured patches: one moving right by `step` px per frame, one moving left."""
    rng = np.random.default_rng(1)
    tex = [cv2.GaussianBlur(rng.integers(0, 256, (100, 50), dtype=np.uint8), (0, 0), 2) for _ in range(2)]
    bg = cv2.GaussianBlur(rng.integers(0, 256, (240, 480), dtype=np.uint8), (0, 0), 3) // 4
    out = []
    for t in range(n):
        img = bg.copy()
        for k, (x0, v) in enumerate(((60, step), (360, -step))):
            x = int(round(x0 + v * t))
            img[60:160, x:x + 50] = tex[k]
        out.append(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    return out


def test_case4_untracked_people_are_matched_by_flow_compensated_pose_not_box_overlap():
    step = 9.0  # 63 px between labels 7 frames apart, boxes 30 px wide: no box overlap at all
    frames = moving_textures(8, step)
    video = video_with(8, {0: [walker(85, 110, None), walker(385, 110, None)],
                           7: [walker(385 - 7 * step, 110, None), walker(85 + 7 * step, 110, None)]})
    plan = segment_plan(video, [0, 7], frames=frames)
    assert plan.summary.matched_untracked == 2
    assert plan.track_ids[0] == [plan.track_ids[7][1], plan.track_ids[7][0]]  # the people swapped places in the list
    assert all(m["cost"] < 0.5 and "optical flow" in m["motion"] for m in plan.summary.matches)
    # without frames there is no motion compensation: refused with a note, new tracks instead of a wrong match
    blind = segment_plan(video, [0, 7])
    assert blind.summary.matched_untracked == 0 and len(set(blind.track_ids[0]) | set(blind.track_ids[7])) == 4


def test_case4_ambiguous_matches_are_refused_with_a_note():
    video = video_with(8, {0: [walker(100, track_id=None), walker(104, track_id=None)],
                           7: [walker(102, track_id=None), walker(101, track_id=None)]})
    plan = segment_plan(video, [0, 7])
    assert plan.summary.matched_untracked == 0 and plan.summary.refused_matches >= 1
    assert any("ambiguous" in m for m in plan.summary.messages)


def test_case4_still_people_without_ids_are_matched_with_their_cost():
    video = video_with(8, {0: [walker(100, track_id=None), walker(300, track_id=None)],
                           7: [walker(301, track_id=None), walker(101, track_id=None)]})
    plan = segment_plan(video, [0, 7])
    assert plan.summary.matched_untracked == 2
    assert plan.track_ids[7] == [plan.track_ids[0][1], plan.track_ids[0][0]]
    assert all(0 <= m["cost"] < 0.1 for m in plan.summary.matches)


# ---------------------------------------------------------------------------------------------------------- case 5


def test_case5_cvat_xml_is_read_with_per_track_keyframes():
    video = read_annotations(CVAT_XML)[0]
    assert video.num_frames == 12 and video.labeled_indices() == [0, 4, 6, 11]
    assert video.extra["cvat_node_map"]["name"] == "coco"
    assert [p.track_id for p in video.frames[4].persons] == [1]
    assert video.frames[4].extra["_unlabeled_tracks"] == [0]  # track 0 has no keyframe there: not a label
    a6 = video.frames[6].persons[0]
    assert a6.track_id == 0 and a6.keypoints[0, :2].tolist() == [120.0, 80.0]
    assert a6.extra["_cvat_occluded"] == [9]  # left_wrist slot
    assert not a6.keypoints[3:5, 2].any()  # ears outside
    out = get_propagator("linear").propagate(video, None, video.labeled_indices())
    on4 = {p.track_id: p for p in out.frames[4].persons}
    assert not on4[1].propagated and on4[0].propagated  # frame 4 is labeled for track 1 only
    assert on4[0].keypoints[0, 0] == pytest.approx(60 + (120 - 60) * 4 / 6)
    # track 1 leaves (all-outside keyframe on 9): absent on 11, one-sided after 4; nothing after frame 11
    assert {p.track_id for p in out.frames[8].persons} == {0, 2}
    assert 2 not in {p.track_id for p in out.frames[2].persons}


def test_case5_cvat_xml_from_the_command_and_label_studio_refused(tmp_path, capsys):
    rc, text, err = cli(capsys, "propagate", "--labels", CVAT_XML, "--method", "linear", "--out", tmp_path / "o.xml")
    assert rc == 0, err
    back = read_annotations(tmp_path / "o.xml")[0]
    assert back.num_frames == 12 and all(f.is_labeled for f in back.frames if f.persons)  # every pose a keyframe
    studio = [{"id": 1, "data": {"video": "/data/clip.mp4"},
               "annotations": [{"result": [{"type": "videorectangle", "value": {"sequence": []}}]}]}]
    (tmp_path / "ls.json").write_text(json.dumps(studio))
    rc, text, err = cli(capsys, "propagate", "--labels", tmp_path / "ls.json", "--method", "linear",
                        "--out", tmp_path / "o2.json")
    assert rc == 2 and "Label Studio" in err and "videorectangle" in err and "ls.json" in err


def test_cvat_bad_input_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.xml"
    bad.write_text(CVAT_XML.read_text().replace('<points label="nose" ', '<points label="nozzle" '))
    rc, _, err = cli(capsys, "propagate", "--labels", bad, "--method", "linear", "--out", tmp_path / "o.xml")
    assert rc == 2 and "nozzle" in err and "--cvat-map" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "cut.xml").write_text(CVAT_XML.read_text()[:3000])
    rc, _, err = cli(capsys, "propagate", "--labels", tmp_path / "cut.xml", "--method", "linear",
                     "--out", tmp_path / "o.xml")
    assert rc == 2 and "malformed or truncated XML" in err
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"nozzle": "nose", **{n: (n if n not in ("left_eye", "right_eye") else None)
                                                         for n in __import__("stdpose.skeleton").skeleton.COCO_NAMES
                                                         if n != "nose"}}))
    rc, _, err = cli(capsys, "propagate", "--labels", bad, "--method", "linear", "--cvat-map", mapping,
                     "--out", tmp_path / "o.xml")
    assert rc == 0, err


def poses(video: Video) -> dict[tuple[int, int], np.ndarray]:
    return {(f.index, p.track_id): p.keypoints.copy() for f in video.frames for p in f.persons}


def test_cvat_xml_round_trip_gives_the_same_poses(tmp_path):
    first = read_annotations(CVAT_XML)[0]
    write_annotations(first, tmp_path / "a.xml")
    second = read_annotations(tmp_path / "a.xml")[0]
    assert second.labeled_indices() == first.labeled_indices()
    a, b = poses(first), poses(second)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert second.frames[6].persons[0].extra["_cvat_occluded"] == [9]
    assert second.frames[6].persons[0].extra["_cvat_nodes"] == first.frames[6].persons[0].extra["_cvat_nodes"]
    # propagated output -> CVAT XML -> stdpose: same poses, every filled frame a keyframe, attributes kept
    out = get_propagator("linear").propagate(first, None, first.labeled_indices())
    out.frames[2].persons[0].extra.update(review=True, review_joints=[9, 10])
    write_annotations(out, tmp_path / "b.xml")
    text = (tmp_path / "b.xml").read_text()
    assert 'keyframe="0"' not in text and '<attribute name="propagated">true</attribute>' in text
    back = read_annotations(tmp_path / "b.xml")[0]
    c, d = poses(out), poses(back)
    assert c.keys() == d.keys() and all(np.allclose(c[k], d[k], atol=0.005) for k in c)
    assert back.frames[2].persons[0].propagated and back.frames[2].persons[0].extra["method"] == "linear"
    assert back.frames[2].persons[0].extra["review_joints"] == [9, 10]
    write_annotations(back, tmp_path / "c.xml")
    assert (tmp_path / "c.xml").read_text() == text  # stable from the second write on


def test_cvat_coco_round_trip_gives_the_same_poses(tmp_path):
    first = read_annotations(cvat_coco(tmp_path))[0]
    write_annotations(first, tmp_path / "a.json")
    raw = json.loads((tmp_path / "a.json").read_text())
    assert all("track_id" not in a for a in raw["annotations"])  # still only in attributes, as CVAT wrote it
    assert sum(a["attributes"].get("keyframe") is False for a in raw["annotations"]) == 1  # kept on a plain trip
    second = read_annotations(tmp_path / "a.json")[0]
    a, b = poses(first), poses(second)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert second.labeled_indices() == [0, 7, 14]


# ---------------------------------------------------------------------------------------------------------- case 6


def test_case6_python_api_aligns_a_sparse_file_itself(tmp_path):
    import stdpose

    sparse = video_with(22, {0: [walker(50)], 7: [walker(90)], 14: [walker(130)], 21: [walker(170)]})
    sparse.frames = [f for f in sparse.frames if f.is_labeled]
    for k, f in enumerate(sparse.frames):
        f.index = k
    labels = tmp_path / "sparse.json"
    write_posetrack18(sparse, labels)
    folder = frame_folder(tmp_path / "frames", 22)
    out = stdpose.propagate(folder, labels, method="linear")
    assert out.num_frames == 22 and out.labeled_indices() == [0, 7, 14, 21]
    assert out.frames[3].persons[0].propagated
    assert out.frames[3].persons[0].keypoints[0, 0] == pytest.approx(50 - 10 + 40 * 3 / 7)
    same = stdpose.propagate(folder, read_annotations(labels)[0], method="nearest")  # a Video works too
    assert same.frames[3].persons[0].keypoints[0, 0] == pytest.approx(40)


def readme_block(heading: str) -> str:
    text = (REPO / "README.md").read_text()
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_case6_readme_python_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    frame_folder(tmp_path / "frames", 12)
    shutil.copy(CVAT_XML, tmp_path / "annotations.xml")
    code = readme_block("From CVAT and back")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the documented example, as a user runs it
    back = read_annotations(tmp_path / "annotations_filled.xml")[0]
    assert sum(p.propagated for f in back.frames for p in f.persons) > 0


# ---------------------------------------------------------------------------------------------------------- case 7


def full_labels(tmp_path: Path, head: bool) -> Path:
    rng = np.random.default_rng(5)
    xs = 60 + np.cumsum(rng.normal(4, 1, 20))
    video = video_with(20, {i: [walker(float(xs[i]), track_id=1, head=head)] for i in range(20)})
    path = tmp_path / ("head.json" if head else "nohead.json")
    write_posetrack18(video, path)
    return path


def test_case7_eval_without_head_boxes_uses_the_named_fallback(tmp_path, capsys):
    labels = full_labels(tmp_path, head=False)
    rc, text, err = cli(capsys, "propagate", "--labels", labels, "--method", "linear", "--interval", "7", "--eval",
                        "--out", tmp_path / "o.json")
    assert rc == 0, err
    assert "NO head boxes - fallback from head_top-head_bottom for 17 person(s)" in text and "Mean" in text
    with_heads = full_labels(tmp_path, head=True)
    rc, text, err = cli(capsys, "propagate", "--labels", with_heads, "--method", "linear", "--interval", "7",
                        "--eval", "--out", tmp_path / "o2.json")
    assert rc == 0 and "head size: head boxes (poseval)" in text and "fallback" not in text


def test_case7_eval_checks_before_any_work(tmp_path, capsys):
    labels = full_labels(tmp_path, head=False)
    out = tmp_path / "never.json"
    rc, text, err = cli(capsys, "propagate", "--labels", labels, "--method", "linear", "--interval", "7", "--eval",
                        "--head-size", "box", "--out", out)
    assert rc == 2 and "bbox_head" in err and "--head-size auto" in err
    assert not out.exists() and text == ""  # refused before propagating or writing anything


def test_case7_evaluate_coco_accepts_the_tools_own_coco_output(tmp_path, capsys):
    video = video_with(15, {i: [walker(50 + 5 * i)] for i in range(15)})
    gt = tmp_path / "gt.json"
    write_coco_keypoints(video, gt)
    rc, _, err = cli(capsys, "propagate", "--labels", gt, "--method", "linear", "--interval", "7",
                     "--out", tmp_path / "pred.json")
    assert rc == 0, err
    rc, text, err = cli(capsys, "evaluate", "--format", "coco", "--gt", gt, "--pred", tmp_path / "pred.json")
    assert rc == 0, err
    values = text.strip().splitlines()[1].split()
    assert float(values[0]) > 50  # AP of slowly moving, interpolated poses against the full labels


# ------------------------------------------------------------------------------------------------------ real data


@pytest.mark.realdata
def test_vtest_hand_labels_through_cvat_and_back(tmp_path, capsys):
    src = shared_data("vtest_hand", "vtest_keyframes_pt18.json")
    rc, _, err = cli(capsys, "convert", "--labels", src, "--out", tmp_path / "keys.xml")
    assert rc == 0, err
    rc, text, err = cli(capsys, "propagate", "--labels", tmp_path / "keys.xml", "--method", "linear",
                        "--out", tmp_path / "filled.xml")
    assert rc == 0, err
    assert text.startswith("linear: 63 propagated pose(s)") and "3092 after its last label" in text
    back = read_annotations(tmp_path / "filled.xml")[0]
    assert sum(len(f.persons) for f in back.frames) == 63 + 14
    with pytest.raises(DataError):
        read_annotations(tmp_path / "missing.xml")


def test_convert_to_cvat_with_a_yaml_node_map_and_back(tmp_path, capsys):
    video = video_with(10, {0: [walker(50)], 9: [walker(90)]})
    labels = tmp_path / "l.json"
    write_posetrack18(video, labels)
    names = {slot: f"p{k}" for k, slot in enumerate(__import__("stdpose.skeleton").skeleton.POSETRACK_SLOTS)}
    nodes = tmp_path / "nodes.yaml"
    nodes.write_text("".join(f"{cvat}: {slot}\n" for slot, cvat in names.items()))
    rc, text, err = cli(capsys, "convert", "--labels", labels, "--out", tmp_path / "k.xml", "--cvat-map", nodes)
    assert rc == 0, err
    assert text.startswith("2 labeled pose(s) on 2 labeled frame(s) of 10")
    assert '<points label="p0"' in (tmp_path / "k.xml").read_text()
    back = read_annotations(tmp_path / "k.xml", node_map=nodes)[0]
    a, b = poses(video), poses(back)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(DataError, match="neither PoseTrack18 slot names nor COCO-17"):
        read_annotations(tmp_path / "k.xml")


def test_evaluate_command_head_size_fallback_only_on_request(tmp_path, capsys):
    gt = full_labels(tmp_path, head=False)
    rc, _, err = cli(capsys, "evaluate", "--gt", gt, "--pred", gt)
    assert rc == 2 and "--head-size auto" in err
    rc, text, err = cli(capsys, "evaluate", "--gt", gt, "--pred", gt, "--head-size", "auto")
    assert rc == 0, err
    assert "fallback from head_top-head_bottom for 20 person(s)" in text and "100.0" in text


def test_protocol_extends_exactly_to_its_farthest_scored_frame():
    from stdpose.propagation.protocol import kept_and_scored, scored_reach

    kept, scored = kept_and_scored(list(range(30)), 7, "posewarper")
    assert kept == [3, 10, 17, 24, 29] and scored_reach(kept, scored) == 3
    kept, scored = kept_and_scored(list(range(22)), 5, "every")
    assert kept == [0, 5, 10, 15, 20] and scored_reach(kept, scored) == 1
    assert scored_reach([0, 7, 14, 21], [10, 17]) == 0 and scored_reach([], [1]) == 0


def test_one_detect_format_for_every_input(tmp_path):
    from stdpose.data.formats import detect_format

    coco = cvat_coco(tmp_path)
    assert detect_format(CVAT_XML) == "cvat_video" and detect_format(coco) == "coco"
    assert detect_format(json.loads(coco.read_text())) == "coco"
    assert detect_format([{"data": {}, "annotations": []}]) == "label_studio"
    assert detect_format({"something": 1}) == "unknown"


def test_convert_never_writes_over_its_input(tmp_path, capsys, monkeypatch):
    video = video_with(10, {0: [walker(50)], 9: [walker(90)]})
    labels = tmp_path / "l.json"
    write_posetrack18(video, labels)
    before = labels.read_bytes()
    monkeypatch.chdir(tmp_path)
    for out in ("./l.json", str(tmp_path / "sub" / ".." / "l.json")):
        rc, _, err = cli(capsys, "convert", "--labels", "l.json", "--out", out, "--out-format", "coco")
        assert rc == 2 and "--out" in err and "--labels" in err and len(err.strip().splitlines()) == 1, err
    assert labels.read_bytes() == before


def test_posetrack17_output_refuses_several_videos(tmp_path):
    from stdpose.errors import ConfigError

    videos = [video_with(4, {0: [walker(50)]}), video_with(4, {0: [walker(60)]})]
    videos[1].name = "other"
    with pytest.raises(ConfigError, match="one video per file, got 2"):
        write_annotations(videos, tmp_path / "two.json", "posetrack17")
    assert not (tmp_path / "two.json").exists()


def test_head_size_plan_checks_the_frames_that_are_scored():
    """poseval scores every frame with persons, labeled or not: a head box on an unlabeled frame next to labeled
    persons without one is a mixed yardstick, refused; with labeled_only that frame is not scored, so it is fine."""
    from stdpose.eval.head_size import head_size_plan

    video = video_with(3, {0: [walker(50, head=False)], 1: [walker(60, head=False)]})
    video.frames[2].persons = [walker(70, head=True)]  # unlabeled, but evaluated
    with pytest.raises(DataError, match="while 1 other"):
        head_size_plan([video], "auto")
    use_fallback, note = head_size_plan([video], "auto", labeled_only=True)
    assert use_fallback and "for 2 person(s)" in note


def test_propagate_cli_out_format_and_extend(tmp_path, capsys):
    """One video: --out-format picks the writer whatever the --out name; --extend N fills N frames past the labels."""
    video = video_with(12, {2: [walker(50)], 6: [walker(70)]})
    labels = tmp_path / "l.json"
    write_posetrack18(video, labels)
    out = tmp_path / "filled.json"
    rc, _, err = cli(capsys, "propagate", "--labels", labels, "--method", "linear", "--extend", "2",
                     "--out-format", "coco", "--out", out)
    assert rc == 0, err
    data = json.loads(out.read_text())
    assert "images" in data and "annotations" in data and "annolist" not in data  # COCO, not PoseTrack18
    back = read_annotations(out)[0]
    filled = sorted(f.index for f in back.frames if f.persons)
    assert filled == list(range(0, 9))  # labels 2..6, two frames before and after
