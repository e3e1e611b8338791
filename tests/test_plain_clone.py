"""What the realdata tests check, again on files the tests make, so a plain clone (no ../shared) tests it too.

OpenCV writes the videos (mp4v in .mp4: inter-coded, so a seek must land on the right frame, not a key frame);
the synthetic generator writes the PoseTrack18 files, with the fields real PoseTrack18 files carry added.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest_engine import tiny_synthetic_dir

from stdpose.cli import main
from stdpose.data import formats as pt
from stdpose.data.video import VideoFileReader, open_frames
from stdpose.errors import DataError
from stdpose.model import build_model

SIZE = (128, 96)  # (w, h)


def write_video(path: Path, frames: int, fourcc: str = "mp4v", fps: float = 25.0) -> Path:
    """A video whose frames all differ: a noise texture that slides one pixel per frame, and the frame number."""
    base = np.random.default_rng(0).integers(0, 255, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, SIZE)
    assert writer.isOpened(), f"OpenCV cannot write {fourcc}"
    for i in range(frames):
        image = np.roll(base, i, axis=1).copy()
        cv2.putText(image, str(i), (5, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (255, 255, 255), 3)
        writer.write(image)
    writer.release()
    return path


@pytest.fixture(scope="module")
def mp4(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", 150)


@pytest.fixture(scope="module")
def sequential(mp4) -> list[np.ndarray]:
    """Every frame decoded in order by a plain OpenCV capture: the reference for random access."""
    cap = cv2.VideoCapture(str(mp4))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


# ------------------------------------------------------------------------------------------------ video reader


def test_random_access_in_an_mp4_equals_sequential_decoding(mp4, sequential):
    reader = open_frames(mp4, cache_size=0)
    assert isinstance(reader, VideoFileReader) and len(reader) == len(sequential) == 150
    assert reader.size == SIZE and reader.fps == pytest.approx(25.0)
    # far forward (a seek), back to the start (reopen), backwards far from the start (a seek), short steps
    for i in (140, 3, 100, 0, 75, 149, 60, 61, 130, 99):
        np.testing.assert_array_equal(reader[i], sequential[i], err_msg=f"frame {i}")
    with pytest.raises(IndexError):
        reader[150]


def test_a_video_reader_pickles_mid_stream_and_the_copy_reads_the_same_frames(mp4, sequential):
    reader = open_frames(mp4, cache_size=2)
    reader[120]  # an open capture in the middle of the file
    clone = pickle.loads(pickle.dumps(reader))  # DataLoader workers get readers this way
    for i in (121, 5, 130):
        np.testing.assert_array_equal(clone[i], sequential[i])
        np.testing.assert_array_equal(reader[i], sequential[i])


def test_a_truncated_video_names_the_file_and_frame_for_the_frames_it_lost(tmp_path):
    full = write_video(tmp_path / "full.avi", 120, fourcc="MJPG")
    cut = tmp_path / "cut.avi"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    try:
        reader = open_frames(cut, cache_size=0)
    except DataError as exc:  # some OpenCV builds refuse the file at once: that is a clean failure too
        assert "cut.avi" in str(exc)
        return
    decoded, failed = [], []
    for i in range(0, len(reader), 10):
        try:
            assert reader[i].shape == (SIZE[1], SIZE[0], 3)
            decoded.append(i)
        except DataError as exc:
            assert "cut.avi" in str(exc) and f"frame {i}" in str(exc)
            failed.append(i)
    # the first half decodes; the lost half fails with the message (not with a black frame or a traceback)
    assert decoded and failed and max(decoded) < min(failed), (decoded, failed)


# ------------------------------------------------------------------------------------------------ label files


def _with_real_posetrack18_fields(data: dict) -> dict:
    """The synthetic file plus what real PoseTrack18 files hold and stdpose does not use (it must survive)."""
    for image in data["images"]:
        image["has_no_densepose"] = True
        image["mask_file"] = image["file_name"].replace("images/", "mask/")
    for ann in data["annotations"]:
        ann["scores"] = []
        ann["iscrowd"] = False
        ann["keypoints"] = [round(v) if k % 3 == 2 else v for k, v in enumerate(ann["keypoints"])]
    return data


def test_posetrack18_files_round_trip_losslessly(tmp_path_factory, tmp_path):
    src = sorted((tiny_synthetic_dir(tmp_path_factory) / "annotations" / "val").glob("*.json"))[0]
    original = _with_real_posetrack18_fields(json.loads(src.read_text()))
    path = tmp_path / src.name
    path.write_text(json.dumps(original))
    videos = pt.read_posetrack18(path)
    out = tmp_path / "written.json"
    pt.write_posetrack18(videos[0], out)
    written = json.loads(out.read_text())
    assert written["images"] == original["images"]
    assert written["annotations"] == original["annotations"]
    assert written["categories"] == original["categories"]


def _coco_file() -> dict:
    """A COCO keypoints file shaped like COCO val2017's: info, licenses, polygons, crowds, unannotated people."""
    rng = np.random.default_rng(3)
    images, annotations = [], []
    for n, image_id in enumerate((785, 872, 1000)):
        images.append({"license": 4, "file_name": f"{image_id:012d}.jpg", "coco_url": f"http://x/{image_id}.jpg",
                       "height": 425, "width": 640, "date_captured": "2013-11-19 21:22:42", "id": image_id})
        for k in range(2 + n):
            v = rng.choice([0, 1, 2], size=17, p=[0.2, 0.3, 0.5])
            xy = np.round(rng.uniform(10, 400, size=(17, 2)), 2)
            kps = [[float(x), float(y), int(vv)] if vv else [0, 0, 0] for (x, y), vv in zip(xy, v)]
            annotations.append({
                "segmentation": [[float(a) for a in rng.uniform(0, 400, 8).round(2)]],
                "num_keypoints": int((v > 0).sum()),
                "area": round(float(rng.uniform(100, 9000)), 3), "iscrowd": 0,
                "keypoints": [c for kp in kps for c in kp], "image_id": image_id,
                "bbox": [float(c) for c in rng.uniform(0, 300, 4).round(2)], "category_id": 1,
                "id": 1000 * image_id + k})
    annotations.append({"segmentation": {"counts": [5, 10, 5], "size": [425, 640]}, "num_keypoints": 0,
                        "area": 120.0, "iscrowd": 1, "keypoints": [0] * 51, "image_id": 872,
                        "bbox": [1.0, 2.0, 30.0, 40.0], "category_id": 1, "id": 9})
    annotations.sort(key=lambda a: a["image_id"])  # written back per image, in image order
    names = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
             "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
             "right_knee", "left_ankle", "right_ankle"]
    categories = [{"supercategory": "person", "id": 1, "name": "person", "keypoints": names,
                   "skeleton": [[16, 14], [14, 12], [17, 15], [15, 13]]}]
    return {"info": {"description": "test"}, "licenses": [{"id": 4, "name": "x"}], "categories": categories,
            "images": images, "annotations": annotations}


