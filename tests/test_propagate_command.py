"""`stdpose propagate` end to end: outputs complete and valid, formats, every bad-input case, the real-video
fixtures, and the benchmark's quick mode."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO, run_propagate, shared_data

from stdpose.data.formats import read_annotations, write_coco_keypoints, write_posetrack18
from stdpose.model import build_model
from stdpose.propagation.tracks import segment_plan

FIXTURES = Path(__file__).parent / "fixtures"
CONFIG = {
    "model": {"backbone": "nano", "tff_depth": 1, "stda_depth": 1},
    "data": {"task": "propagation", "crop": "segment", "input_size": [64, 48], "sigma": 1.0},
}


@pytest.fixture(scope="module")
def clip(tiny_synthetic):
    """(frame folder, label file, Video) of the first tiny val video."""
    labels = sorted((tiny_synthetic / "annotations" / "val").glob("*.json"))[0]
    video = read_annotations(labels)[0]
    return tiny_synthetic / "images" / "val" / video.name, labels, video


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained nano model saved like `stdpose train` does (weights under model., config in hparams)."""
    torch.manual_seed(0)
    model = build_model({**CONFIG["model"], "input_size": CONFIG["data"]["input_size"]})
    path = tmp_path_factory.mktemp("ckpt") / "nano.ckpt"
    torch.save({"state_dict": {"model." + k: v for k, v in model.state_dict().items()},
                "hyper_parameters": {"config": CONFIG}}, path)
    return path


def _check_complete(out_file: Path, source, labeled: list[int], method: str, extend: int = 0) -> None:
    """Every frame present; labels kept; every covered (track, frame) has a propagated pose with scores."""
    out = read_annotations(out_file)[0]
    assert [f.file_name for f in out.frames] == [f.file_name for f in source.frames]
    assert out.labeled_indices() == labeled
    plan = segment_plan(source, labeled, extend=extend)
    covered = {(s.track_id, i) for s in plan.segments for i in s.frames}
    got = set()
    for frame in out.frames:
        if frame.is_labeled:
            assert len(frame.persons) == len(source.frames[frame.index].persons)
            assert not any(p.propagated for p in frame.persons)
            continue
        for p in frame.persons:
            assert p.propagated and p.extra.get("method") == method
            assert p.scores is not None and p.scores.shape == (17,) and p.annotated.sum() >= 2
            got.add((p.track_id, frame.index))
    assert got == covered and covered


# ------------------------------------------------------------------------------------------------ happy paths


def test_stdpose_interval_eval_overlay(clip, checkpoint, tmp_path, capsys):
    folder, labels, video = clip
    out, overlay = tmp_path / "out.json", tmp_path / "overlay.mp4"
    rc, text, err = run_propagate(capsys, "--video", folder, "--labels", labels, "--checkpoint", checkpoint,
                                  "--interval", 7, "--eval", "--out", out, "--overlay", overlay)
    assert rc == 0, err
    kept = [3, 10, 17, video.num_frames - 1]
    from stdpose.propagation.protocol import sparsify

    _check_complete(out, sparsify(video, 7)[0], kept, "stdpose", extend=3)  # protocol: 3 frames
    assert "PoseTrack mAP" in text and "Mean" in text and "backbone passes" in text
    written = Path(text.split("overlay video: ")[1].split(" (")[0])  # "PATH (codec, N frames ...)"
    assert written.exists() and written.stat().st_size > 0
    cap = cv2.VideoCapture(str(written))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == video.num_frames
    cap.release()


def test_baselines_need_no_video(clip, tmp_path, capsys):
    _, labels, video = clip
    out = tmp_path / "linear.json"
    rc, text, err = run_propagate(capsys, "--labels", labels, "--method", "linear", "--interval", 5, "--protocol",
                                  "every", "--eval", "--out", out)
    assert rc == 0, err
    from stdpose.propagation.protocol import sparsify

    sparse, _, kept = sparsify(video, 5, "every")
    assert kept == [0, 5, 10, 15, 20]
    _check_complete(out, sparse, kept, "linear", extend=video.num_frames - 1 - kept[-1])  # to the last scored
    assert "linear" in text.split("PoseTrack mAP")[1]


def test_detection_boxes(clip, tiny_synthetic, tmp_path, capsys):
    folder, labels, _ = clip
    dets = tiny_synthetic / "detections" / "val.json"
    out = tmp_path / "det.json"
    rc, text, err = run_propagate(capsys, "--video", folder, "--labels", labels, "--method", "linear", "--interval", 7,
                         "--detections", dets, "--out", out)
    assert rc == 0, err
    assert "detections:" in text and "ignored" in text  # the file also holds the other val video's boxes
    boxes = {tuple(np.round(d["bbox"], 3)) for d in json.loads(dets.read_text())}
    propagated = [p for f in read_annotations(out)[0].frames for p in f.persons if p.propagated]
    assert sum(tuple(np.round(p.bbox, 3)) in boxes for p in propagated) > len(propagated) // 2


