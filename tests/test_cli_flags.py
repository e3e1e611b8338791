"""CLI flags that no other test runs, one test each, each checking what the flag changes (not just exit 0)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO
from conftest_engine import tiny_overrides

from stdpose.cli import main
from stdpose.data import formats as pt
from stdpose.data.records import Frame, Person, Video


def _checkpoint(path: Path, data_dir: Path, config: str, task: str) -> Path:
    from stdpose.engine.config import load_config
    from stdpose.engine.lit import model_config
    from stdpose.model import build_model

    cfg = load_config(REPO / "configs" / config, tiny_overrides(data_dir, {"data.task": task}))
    torch.manual_seed(0)
    model = build_model(model_config(cfg))
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                "hyper_parameters": {"config": cfg}}, path)
    return path


# ------------------------------------------------------------------------------------------------ propagate


def _one_sided_labels(path: Path) -> Path:
    """Frames 0 and 8 labeled; track 1 in both, track 2 only in frame 0 (it leaves during the gap)."""
    def person(x: float, track: int) -> Person:
        kps = np.zeros((17, 3))
        kps[:, 0], kps[:, 1], kps[:, 2] = x + np.arange(17), 50 + np.arange(17), 1
        return Person(kps, track_id=track, bbox=(x, 50, 20, 20))

    frames = [Frame(index=i, file_name=f"v/{i:06d}.jpg", is_labeled=i in (0, 8)) for i in range(9)]
    frames[0].persons = [person(10, 1), person(100, 2)]
    frames[8].persons = [person(30, 1)]
    pt.write_posetrack18(Video(name="v", frames=frames), path)
    return path


@pytest.mark.parametrize("mode,track2_frames", [("half", [1, 2, 3, 4]), ("full", list(range(1, 8))), ("none", [])])
def test_propagate_one_sided_sets_how_far_a_leaving_person_is_followed(tmp_path, capsys, mode, track2_frames):
    labels = _one_sided_labels(tmp_path / "labels.json")
    out = tmp_path / "out.json"
    assert main(["propagate", "--no-progress", "--labels", str(labels), "--method", "linear", "--one-sided", mode,
                 "--out", str(out)]) == 0
    video = pt.read_annotations(out)[0]
    got = [f.index for f in video.frames if not f.is_labeled and any(p.track_id == 2 for p in f.persons)]
    assert got == track2_frames
    assert all(any(p.track_id == 1 for p in f.persons) for f in video.frames)


def test_propagate_batch_size_sets_the_crops_per_network_call_and_not_the_result(tiny_synthetic, tmp_path, capsys,
                                                                                  monkeypatch):
    from stdpose.model.stdpose import STDPose

    ckpt = _checkpoint(tmp_path / "prop.ckpt", tiny_synthetic, "synthetic_demo.yaml", "propagation")
    labels = sorted((tiny_synthetic / "annotations" / "val").glob("*.json"))[0]
    folder = tiny_synthetic / "images" / "val" / labels.stem
    sizes: list[int] = []
    encode = STDPose.encode_frames

    def counting(self, images):
        sizes.append(images.shape[0])
        return encode(self, images)

    monkeypatch.setattr(STDPose, "encode_frames", counting)
    results = {}
    for batch in (2, 32):
        sizes.clear()
        out = tmp_path / f"b{batch}.json"
        assert main(["propagate", "--no-progress", "--video", str(folder), "--labels", str(labels), "--checkpoint",
                     str(ckpt), "--interval", "7", "--batch-size", str(batch), "--out", str(out)]) == 0
        results[batch] = (max(sizes), len(sizes), pt.read_annotations(out)[0])
    assert results[2][0] == 2 and results[32][0] > 2  # at most --batch-size crops per call
    assert results[2][1] > results[32][1]
    for fa, fb in zip(results[2][2].frames, results[32][2].frames, strict=True):
        for pa, pb in zip(fa.persons, fb.persons, strict=True):
            np.testing.assert_allclose(pa.keypoints, pb.keypoints, atol=1e-3)


@pytest.mark.parametrize("verbose", [False, True])
def test_propagate_verbose_lets_the_library_log_messages_through(tmp_path, capsys, caplog, verbose):
    labels = _one_sided_labels(tmp_path / "labels.json")
    caplog.set_level(logging.DEBUG)
    argv = ["propagate", "--no-progress", "--labels", str(labels), "--method", "linear", "--out",
            str(tmp_path / "o.json")]
    assert main(argv + (["--verbose"] if verbose else [])) == 0
    logged = [r for r in caplog.records if r.name.startswith("stdpose") and r.levelno >= logging.WARNING]
    assert "only one of two consecutive labeled frames" in capsys.readouterr().out  # the summary note: always
    if verbose:
        assert logged, [r.getMessage() for r in caplog.records]
    else:
        assert not logged


# ------------------------------------------------------------------------------------------------ predict


def test_predict_box_threshold_drops_the_boxes_scoring_below_it(tiny_synthetic, tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "est.ckpt", tiny_synthetic, "synthetic_estimation.yaml", "estimation")
    labels = sorted((tiny_synthetic / "annotations" / "val").glob("*.json"))[0]
    video = pt.read_annotations(labels)[0]
    boxes = [{"image_id": f.image_id, "category_id": 1, "bbox": [20.0, 20.0, 60.0, 90.0], "score": score}
             for f in video.frames[:4] for score in (0.3, 0.6, 0.9)]
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps(boxes))
    counts = {}
    for threshold in ("0.0", "0.5", "0.95"):
        out = tmp_path / f"t{threshold}.json"
        assert main(["predict", "--video", str(labels), "--image-root", str(tiny_synthetic), "--boxes", str(dets),
                     "--checkpoint", str(ckpt), "--box-threshold", threshold, "--out",
                     str(out), "--no-progress"]) == 0
        pred = pt.read_annotations(out)[0]
        counts[threshold] = sum(len(f.persons) for f in pred.frames)
        scores = [p.extra.get("box_score") for f in pred.frames for p in f.persons]
        assert all(s >= float(threshold) for s in scores)
    assert counts == {"0.0": 12, "0.5": 8, "0.95": 0}


# ------------------------------------------------------------------------------------------------ evaluate


def test_evaluate_presence_decides_whether_a_v0_joint_with_a_position_counts(tmp_path, capsys):
    kps = np.zeros((17, 3))
    kps[:, 0], kps[:, 1], kps[:, 2] = 100 + np.arange(17), 100 + np.arange(17), 1
    kps[5:9, 2] = 0  # four joints with a position but v = 0: poseval counts them, "visible" does not
    frame = Frame(index=0, file_name="v/000000.jpg", is_labeled=True,
                  persons=[Person(kps, track_id=0, bbox=(90, 90, 40, 40), bbox_head=(95, 80, 20, 20))])
    gt = tmp_path / "gt.json"
    pt.write_posetrack18(Video(name="v", frames=[frame]), gt)
    data = json.loads(gt.read_text())
    flat = np.asarray(data["annotations"][0]["keypoints"], dtype=float).reshape(17, 3)
    assert (flat[5:9, :2] != 0).all() and (flat[5:9, 2] == 0).all()  # written as (x, y, 0)
    gt_joints = {}
    for presence in ("poseval", "visible"):
        out = tmp_path / f"{presence}.json"
        assert main(["evaluate", "--gt", str(gt), "--pred", str(gt), "--presence", presence, "--json",
                     str(out)]) == 0
        gt_joints[presence] = json.loads(out.read_text())["counts"]["gt_joints"]
    assert gt_joints["poseval"] - gt_joints["visible"] == 4


# ------------------------------------------------------------------------------------------------ export


@pytest.mark.slow  # ONNX export and verification: about 40 s on 2 busy cores
def test_export_opset_is_the_opset_of_the_written_model(tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    ckpt = _checkpoint(tmp_path / "prop.ckpt", REPO / "none", "synthetic_demo.yaml", "propagation")
    out = tmp_path / "m17.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out), "--opset", "17"]) == 0  # default: 18
    model = onnx.load(str(out))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
