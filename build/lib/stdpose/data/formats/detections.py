"""Person detection files in COCO results style (a list of `image_id`, `bbox`, `score`).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stdpose.atomic import atomic_write_json
from stdpose.data.formats.common import (
    as_box,
    int_or_none,
    load_json,
)
from stdpose.errors import DataError

log = logging.getLogger(__name__)



# ----------------------------------------------------------------------------------------------------------------
# person detections (COCO results style)


@dataclass
class Detection:
    """One detected person box: `bbox` (x, y, w, h) in image pixels and the detector's `score`."""

    image_id: int
    bbox: tuple[float, float, float, float]
    score: float
    category_id: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


def read_detections(path: str | Path, skipped: Counter | None = None) -> dict[int, list[Detection]]:
    """Read a COCO-results-style box file (a list of {image_id, bbox, score, category_id}), person category only.

    Returns image_id -> detections sorted by descending score. Boxes with zero or negative width/height are a
    documented, counted skip (detectors do emit them): they are counted in `skipped["zero_area_box"]` and logged.
    Missing fields or non-numeric values raise DataError naming the file and entry.
    """
    path = Path(path)
    data = load_json(path)
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        data = data["annotations"]
    if not isinstance(data, list):
        raise DataError(path, "detections file must be a JSON list of {image_id, bbox, score} objects")
    counts = skipped if skipped is not None else Counter()
    out: dict[int, list[Detection]] = {}
    for pos, det in enumerate(data):
        where = f"{path} (detection #{pos})"
        if not isinstance(det, dict) or "image_id" not in det or "bbox" not in det:
            raise DataError(where, "each detection needs 'image_id' and 'bbox'")
        category = int_or_none(det.get("category_id", 1))
        if category != 1:
            counts["not_person"] += 1
            continue
        box = as_box(det["bbox"], where, "bbox")
        if box is None:
            raise DataError(where, "empty bbox")
        try:
            score = float(det.get("score", 1.0))
            image_id = int(det["image_id"])
        except (TypeError, ValueError):
            raise DataError(where, "image_id and score must be numbers") from None
        if not math.isfinite(score):
            raise DataError(where, f"score is not finite: {score}")
        if box[2] <= 0 or box[3] <= 0:
            counts["zero_area_box"] += 1
            continue
        extra = {k: v for k, v in det.items() if k not in ("image_id", "bbox", "score", "category_id")}
        out.setdefault(image_id, []).append(Detection(image_id, box, score, 1, extra))
    for dets in out.values():
        dets.sort(key=lambda d: -d.score)
    if counts.get("zero_area_box"):
        log.warning("%s: skipped %d detections with zero or negative box size", path, counts["zero_area_box"])
    return out


def write_detections(detections: dict[int, list[Detection]], path: str | Path) -> None:
    """Write detections back in COCO results style, atomically."""
    rows = []
    for image_id in sorted(detections):
        for d in detections[image_id]:
            rows.append({**d.extra, "image_id": int(image_id), "category_id": d.category_id,
                         "bbox": [float(v) for v in d.bbox], "score": float(d.score)})
    atomic_write_json(path, rows)