def test_coco_labels_are_expanded_and_written_back_as_coco(clip, tmp_path, capsys):
    folder, _, video = clip
    from stdpose.data.records import Video

    labeled = [video.frames[i] for i in (3, 10)]
    coco_in = tmp_path / "labels_coco.json"
    write_coco_keypoints(Video(name="clip", frames=labeled), coco_in, layout="coco")
    out = tmp_path / "out_coco.json"
    rc, text, err = run_propagate(capsys, "--video", folder, "--labels", coco_in, "--method", "linear", "--out", out)
    assert rc == 0, err
    data = json.loads(out.read_text())
    assert len(data["images"]) == video.num_frames  # expanded to every frame of the video
    assert data["categories"][0]["keypoints"][1] == "left_eye"  # COCO layout kept
    propagated = [a for a in data["annotations"] if a.get("propagated")]
    assert propagated and all(len(a["keypoints"]) == 51 and len(a["scores"]) == 17 for a in propagated)
    names = {im["id"]: im["file_name"] for im in data["images"]}
    assert {Path(names[a["image_id"]]).name for a in propagated} >= {f"{i:06d}.jpg" for i in range(4, 10)}
    assert "expanded" in text


# ------------------------------------------------------------------------------------------------ bad input


def test_labels_reference_frames_the_video_lacks(clip, tmp_path, capsys):
    folder, labels, video = clip
    short = tmp_path / "short"
    short.mkdir()
    for i in range(15):
        (short / f"{i:06d}.jpg").symlink_to(folder / f"{i:06d}.jpg")
    out = tmp_path / "out.json"
    rc, text, err = run_propagate(capsys, "--video", short, "--labels", labels, "--method", "linear", "--interval", 7,
                         "--out", out)
    assert rc == 0, err
    assert "lacks" in text and "7 frame(s) of the labels are not in the video" in text
    result = read_annotations(out)[0]
    assert result.num_frames == video.num_frames
    assert all(f.persons for f in result.frames[4:10])  # propagated inside the video
    assert not any(p.propagated for f in result.frames[15:] for p in f.persons)  # nothing beyond it


def test_track_in_one_labeled_frame_only(clip, tmp_path, capsys):
    folder, _, video = clip
    import copy

    sparse = copy.deepcopy(video)
    for f in sparse.frames:  # labels at 4 and 18 only
        f.is_labeled = f.index in (4, 18)
        f.persons = f.persons if f.is_labeled else []
    first, last = sparse.frames[4], sparse.frames[18]
    gone = first.persons[0].track_id
    last.persons = [p for p in last.persons if p.track_id != gone]
    assert last.persons
    labels = tmp_path / "one_sided.json"
    write_posetrack18(sparse, labels)
    out = tmp_path / "out.json"
    rc, text, err = run_propagate(capsys, "--video", folder, "--labels", labels, "--method", "nearest", "--out", out)
    assert rc == 0, err
    assert "only one of two consecutive labeled frames" in text
    result = read_annotations(out)[0]
    with_track = [f.index for f in result.frames[5:18] if any(p.track_id == gone for p in f.persons)]
    assert with_track == list(range(5, 12))  # up to the gap's midpoint (--one-sided half)
    assert all(f.persons for f in result.frames[5:18])  # the other tracks fill every frame


def test_frames_of_different_sizes_are_resized(clip, checkpoint, tmp_path, capsys):
    folder, labels, video = clip
    mixed = tmp_path / "mixed"
    shutil.copytree(folder, mixed)
    img = cv2.imread(str(mixed / "000005.jpg"))
    cv2.imwrite(str(mixed / "000005.jpg"), cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2)))
    out = tmp_path / "out.json"
    rc, text, err = run_propagate(capsys, "--video", mixed, "--labels", labels, "--checkpoint", checkpoint,
                                  "--interval", 7, "--out", out)
    assert rc == 0, err
    assert "1 frame(s) of another size (96x72) were resized to 192x144" in text
    assert read_annotations(out)[0].frames[5].persons


def test_interval_longer_than_the_video(clip, tmp_path, capsys):
    _, labels, video = clip
    rc, text, err = run_propagate(capsys, "--labels", labels, "--method", "linear", "--interval", 50, "--eval",
                         "--out", tmp_path / "o.json")
    assert rc == 0, err
    last = video.num_frames - 1
    assert "longer than the video" in text and f"kept the labels of frames [3, {last}]" in text
    result = read_annotations(tmp_path / "o.json")[0]
    assert result.labeled_indices() == [3, last] and all(f.persons for f in result.frames)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--checkpoint", "missing.ckpt"], "checkpoint not found"),
        (["--method", "stdpose"], "needs --checkpoint"),
        (["--method", "linear", "--eval"], "--eval needs --interval"),
        (["--method", "linear", "--interval", "1"], "at least 2"),
        (["--method", "linear", "--checkpoint", "x.ckpt"], "only used by --method stdpose"),
    ],
)
def test_usage_errors(clip, tmp_path, capsys, extra, message):
    folder, labels, _ = clip
    rc, _, err = run_propagate(capsys, "--video", folder, "--labels", labels, "--out", tmp_path / "o.json", *extra)
    assert rc == 2 and message in err
    assert not (tmp_path / "o.json").exists()


