"""COCO-style keypoint AP (Object Keypoint Similarity), computed by pycocotools' own COCOeval.

For users whose data is COCO keypoint format (COCO, CrowdPose-like files, PoseTrack converted to COCO). The metric
is COCOeval with iouType "keypoints": OKS thresholds 0.50:0.05:0.95, at most 20 detections per image, area ranges
all / medium / large. stdpose only validates the input (clear DataError instead of an assert deep inside
pycocotools) and returns the ten summary numbers IN PERCENT (pycocotools prints fractions).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stdpose.errors import ConfigError, DataError

# The order of COCOeval.stats for keypoints.
STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def _load(source: Any, what: str) -> tuple[Any, str]:
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise DataError(path, f"{what} file does not exist")
        try:
            return json.loads(path.read_text(encoding="utf-8")), str(path)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DataError(path, f"cannot read {what} JSON: {err}") from None
    return copy.deepcopy(source), f"<{what}>"


def _finite_numbers(values: Any) -> bool:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return bool(np.all(np.isfinite(arr)))


def _check_gt(gt: Any, where: str) -> tuple[int, int]:
    """(person category id, number of keypoints); fills a missing `area` with the box area, `iscrowd` with 0."""
    if not isinstance(gt, dict) or not all(isinstance(gt.get(k), list) for k in ("images", "annotations")):
        raise DataError(where, "not a COCO keypoint file: expected 'images' and 'annotations' lists")
    cats = [c for c in gt.get("categories", []) if isinstance(c, dict) and c.get("keypoints")]
    if len(cats) != 1:
        raise DataError(where, "expected exactly one category with a 'keypoints' list")
    cat_id, num_kps = cats[0]["id"], len(cats[0]["keypoints"])
    for k, ann in enumerate(gt["annotations"]):
        w = f"{where} (annotation #{k})"
        if ann.get("category_id", cat_id) != cat_id:
            continue
        kps = ann.get("keypoints")
        if not isinstance(kps, list) or len(kps) != 3 * num_kps or not _finite_numbers(kps):
            raise DataError(w, f"keypoints must be {3 * num_kps} finite numbers (x, y, v for {num_kps} joints)")
        ann.setdefault("category_id", cat_id)
        ann.setdefault("iscrowd", 0)
        ann.setdefault("num_keypoints", int(sum(1 for v in kps[2::3] if v > 0)))
        if "area" not in ann:
            box = ann.get("bbox")
            if not isinstance(box, list) or len(box) != 4 or not _finite_numbers(box):
                raise DataError(w, "annotation has neither 'area' nor a 'bbox' to take it from")
            ann["area"] = float(box[2]) * float(box[3])  # keypoint-only files: the box area stands in
    return cat_id, num_kps


def _keypoint_file_results(pred: dict, where: str, gt: dict) -> list[dict]:
    """A COCO keypoint file (images + annotations, e.g. `stdpose propagate`'s output) as results: image ids are
    matched to the ground truth's by file name, and an annotation without `score` gets the mean of its per-joint
    `scores`, else 1.0 (a human label copied into the file)."""
    gt_by_name = {im.get("file_name"): im.get("id") for im in gt["images"] if isinstance(im, dict)}
    pred_names = {}
    for k, im in enumerate(pred["images"]):
        if not isinstance(im, dict) or "id" not in im or not isinstance(im.get("file_name"), str):
            raise DataError(f"{where} (image #{k})", "a keypoint file used as predictions needs 'id' and "
                                                     "'file_name' on every image (to match the ground truth's)")
        pred_names[im["id"]] = im["file_name"]
    out = []
    for k, ann in enumerate(pred["annotations"]):
        if not isinstance(ann, dict):
            raise DataError(f"{where} (annotation #{k})", "annotation is not an object")
        name = pred_names.get(ann.get("image_id"))
        if name is None:
            raise DataError(f"{where} (annotation #{k})", f"image_id {ann.get('image_id')!r} matches no image of "
                                                          "the predictions file")
        if name not in gt_by_name:
            continue  # a frame the ground truth does not have (e.g. an unlabeled frame of a video)
        score = ann.get("score")
        if score is None:
            scores = [float(v) for v in ann.get("scores") or [] if v is not None and float(v) > 0]
            score = sum(scores) / len(scores) if scores else 1.0
        out.append({**ann, "image_id": gt_by_name[name], "score": score})
    return out


def _check_pred(pred: Any, where: str, image_ids: set, cat_id: int, num_kps: int,
                gt: dict | None = None) -> list[dict]:
    if isinstance(pred, dict) and isinstance(pred.get("annotations"), list):
        if isinstance(pred.get("images"), list) and gt is not None:
            pred = _keypoint_file_results(pred, where, gt)
        else:
            pred = pred["annotations"]
    if not isinstance(pred, list):
        raise DataError(where, "predictions must be a COCO results list [{image_id, keypoints, score}] or a COCO "
                               "keypoint file (images with id and file_name, annotations with keypoints)")
    out = []
    for k, det in enumerate(pred):
        w = f"{where} (result #{k})"
        if not isinstance(det, dict):
            raise DataError(w, "result is not an object")
        if det.get("image_id") not in image_ids:
            raise DataError(w, f"image_id {det.get('image_id')!r} is not in the ground truth (a results list "
                               "must use the ground truth's image ids; a keypoint file is matched by file_name)")
        kps = det.get("keypoints")
        if not isinstance(kps, list) or len(kps) != 3 * num_kps:
            raise DataError(w, f"keypoints must be {3 * num_kps} numbers (x, y, v for {num_kps} joints)")
        if not _finite_numbers(kps):
            raise DataError(w, "keypoints contain NaN, infinite or non-numeric values")
        score = det.get("score")
        if not isinstance(score, (int, float)) or not math.isfinite(score):
            raise DataError(w, f"result needs a finite 'score' (the person's confidence), got {score!r}")
        out.append({"image_id": det["image_id"], "category_id": det.get("category_id", cat_id),
                    "keypoints": [float(v) for v in kps], "score": float(score)})
    return out


def evaluate_coco_oks(
    gt_json: str | Path | dict,
    pred_json: str | Path | list | dict,
    sigmas: Sequence[float] | None = None,
) -> dict[str, float]:
    """COCO keypoint AP/AR in percent: AP, AP50, AP75, APm, APl, AR, AR50, AR75, ARm, ARl.

    gt_json: a COCO keypoint file (path or parsed dict). pred_json: COCO results (a path, a list of
    {image_id, category_id, keypoints, score}, or a dict holding them as 'annotations'; category_id defaults to
    the ground truth's person category), or a COCO keypoint file with `images` (such as `stdpose propagate`'s
    output), matched to the ground truth by file name (see `_keypoint_file_results`). `sigmas`: per-joint OKS
    constants; COCO's 17 by default (required for any other joint count). No predictions gives 0 everywhere; a
    ground truth without any person with keypoints gives NaN (pycocotools' -1).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, gt_where = _load(gt_json, "ground truth")
    pred, pred_where = _load(pred_json, "predictions")
    cat_id, num_kps = _check_gt(gt, gt_where)
    if sigmas is None and num_kps != 17:
        raise ConfigError(f"{gt_where}: {num_kps} keypoints per person; pass `sigmas` (COCO's are for 17)")
    if sigmas is not None and len(sigmas) != num_kps:
        raise ConfigError(f"sigmas has {len(sigmas)} values for {num_kps} keypoints")
    image_ids = {im.get("id") for im in gt["images"] if isinstance(im, dict)}
    results = _check_pred(pred, pred_where, image_ids, cat_id, num_kps, gt)
    if not results:
        return dict.fromkeys(STAT_NAMES, 0.0)

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and the summary
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        if sigmas is not None:
            evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: (math.nan if v < 0 else float(v) * 100.0) for name, v in zip(STAT_NAMES, evaluator.stats)}
