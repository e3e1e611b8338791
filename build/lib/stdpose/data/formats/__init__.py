"""Readers and writers for pose annotation files, one module per format, all into `records.Video`.

`read_annotations` detects the format of a file (or of every file in a folder); each format module has its
own `read_*` and `write_*`. Round trips are lossless; every problem raises `DataError` naming the file.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from stdpose.data.formats.coco_keypoints import read_coco_keypoints, write_coco_keypoints
from stdpose.data.formats.common import COCO_CATEGORY, POSETRACK18_CATEGORY, load_json
from stdpose.data.formats.detections import Detection, read_detections, write_detections
from stdpose.data.formats.posetrack17 import posetrack17_dict, read_posetrack17, write_posetrack17
from stdpose.data.formats.posetrack18 import is_posetrack18, posetrack18_dict, read_posetrack18, write_posetrack18
from stdpose.data.records import Video
from stdpose.errors import DataError

__all__ = [
    "COCO_CATEGORY", "POSETRACK18_CATEGORY", "Detection", "detect_format", "load_json", "posetrack17_dict",
    "posetrack18_dict", "read_annotations", "read_coco_keypoints", "read_detections", "read_posetrack17",
    "read_posetrack18", "write_coco_keypoints", "write_detections", "write_posetrack17", "write_posetrack18",
]


# ----------------------------------------------------------------------------------------------------------------
# folder / auto-detection


def detect_format(data: Any) -> str:
    """'posetrack18', 'posetrack17', 'coco' or 'unknown' for parsed JSON."""
    if isinstance(data, dict) and "annolist" in data:
        return "posetrack17"
    if isinstance(data, list) and data and isinstance(data[0], dict) and "annolist" in data[0]:
        return "posetrack17"
    if is_posetrack18(data):
        return "posetrack18"
    if isinstance(data, dict) and isinstance(data.get("images"), list) and "annotations" in data:
        return "coco"
    return "unknown"


def read_annotations(path: str | Path, skipped: Counter | None = None) -> list[Video]:
    """Read a file, or every *.json in a folder (sorted, one or more videos each), auto-detecting the format.

    `skipped` (optional) accumulates the counted skips of the readers (e.g. "degenerate_bbox")."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix == ".json" and p.is_file())
        if not files:
            raise DataError(path, "folder holds no .json annotation files")
        videos: list[Video] = []
        for f in files:
            videos.extend(read_annotations(f, skipped))
        return videos
    data = load_json(path)
    kind = detect_format(data)
    if kind == "posetrack18":
        return read_posetrack18(path, skipped)
    if kind == "posetrack17":
        return read_posetrack17(path)
    if kind == "coco":
        return read_coco_keypoints(path, skipped)
    raise DataError(path, "unrecognised annotation format (expected PoseTrack18/21, PoseTrack17 or COCO keypoints)")