def test_bad_files(clip, tmp_path, capsys):
    folder, labels, video = clip
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"\x00garbage")
    rc, _, err = run_propagate(capsys, "--video", folder, "--labels", labels, "--checkpoint", bad, "--out",
                               tmp_path / "o")
    assert rc == 2 and "cannot read checkpoint" in err
    rc, _, err = run_propagate(capsys, "--labels", labels, "--method", "flow", "--out", tmp_path / "o")
    assert rc == 2 and "--video is required" in err
    unlabeled = tmp_path / "unlabeled.json"
    for f in video.frames:
        f.is_labeled, f.persons = False, []
    write_posetrack18(video, unlabeled)
    rc, _, err = run_propagate(capsys, "--labels", unlabeled, "--method", "linear", "--out", tmp_path / "o")
    assert rc == 2 and "no labeled frame" in err
    two = tmp_path / "two.json"
    videos = read_annotations(labels.parent)
    write_posetrack18(videos, two)
    rc, _, err = run_propagate(capsys, "--labels", two, "--method", "linear", "--out", tmp_path / "o")
    assert rc == 2 and "--video-name" in err
    rc, _, err = run_propagate(capsys, "--labels", two, "--video-name", videos[1].name, "--method", "linear",
                      "--out", tmp_path / "o.json")
    assert rc == 0, err
    assert read_annotations(tmp_path / "o.json")[0].name == videos[1].name


# ------------------------------------------------------------------------------------------------ real videos


@pytest.mark.realdata
def test_real_posetrack_clip_with_hand_labels(tmp_path, capsys):
    frames = shared_data("posetrack18_samples", "videos", "000001_mpiinew_test")
    out = tmp_path / "pt.json"
    rc, text, err = run_propagate(capsys, "--video", frames, "--labels", FIXTURES / "000001_mpiinew_test_hand.json",
                         "--method", "linear", "--out", out)
    assert rc == 0, err
    result = read_annotations(out)[0]
    assert result.num_frames == 10 and result.labeled_indices() == [0, 9]
    # tracks 1-3 are labeled in frames 0 and 9; the goalkeeper (4) enters and is labeled in frame 9 only
    assert [sorted(p.track_id for p in f.persons) for f in result.frames[1:5]] == [[1, 2, 3]] * 4
    assert [sorted(p.track_id for p in f.persons) for f in result.frames[5:9]] == [[1, 2, 3, 4]] * 4
    for f in result.frames[1:9]:
        for p in f.persons:
            xy = p.keypoints[p.annotated, :2]
            assert np.all((xy >= 0) & (xy < [1280, 720]))
    assert "only one of two consecutive labeled frames" in text


@pytest.mark.realdata
def test_real_vtest_video_file_with_hand_labels(tmp_path, capsys):
    avi = shared_data("opencv_samples", "vtest.avi")
    out = tmp_path / "vt.json"
    rc, text, err = run_propagate(capsys, "--video", avi, "--labels", FIXTURES / "vtest_hand.json", "--method",
                                  "linear", "--out", out)
    assert rc == 0, err
    assert "by the frame number in the file names" in text
    result = read_annotations(out)[0]
    assert result.num_frames == 10 and all(len(f.persons) == 3 for f in result.frames)


# ------------------------------------------------------------------------------------------------ benchmark


def test_benchmark_quick_mode(tiny_synthetic, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_propagation", REPO / "benchmarks" / "propagation.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "results"
    rc = bench.main(["--quick", "--data", str(tiny_synthetic), "--work", str(tmp_path / "work"), "--out", str(out),
                     "--no-progress", "--threads", "1", "--input-size", "64", "48", "--sigma", "1.0"])
    assert rc == 0
    res = json.loads((out / "propagation.json").read_text())
    assert set(res["table1"]) == {"nearest", "linear", "STDPose (full, f)"}
    assert set(res["table4"]) == {"a", "f"} and set(res["sweep"]) == {"3", "7"}
    eff = res["efficiency"]
    assert eff["naive"]["backbone_images"] == 3 * eff["naive"]["key_frames"]
    assert eff["backbone_ratio"] > 1.5 and eff["max_keypoint_difference_px"] < 1e-2
    for name in ("propagation.md", "propagation.png", "propagation_interval.png"):
        assert (out / name).stat().st_size > 0
    assert "Table 1" in (out / "propagation.md").read_text()
    # a second run reuses the checkpoints instead of training again
    bench.main(["--quick", "--data", str(tiny_synthetic), "--work", str(tmp_path / "work"), "--out", str(out),
                "--no-progress", "--threads", "1", "--input-size", "64", "48", "--sigma", "1.0"])
    assert "loaded" in capsys.readouterr().out
