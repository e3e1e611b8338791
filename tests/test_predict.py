"""Estimator geometry and switches with a hand-made model, box matching, and `stdpose predict` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest_engine import tiny_synthetic_dir
from torch import nn

from stdpose.data.formats import Detection
from stdpose.data.records import Frame, Person, Video
from stdpose.data.transforms import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB
from stdpose.engine.predict import Estimator, boxes_from_detections, boxes_from_labels, posetrack_image_id
from stdpose.errors import ConfigError, DataError
from stdpose.skeleton import NUM_SLOTS

H, W = 64, 48  # model input
EST_CONFIG = {"data": {"task": "estimation", "input_size": [H, W], "enlarge": 1.25}}


class _Cfg:
    input_size = (H, W)
    heatmap_size = (H // 4, W // 4)


class BlobModel(nn.Module):
    """Puts every joint's Gaussian peak (height `peak`) on the centroid of the bright blob in the KEY crop, in
    heatmap coordinates (x_h = (x_in + 0.5) / 4 - 0.5): an exactly flip-equivariant "pose model". It records the
    grey level of the left/key/right crops (away from the blob) of each call."""

    def __init__(self, peak: float = 0.8):
        super().__init__()
        self.cfg = _Cfg()
        self.peak = peak
        self.centre_levels: list[np.ndarray] = []

    def forward(self, frames: torch.Tensor, aux_heatmaps=None) -> dict[str, torch.Tensor]:
        b = frames.shape[0]
        mean = torch.as_tensor(IMAGENET_MEAN_RGB).view(1, 1, 3, 1, 1)
        std = torch.as_tensor(IMAGENET_STD_RGB).view(1, 1, 3, 1, 1)
        rgb = frames * std + mean  # (B, 3, 3, H, W) in [0, 1]
        self.centre_levels.append((rgb[:, :, 0, 8, 4] * 255).numpy())  # a pixel away from the blob
        key = rgb[:, 1].mean(dim=1)  # (B, H, W)
        weight = torch.clamp(key - key.flatten(1).median(dim=1).values.view(b, 1, 1) - 0.2, min=0)
        ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                                indexing="ij")
        total = weight.flatten(1).sum(1)
        cx = (weight * xs).flatten(1).sum(1) / total
        cy = (weight * ys).flatten(1).sum(1) / total
        hx, hy = (cx + 0.5) / 4 - 0.5, (cy + 0.5) / 4 - 0.5
        gy, gx = torch.meshgrid(torch.arange(H // 4, dtype=torch.float32), torch.arange(W // 4, dtype=torch.float32),
                                indexing="ij")
        g = torch.exp(-((gx - hx.view(b, 1, 1)) ** 2 + (gy - hy.view(b, 1, 1)) ** 2) / (2 * 1.5**2))
        return {"heatmaps": (self.peak * g).unsqueeze(1).repeat(1, NUM_SLOTS, 1, 1)}


BLOB = (70.3, 52.6)  # blob centre in the image (x, y)


def _frames(n: int = 5, size=(160, 120)) -> list[np.ndarray]:
    """Frame f: uniform grey 20 * f + 10 with a bright Gaussian blob at BLOB."""
    w, h = size
    ys, xs = np.mgrid[0:h, 0:w]
    blob = 200 * np.exp(-((xs - BLOB[0]) ** 2 + (ys - BLOB[1]) ** 2) / (2 * 4.0**2))
    return [np.repeat((20 * f + 10 + blob).clip(0, 255).astype(np.uint8)[..., None], 3, axis=2) for f in range(n)]


def _video(n: int = 5) -> Video:
    return Video(name="clip", frames=[Frame(index=i, file_name=f"clip/{i:06d}.jpg") for i in range(n)])


BOX = (40.0, 10.0, 60.0, 90.0)


def test_keypoints_land_on_the_blob_and_scores_multiply_box_score():
    model = BlobModel(peak=0.8)
    est = Estimator(model, EST_CONFIG, progress=False, box_score_threshold=0.2)
    out = est.predict_video(_video(), _frames(), {2: [(BOX, 0.5)]})
    person = out.frames[2].persons[0]
    assert np.allclose(person.keypoints[:, :2], BLOB, atol=0.35)
    # heatmap maximum (the grid value nearest the 0.8 peak) times the box score
    unit = est.predict_video(_video(), _frames(), {2: [(BOX, 1.0)]}).frames[2].persons[0]
    assert 0.7 < unit.scores[0] <= 0.8
    assert np.allclose(person.scores, 0.5 * unit.scores)
    assert person.score == pytest.approx(0.5 * unit.scores.mean())
    assert person.bbox == BOX and person.propagated and person.extra["box_score"] == 0.5
    assert [len(f.persons) for f in out.frames] == [0, 0, 1, 0, 0]
    assert all(f.is_labeled for f in out.frames)


def test_neighbour_frames_are_t_minus_1_and_t_plus_1_clamped():
    model = BlobModel()
    est = Estimator(model, EST_CONFIG, progress=False, batch_size=8)
    est.predict_video(_video(), _frames(), {0: [(BOX, 1.0)], 2: [(BOX, 1.0)], 4: [(BOX, 1.0)]})
    levels = np.round(np.concatenate(model.centre_levels))  # (3 persons, 3 frames) background grey
    grey = {f: 20 * f + 10 for f in range(5)}
    assert levels.tolist() == [[grey[0], grey[0], grey[1]], [grey[1], grey[2], grey[3]], [grey[3], grey[4], grey[4]]]


def test_flip_test_is_exact_for_an_equivariant_model_and_the_hrnet_shift_is_not():
    plain = Estimator(BlobModel(), EST_CONFIG, progress=False).predict_video(_video(), _frames(), {1: [(BOX, 1.0)]})
    model = BlobModel()
    flipped = Estimator(model, EST_CONFIG, progress=False, flip_test=True)
    out = flipped.predict_video(_video(), _frames(), {1: [(BOX, 1.0)]})
    assert flipped.last_stats.model_calls == 2  # plain + mirrored
    a, b = plain.frames[1].persons[0].keypoints, out.frames[1].persons[0].keypoints
    assert np.allclose(a[:, :2], b[:, :2], atol=0.05)
    shifted = Estimator(BlobModel(), EST_CONFIG, progress=False, flip_test=True, flip_shift=True)
    c = shifted.predict_video(_video(), _frames(), {1: [(BOX, 1.0)]}).frames[1].persons[0].keypoints
    # the HRNet one-pixel shift of the mirrored half moves x right by about half a heatmap pixel
    scale = (BOX[3] * 1.25) / H * 4  # image pixels per heatmap pixel (the box is height-limited)
    assert 0.25 * scale < c[0, 0] - a[0, 0] < 0.75 * scale
    assert abs(c[0, 1] - a[0, 1]) < 0.1


def test_box_threshold_invalid_boxes_and_batching():
    est = Estimator(BlobModel(), EST_CONFIG, progress=False, box_score_threshold=0.3, batch_size=2)
    boxes = {1: [(BOX, 0.9), (BOX, 0.29), ((0, 0, 0, 10), 0.9)], 3: [(BOX, 0.3), BOX]}
    out = est.predict_video(_video(), _frames(), boxes)
    s = est.last_stats
    assert (s.boxes_in, s.below_threshold, s.invalid_boxes, s.persons) == (5, 1, 1, 3)
    assert s.model_calls == 2  # 3 persons in batches of 2
    assert [len(f.persons) for f in out.frames] == [0, 1, 0, 2, 0]
    only = est.predict_video(_video(), _frames(), boxes, frames_to_predict=[3])
    assert [f.index for f in only.frames] == [3] and len(only.frames[0].persons) == 2


def test_oks_nms_removes_the_duplicate_box():
    boxes = {2: [(BOX, 0.9), ((41.0, 11.0, 60.0, 90.0), 0.8)]}
    without = Estimator(BlobModel(), EST_CONFIG, progress=False).predict_video(_video(), _frames(), boxes)
    assert len(without.frames[2].persons) == 2
    est = Estimator(BlobModel(), EST_CONFIG, progress=False, oks_nms=0.9)
    kept = est.predict_video(_video(), _frames(), boxes).frames[2].persons
    assert len(kept) == 1 and kept[0].extra["box_score"] == 0.9 and est.last_stats.nms_removed == 1


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ConfigError, match="propagation"):
        Estimator(BlobModel(), {"data": {"task": "propagation"}})
    with pytest.raises(ConfigError, match="oks_nms"):
        Estimator(BlobModel(), EST_CONFIG, oks_nms=1.5)
    est = Estimator(BlobModel(), EST_CONFIG, progress=False)
    with pytest.raises(DataError, match="5 frames but only 3"):
        est.predict_video(_video(), _frames(3), {})
    with pytest.raises(DataError, match="frame 9"):
        est.predict_video(_video(), _frames(), {9: [(BOX, 1.0)]})
    with pytest.raises(DataError, match="unusable box"):
        est.predict_video(_video(), _frames(), {1: [("a", "b", "c")]})


def test_boxes_from_detections_by_id_by_name_and_by_index():
    video = Video(name="000342_mpii_test", vid_id="000342", frames=[
        Frame(index=0, file_name="images/val/000342_mpii_test/000000.jpg"),
        Frame(index=1, file_name="images/val/000342_mpii_test/000001.jpg", image_id=77),
    ])
    assert posetrack_image_id(video, video.frames[0]) == 10003420000
    dets = {
        10003420000: [Detection(10003420000, (1, 2, 3, 4), 0.7)],
        77: [Detection(77, (5, 6, 7, 8), 0.6)],
        5: [Detection(5, (9, 9, 9, 9), 0.5, extra={"file_name": "other/root/000342_mpii_test/000000.jpg"})],
        6: [Detection(6, (1, 1, 1, 1), 0.5, extra={"file_name": "000999_x/000000.jpg"})],
    }
    out = boxes_from_detections(video, dets)
    assert out[0] == [((1, 2, 3, 4), 0.7), ((9, 9, 9, 9), 0.5)]
    assert out[1] == [((5, 6, 7, 8), 0.6)]
    by_index = boxes_from_detections(video, {1: [Detection(1, (1, 1, 2, 2), 0.4)], 9: []}, by_frame_index=True)
    assert by_index == {1: [((1, 1, 2, 2), 0.4)]}


def test_boxes_from_labels_uses_labeled_frames_only():
    kps = np.zeros((NUM_SLOTS, 3))
    kps[5:9] = [[10, 10, 1], [30, 12, 1], [12, 40, 1], [28, 44, 1]]
    video = Video(name="v", frames=[
        Frame(index=0, file_name="a.jpg", is_labeled=True,
              persons=[Person(kps, track_id=3, bbox=(1, 2, 30, 40)), Person(kps, track_id=4)]),
        Frame(index=1, file_name="b.jpg", is_labeled=False, persons=[Person(kps, track_id=3, bbox=(1, 2, 3, 4))]),
    ])
    out = boxes_from_labels(video)
    assert list(out) == [0]
    assert out[0][0] == {"bbox": (1, 2, 30, 40), "score": 1.0, "track_id": 3}
    assert out[0][1]["track_id"] == 4 and out[0][1]["bbox"][2] >= 18  # tight box around the joints


# ------------------------------------------------------------------------------------------------ CLI


def _checkpoint(path: Path, data_dir: Path, task: str = "estimation") -> Path:
    """A stdpose checkpoint (the fields `load_model_from_checkpoint` reads) of an untrained nano model."""
    from conftest_engine import tiny_overrides

    from stdpose.engine.config import load_config
    from stdpose.engine.lit import model_config
    from stdpose.model import build_model

    cfg = load_config(Path(__file__).parents[1] / "configs" / "synthetic_estimation.yaml",
                      tiny_overrides(data_dir, {"data.task": task}))
    torch.manual_seed(0)
    model = build_model(model_config(cfg))
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                "hyper_parameters": {"config": cfg}}, path)
    return path


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    return tiny_synthetic_dir(tmp_path_factory)


def test_predict_command_on_annotation_folder_with_detections_and_eval(synthetic, tmp_path, capsys):
    from stdpose.cli import main
    from stdpose.data.formats import read_annotations

    ckpt = _checkpoint(tmp_path / "est.ckpt", synthetic)
    out = tmp_path / "preds"
    code = main(["predict", "--video", str(synthetic / "annotations" / "val"), "--image-root", str(synthetic),
                 "--boxes", str(synthetic / "detections" / "val.json"), "--checkpoint", str(ckpt),
                 "--out", str(out), "--flip-test", "--oks-nms", "0.9", "--labeled-only",
                 "--eval", str(synthetic / "annotations" / "val"), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Mean" in printed and "below --box-threshold 0.2" in printed
    gt = read_annotations(synthetic / "annotations" / "val")
    files = sorted(p.name for p in out.glob("*.json"))
    assert files == sorted(f"{v.name}.json" for v in gt)
    preds = read_annotations(out / files[0])[0]
    assert sum(len(f.persons) for f in preds.frames) > 0
    person = next(p for f in preds.frames for p in f.persons)
    assert person.scores is not None and person.propagated and person.bbox is not None
    table = json.loads((tmp_path / "preds.map.json").read_text())
    assert table["flip_test"] is True and table["oks_nms"] == 0.9 and table["videos"] == len(gt)


def test_predict_command_on_a_frame_folder_with_gt_boxes_and_overlay(synthetic, tmp_path):
    from stdpose.cli import main
    from stdpose.data.formats import read_annotations

    ckpt = _checkpoint(tmp_path / "est.ckpt", synthetic)
    labels = sorted((synthetic / "annotations" / "val").glob("*.json"))[0]
    frames_dir = synthetic / "images" / "val" / labels.stem
    out = tmp_path / "one.json"
    code = main(["predict", "--video", str(frames_dir), "--gt-boxes", str(labels), "--checkpoint", str(ckpt),
                 "--out", str(out), "--overlay", str(tmp_path / "one.mp4"), "--no-progress"])
    assert code == 0
    gt = read_annotations(labels)[0]
    pred = read_annotations(out)[0]
    assert pred.num_frames == gt.num_frames
    for g, p in zip(gt.frames, pred.frames):
        expected = sorted(x.track_id for x in g.persons) if g.is_labeled else []
        assert sorted(x.track_id for x in p.persons) == expected  # one pose per ground-truth box, same track
    assert (tmp_path / "one.mp4").exists() or (tmp_path / "one.avi").exists()


def test_predict_command_refuses_a_propagation_checkpoint(synthetic, tmp_path, capsys):
    from stdpose.cli import main

    ckpt = _checkpoint(tmp_path / "prop.ckpt", synthetic, task="propagation")
    code = main(["predict", "--video", str(synthetic / "annotations" / "val"), "--image-root", str(synthetic),
                 "--gt-boxes", str(synthetic / "annotations" / "val"), "--checkpoint", str(ckpt),
                 "--out", str(tmp_path / "x"), "--no-progress"])
    assert code == 2
    assert "data.task: estimation" in capsys.readouterr().err
    code = main(["predict", "--video", str(synthetic / "annotations" / "val"), "--gt-boxes",
                 str(synthetic / "annotations" / "val"), "--checkpoint", str(ckpt), "--out", str(tmp_path / "x")])
    assert code == 2
    assert "--image-root" in capsys.readouterr().err
