"""Pieces every format module shares: JSON loading with file-named errors, value checks, categories.

Every problem with a file raises `DataError` naming the file and what is wrong.
"""

from __future__ import annotations

import contextvars
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from stdpose.data.records import Frame, Person
from stdpose.errors import DataError
from stdpose.skeleton import (
    COCO_NAMES,
    NUM_SLOTS,
    POSETRACK_SLOTS,
    to_posetrack,
)

# Annotated keypoints further outside the image than this fraction of its width/height are treated as corrupt
# (wrong image size, swapped coordinates). Annotators do click slightly past the border, so a margin is allowed.
OUTSIDE_TOLERANCE = 0.25

POSETRACK18_CATEGORY: dict[str, Any] = {
    "supercategory": "person",
    "id": 1,
    "name": "person",
    "keypoints": list(POSETRACK_SLOTS),
    "skeleton": [
        [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
        [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7],
    ],
}  # fmt: skip
COCO_CATEGORY: dict[str, Any] = {**POSETRACK18_CATEGORY, "keypoints": list(COCO_NAMES)}

# Fields of an image / annotation that the records hold themselves (everything else goes to `extra`).


# ----------------------------------------------------------------------------------------------------------------
# helpers


def load_json(path: str | Path) -> Any:
    """Parse a JSON file; DataError (naming the file) when it is missing, unreadable, truncated or not JSON."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found" if not path.exists() else "not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read file: {exc}") from None
    if not text.strip():
        raise DataError(path, "file is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        msg = f"malformed or truncated JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        raise DataError(path, msg) from None
    except RecursionError:
        raise DataError(path, "JSON nested too deeply to be an annotation file") from None


_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


def as_bool(value: Any, where: str, name: str, default: bool = False) -> bool:
    """A flag such as `is_labeled`: true/false, 1/0 (also as 1.0, [1], "1"), or the strings true/false/yes/no
    (any case). Missing (None) -> `default`. Anything else (2, "maybe", {}) is a DataError: reading "false" as
    true would silently turn unlabeled frames into labeled ones."""
    if isinstance(value, list) and len(value) == 1:  # PoseTrack17 wraps values in one-element lists
        value = value[0]
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise DataError(where, f"{name} must be true or false (or 1/0), got {value!r}")


def as_number(value: Any, where: str, name: str) -> float:
    """A finite number (a numeric string too, as json writers sometimes quote them); DataError otherwise."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool):
        raise DataError(where, f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(where, f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise DataError(where, f"{name} must be finite, got {value!r}")
    return number


def as_id(value: Any, where: str, name: str) -> Any:
    """An id used as a lookup key (image id): a number, a string or None (missing); DataError for lists,
    objects and booleans (unhashable or ambiguous keys)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise DataError(where, f"{name} must be a number or a string, got {value!r}")
    return value


def as_box(value: Any, where: str, name: str) -> tuple[float, float, float, float] | None:
    """A 4-number box or None (missing / empty list); DataError for anything else."""
    if value is None or (isinstance(value, list | tuple) and len(value) == 0):
        return None
    if not isinstance(value, list | tuple) or len(value) != 4:
        raise DataError(where, f"{name} must be [x, y, width, height], got {value!r}")
    try:
        box = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise DataError(where, f"{name} must hold numbers, got {value!r}") from None
    if not all(math.isfinite(v) for v in box):
        raise DataError(where, f"{name} has non-finite values: {value!r}")
    return box  # type: ignore[return-value]


def keypoints_array(values: Any, where: str, layout: str = "posetrack") -> np.ndarray:
    """Flat [x, y, v, ...] -> (17, 3) in PoseTrack18 slots; DataError for an unknown layout or bad values."""
    if values is None or (isinstance(values, list) and len(values) == 0):
        return np.zeros((NUM_SLOTS, 3))
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise DataError(where, "keypoints must be a flat list of numbers") from None
    if arr.size % 3 != 0:
        raise DataError(where, f"keypoints length {arr.size} is not a multiple of 3 (x, y, v triples)")
    num = arr.size // 3
    expected = NUM_SLOTS if layout == "posetrack" else len(COCO_NAMES)
    if num != expected:
        raise DataError(where, f"unknown keypoint layout: {num} joints (expected {expected} for {layout})")
    if not np.all(np.isfinite(arr)):
        raise DataError(where, "keypoints contain NaN or infinite values")
    return to_posetrack(arr.reshape(num, 3), layout)


_CHECK_INSIDE = contextvars.ContextVar("stdpose_check_inside", default=True)


@contextmanager
def keypoints_anywhere() -> Iterator[None]:
    """Within this block `check_inside` accepts keypoints anywhere: for reading predictions to be scored (a metric
    scores what it is given; the evaluator counts the far-out joints instead)."""
    token = _CHECK_INSIDE.set(False)
    try:
        yield
    finally:
        _CHECK_INSIDE.reset(token)


def check_inside(person: Person, frame: Frame, where: str) -> None:
    """DataError when an annotated keypoint lies far outside the image (see OUTSIDE_TOLERANCE)."""
    if not frame.width or not frame.height or not _CHECK_INSIDE.get():
        return
    pts = person.keypoints[person.annotated, :2]
    if len(pts) == 0:
        return
    mx, my = OUTSIDE_TOLERANCE * frame.width, OUTSIDE_TOLERANCE * frame.height
    bad = (pts[:, 0] < -mx) | (pts[:, 0] > frame.width + mx) | (pts[:, 1] < -my) | (pts[:, 1] > frame.height + my)
    if np.any(bad):
        x, y = pts[np.argmax(bad)]
        raise DataError(where, f"keypoint ({x:.1f}, {y:.1f}) lies outside the {frame.width}x{frame.height} image")


def int_or_none(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def video_name_from_file(file_name: str, fallback: str) -> str:
    parent = Path(file_name).parent.name
    return parent or fallback


def json_number(v: float) -> int | float:
    """Write integral floats as ints (PoseTrack files use ints for labeled pixels and flags)."""
    f = float(v)
    return int(f) if f.is_integer() else f


