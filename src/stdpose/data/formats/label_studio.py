"""Label Studio JSON exports: recognised so they get a clear answer, not read.

Label Studio has no video keypoint format: its `KeyPointLabels` tag works on images only, and its video labeling
(`<Video>` with `VideoRectangle`) tracks rectangles (`"type": "videorectangle"`, a box sequence per object), not
joints. There is therefore no Label Studio export that holds pose tracks in a video, and reading one would at best
give per-image keypoints without frame order or identities. Such a file is refused with a message that names
the format and what to export instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

from stdpose.errors import DataError


def is_label_studio(data: Any) -> bool:
    """A Label Studio JSON export: a list of tasks with `data` and `annotations` (or `predictions`)."""
    return (isinstance(data, list) and bool(data) and isinstance(data[0], dict) and "data" in data[0]
            and ("annotations" in data[0] or "predictions" in data[0]))


def _result_types(data: list) -> set[str]:
    types = set()
    for task in data[:50]:
        for ann in (task.get("annotations") or []) + (task.get("predictions") or []):
            for r in (ann.get("result") or []) if isinstance(ann, dict) else []:
                if isinstance(r, dict) and "type" in r:
                    types.add(str(r["type"]))
    return types


def refuse_label_studio(path: str | Path, data: list) -> NoReturn:
    """DataError naming the Label Studio format and why it cannot hold video poses."""
    types = sorted(_result_types(data))
    found = f" (its results are {', '.join(types)})" if types else ""
    raise DataError(path, "Label Studio JSON export" + found + ": Label Studio has no video keypoint format "
                          "(KeyPointLabels is for images, video tracking is VideoRectangle boxes only), so it "
                          "cannot carry pose tracks; label the video in CVAT (skeleton tracks) or export COCO "
                          "keypoints with one image per frame and track_id")
