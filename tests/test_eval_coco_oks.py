"""COCO OKS AP through pycocotools: a hand-computed OKS case, real COCO samples, and bad input."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
from conftest import shared_data

from stdpose.errors import ConfigError, DataError
from stdpose.eval.coco_oks import STAT_NAMES, evaluate_coco_oks

COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10
AREA = 10000.0  # a "large" object (> 96^2)


def _gt() -> dict:
    kps = np.zeros((17, 3))
    kps[:, 0] = 100 + 10 * np.arange(17)
    kps[:, 1] = 200
    kps[:, 2] = 2
    return {
        "images": [{"id": 1, "width": 640, "height": 480, "file_name": "a.jpg"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "keypoints": kps.reshape(-1).tolist(),
                         "num_keypoints": 17, "bbox": [50, 50, 100, 100], "area": AREA, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(17)], "skeleton": []}],
    }


def _shifted(gt: dict, oks: float) -> list[dict]:
    """A prediction whose every joint is shifted so that each joint's similarity, hence the OKS, equals `oks`:
    exp(-d^2 / (2 area (2 sigma)^2)) = oks  ->  d = sqrt(-2 ln(oks) area) * 2 sigma."""
    kps = np.asarray(gt["annotations"][0]["keypoints"], dtype=np.float64).reshape(17, 3)
    kps[:, 0] += np.sqrt(-2 * math.log(oks) * AREA) * 2 * COCO_SIGMAS
    return [{"image_id": 1, "category_id": 1, "keypoints": kps.reshape(-1).tolist(), "score": 0.9}]


def test_hand_computed_oks_thresholds():
    gt = _gt()
    stats = evaluate_coco_oks(gt, _shifted(gt, 1.0 - 1e-12))
    assert stats["AP"] == pytest.approx(100.0) and stats["AR"] == pytest.approx(100.0)
    # OKS 0.72 passes the thresholds 0.50 ... 0.70 (5 of 10): AP = AR = 50, AP50 = 100, AP75 = 0
    stats = evaluate_coco_oks(gt, _shifted(gt, 0.72))
    assert stats["AP"] == pytest.approx(50.0) and stats["AR"] == pytest.approx(50.0)
    assert stats["AP50"] == pytest.approx(100.0) and stats["AP75"] == 0.0
    assert math.isnan(stats["APm"]) and stats["APl"] == pytest.approx(50.0)  # no medium object: -1 -> NaN
    assert list(stats) == list(STAT_NAMES)


def test_false_positive_and_empty_predictions():
    gt = _gt()
    good = _shifted(gt, 0.999)
    bad = copy.deepcopy(good[0])
    bad["keypoints"] = [v + 300 if i % 3 == 0 else v for i, v in enumerate(bad["keypoints"])]
    bad["score"] = 0.95  # ranked first: precision 1/2 at recall 1 -> AP 50
    assert evaluate_coco_oks(gt, [bad, *good])["AP"] == pytest.approx(50.0)
    assert evaluate_coco_oks(gt, []) == dict.fromkeys(STAT_NAMES, 0.0)


@pytest.mark.realdata
def test_real_coco_samples(tmp_path):
    path = shared_data("coco_samples", "test_coco.json")
    gt = json.loads(path.read_text())
    pred = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
            for a in gt["annotations"] if a["num_keypoints"] > 0]
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    assert evaluate_coco_oks(path, tmp_path / "pred.json")["AP"] == pytest.approx(100.0)
    # the third of four images without its predictions: recall drops, AP follows
    missing = [p for p in pred if p["image_id"] != gt["images"][2]["id"]]
    stats = evaluate_coco_oks(path, missing)
    assert stats["AR"] < 100.0 and stats["AP"] < 100.0


@pytest.mark.parametrize(
    "change, error, message",
    [
        (lambda p: p.update(image_id=99), DataError, "not in the ground truth"),
        (lambda p: p.update(keypoints=p["keypoints"][:-3]), DataError, "51 numbers"),
        (lambda p: p["keypoints"].__setitem__(0, float("nan")), DataError, "NaN"),
        (lambda p: p.pop("score"), DataError, "score"),
    ],
)
def test_bad_predictions(change, error, message):
    gt = _gt()
    pred = _shifted(gt, 0.9)
    change(pred[0])
    with pytest.raises(error, match=message):
        evaluate_coco_oks(gt, pred)


def test_bad_ground_truth_and_sigmas(tmp_path):
    gt = _gt()
    with pytest.raises(DataError, match="does not exist"):
        evaluate_coco_oks(tmp_path / "nope.json", [])
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(DataError, match="cannot read"):
        evaluate_coco_oks(tmp_path / "broken.json", [])
    with pytest.raises(ConfigError, match="sigmas"):
        evaluate_coco_oks(gt, [], sigmas=[0.1] * 15)
    fifteen = _gt()
    fifteen["categories"][0]["keypoints"] = fifteen["categories"][0]["keypoints"][:15]
    fifteen["annotations"][0]["keypoints"] = fifteen["annotations"][0]["keypoints"][:45]
    with pytest.raises(ConfigError, match="pass `sigmas`"):
        evaluate_coco_oks(fifteen, [])
    no_area = _gt()
    del no_area["annotations"][0]["area"], no_area["annotations"][0]["bbox"]
    with pytest.raises(DataError, match="area"):
        evaluate_coco_oks(no_area, [])
