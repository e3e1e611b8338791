"""Average precision of one joint exactly as poseval computes it (`computeRPC` + `VOCap` + `computeMetrics`).

Ranking: detections are sorted by score with `np.argsort(scores)[::-1]`, the very call poseval makes. numpy's
default sort is not stable, so the order of EQUAL scores (ties, e.g. predictions without scores) depends on the
numpy version and the CPU's SIMD sort; stdpose feeds the same array in the same order as poseval, so both give the
same number on the same machine. AP is the area under the monotone (VOC-style) precision envelope.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class JointAP:
    """AP, final precision and final recall of one joint, all in percent (NaN where poseval gives NaN)."""

    ap: float
    precision: float
    recall: float


def precision_recall(scores: np.ndarray, labels: np.ndarray, num_gt: float) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall after each detection, detections ranked by descending score (poseval's order).

    `num_gt` = 0 gives NaN recall (poseval divides by zero), which later makes the joint's AP NaN.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    order = scores.argsort()[::-1]
    true_pos = np.cumsum(labels[order] == 1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = true_pos / np.float64(num_gt)
    precision = true_pos / np.arange(1, len(order) + 1, dtype=np.float64)
    return precision, recall


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision envelope (poseval's `VOCap`): pad recall with 0 and 1, precision with 0 and 0,
    make precision non-increasing from the right, sum precision x recall steps where recall changes."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1  # NaN != NaN, as in poseval
    return float(np.sum((mrec[steps] - mrec[steps - 1]) * mpre[steps]))


def joint_ap(scores: np.ndarray, labels: np.ndarray, num_gt: float) -> JointAP:
    """poseval's per-joint metrics: no detections -> AP 0 (even when there is no ground truth either);
    detections but no ground truth -> NaN; else VOC AP x 100 and the precision/recall at the last detection."""
    if len(scores) == 0:
        return JointAP(0.0, 0.0, 0.0)
    precision, recall = precision_recall(scores, labels, num_gt)
    with np.errstate(invalid="ignore"):
        ap = voc_ap(recall, precision) * 100.0
    return JointAP(ap, float(precision[-1]) * 100.0, float(recall[-1]) * 100.0)


def nan_mean(values: list[float]) -> float:
    """Mean of the non-NaN values (poseval's 'total'); NaN when all are NaN."""
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else math.nan
