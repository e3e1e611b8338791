"""Per-image assignment of predicted persons to ground-truth persons, as poseval's `assignGTmulti` does it.

For one image: the normalised distance of every (prediction, ground truth, joint) triple is
|p - g| / head_size where both joints exist (infinity otherwise); a joint matches at distance <= threshold (0.5:
PCKh@0.5). Each prediction's PCKh against each ground-truth person is its number of matched joints divided by that
person's number of annotated joints. Every prediction keeps only its best ground truth (first on ties), then every
ground truth takes the prediction with the highest remaining PCKh (first on ties; none when it is 0). A matched
prediction's joints are true positives where they match their ground truth; every joint of an unmatched prediction
is a false positive.
"""

from __future__ import annotations

import numpy as np

# poseval's head-size factor: head_size = 0.6 * diagonal of the ground-truth head box.
HEAD_SIZE_FACTOR = 0.6


def head_size(box: tuple[float, float, float, float]) -> float:
    """poseval's PCKh reference length: 0.6 x the head box diagonal. The box is (x, y, w, h); poseval's converter
    first forms the corners (x, y, x + w, y + h), and the diagonal is taken from those corners, as it does."""
    x1, y1, w, h = (float(v) for v in box)
    return HEAD_SIZE_FACTOR * float(np.linalg.norm(np.subtract([x1 + w, y1 + h], [x1, y1])))


def match_image(
    gt_xy: np.ndarray,
    gt_has: np.ndarray,
    head_sizes: np.ndarray,
    pr_xy: np.ndarray,
    pr_has: np.ndarray,
    dist_thresh: float = 0.5,
) -> np.ndarray:
    """(P, J) bool labels: True where a predicted joint is a true positive.

    gt_xy (G, J, 2), gt_has (G, J) annotated joints, head_sizes (G,); pr_xy (P, J, 2), pr_has (P, J) predicted
    joints. Labels of joints that are not predicted are False (callers only read predicted joints).
    """
    num_pr, num_gt = pr_has.shape[0], gt_has.shape[0]
    labels = np.zeros(pr_has.shape, dtype=bool)
    if num_pr == 0 or num_gt == 0:
        return labels  # no ground truth: every prediction is a false positive
    diff = pr_xy[:, None, :, :] - gt_xy[None, :, :, :]  # (P, G, J, 2)
    # |d| via a (1x2)(2x1) product: the same dot product np.linalg.norm uses, so distances agree with poseval
    # to the last bit (a plain x*x + y*y can differ in the last bit, which matters only at exactly 0.5)
    norm = np.sqrt((diff[..., None, :] @ diff[..., :, None])[..., 0, 0])  # (P, G, J)
    both = pr_has[:, None, :] & gt_has[None, :, :]
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero-size head box gives inf/NaN: never a match
        dist = np.where(both, norm / head_sizes[None, :, None], np.inf)
    match = dist <= dist_thresh  # (P, G, J)

    num_annotated = gt_has.sum(axis=1)  # (G,)
    pck = match.sum(axis=2).astype(np.float64)  # (P, G)
    pck = np.where(num_annotated[None, :] > 0, pck / np.maximum(num_annotated, 1)[None, :], pck)

    rows = np.arange(num_pr)
    best_gt = np.argmax(pck, axis=1)  # each prediction keeps only its best ground truth
    kept = np.zeros_like(pck)
    kept[rows, best_gt] = pck[rows, best_gt]
    pr_for_gt = np.argmax(kept, axis=0)  # (G,) each ground truth takes its best remaining prediction
    has_match = kept.max(axis=0) > 0
    for g in np.flatnonzero(has_match):
        labels[pr_for_gt[g]] = match[pr_for_gt[g], g]
    return labels