def test_coco_keypoints_files_round_trip_losslessly(tmp_path):
    original = _coco_file()
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(original))
    videos = pt.read_annotations(path)
    out = tmp_path / "written.json"
    pt.write_coco_keypoints(videos, out)
    written = json.loads(out.read_text())
    assert written["annotations"] == original["annotations"]
    assert written["images"] == original["images"]
    assert [written[k] for k in ("info", "licenses", "categories")] == [original[k] for k in ("info", "licenses",
                                                                                              "categories")]


# ---------------------------------------------------------------------------------- the README's first example


def test_propagate_a_video_file_as_in_the_readme(tmp_path_factory, tmp_path, capsys):
    """`stdpose propagate --video my_video.mp4 --labels labels.json --checkpoint model.ckpt --out ... --overlay ...`
    with labels that list only the labeled frames (numbered by their file names)."""
    tiny = tiny_synthetic_dir(tmp_path_factory)
    labels_src = sorted((tiny / "annotations" / "val").glob("*.json"))[0]
    video = pt.read_annotations(labels_src)[0]
    mp4 = tmp_path / "my_video.mp4"
    first = cv2.imread(str(tiny / video.frames[0].file_name))
    writer = cv2.VideoWriter(str(mp4), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, first.shape[1::-1])
    for frame in video.frames:
        writer.write(cv2.imread(str(tiny / frame.file_name)))
    writer.release()
    keep = [2, 9, 16]
    sparse = pt.read_annotations(labels_src)[0]
    sparse.frames = [f for f in sparse.frames if f.index in keep]
    labels = tmp_path / "labels.json"
    pt.write_posetrack18(sparse, labels)

    torch.manual_seed(0)
    config = {"model": {"backbone": "nano", "tff_depth": 1, "stda_depth": 1},
              "data": {"task": "propagation", "crop": "segment", "input_size": [64, 48], "sigma": 1.0}}
    model = build_model({**config["model"], "input_size": config["data"]["input_size"]})
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": {"model." + k: v for k, v in model.state_dict().items()},
                "hyper_parameters": {"config": config}}, ckpt)

    out, overlay = tmp_path / "labels_dense.json", tmp_path / "overlay.mp4"
    rc = main(["propagate", "--no-progress", "--video", str(mp4), "--labels", str(labels), "--checkpoint", str(ckpt),
               "--out", str(out), "--overlay", str(overlay)])
    text = capsys.readouterr()
    assert rc == 0, text.err
    assert "by the frame number in the file names" in text.out
    dense = pt.read_annotations(out)[0]
    assert dense.num_frames == video.num_frames  # expanded to every frame of the video file
    assert dense.labeled_indices() == keep
    for frame in dense.frames:
        source = video.frames[frame.index]
        assert frame.file_name == source.file_name
        if frame.index in keep:
            assert [p.track_id for p in frame.persons] == [p.track_id for p in source.persons]
            assert not any(p.propagated for p in frame.persons)
        elif keep[0] < frame.index < keep[-1]:
            assert frame.persons and all(p.propagated and p.scores is not None for p in frame.persons)
    cap = cv2.VideoCapture(str(overlay))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == video.num_frames
    cap.release()
