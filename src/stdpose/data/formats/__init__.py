"""Readers and writers for pose annotation files, one module per format, all into `records.Video`.

`read_annotations` detects the format of a file (or of every file in a folder) with `detect_format`;
`write_annotations` writes a video in a named format. Each format module has its own `read_*` and `write_*`
(PoseTrack18/21, PoseTrack17, COCO keypoints incl. CVAT's COCO export, CVAT for video 1.1 XML, detections).
Round trips are lossless; every problem raises `DataError` naming the file.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from stdpose.data.formats.coco_keypoints import read_coco_keypoints, write_coco_keypoints
from stdpose.data.formats.common import COCO_CATEGORY, POSETRACK18_CATEGORY, load_json
from stdpose.data.formats.cvat_video import is_cvat_xml, read_cvat_video, write_cvat_video
from stdpose.data.formats.detections import Detection, read_detections, write_detections
from stdpose.data.formats.label_studio import is_label_studio, refuse_label_studio
from stdpose.data.formats.posetrack17 import posetrack17_dict, read_posetrack17, write_posetrack17
from stdpose.data.formats.posetrack18 import is_posetrack18, posetrack18_dict, read_posetrack18, write_posetrack18
from stdpose.data.records import Video
from stdpose.errors import DataError

__all__ = [
    "COCO_CATEGORY", "FORMATS", "POSETRACK18_CATEGORY", "Detection", "detect_format",
    "load_json", "posetrack17_dict", "posetrack18_dict", "read_annotations", "read_coco_keypoints",
    "read_cvat_video", "read_detections", "read_posetrack17", "read_posetrack18", "write_annotations",
    "write_coco_keypoints", "write_cvat_video", "write_detections", "write_posetrack17", "write_posetrack18",
]

FORMATS = ("posetrack18", "posetrack17", "coco", "cvat_coco", "cvat_video")  # what write_annotations writes


# ----------------------------------------------------------------------------------------------------------------
# folder / auto-detection


def detect_format(data: Any) -> str:
    """'posetrack18', 'posetrack17', 'coco', 'cvat_video', 'label_studio' or 'unknown' for a file path or for
    parsed JSON (a path is sniffed for CVAT XML first, then parsed as JSON)."""
    if isinstance(data, str | Path):
        if is_cvat_xml(data):
            return "cvat_video"
        data = load_json(data)
    if isinstance(data, dict) and "annolist" in data:
        return "posetrack17"
    if isinstance(data, list) and data and isinstance(data[0], dict) and "annolist" in data[0]:
        return "posetrack17"
    if is_posetrack18(data):
        return "posetrack18"
    if isinstance(data, dict) and isinstance(data.get("images"), list) and "annotations" in data:
        return "coco"
    if is_label_studio(data):
        return "label_studio"
    return "unknown"


def read_annotations(path: str | Path, skipped: Counter | None = None, node_map: Any = None) -> list[Video]:
    """Read a file, or every *.json / *.xml in a folder (sorted, one or more videos each), detecting the format.

    `skipped` (optional) accumulates the counted skips of the readers (e.g. "degenerate_bbox"). `node_map`: the
    CVAT skeleton node map ("posetrack", "coco", a mapping file or dict; default: detected)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".xml") and p.is_file())
        if not files:
            raise DataError(path, "folder holds no .json or .xml annotation files")
        videos: list[Video] = []
        for f in files:
            videos.extend(read_annotations(f, skipped, node_map))
        return videos
    if is_cvat_xml(path):
        return read_cvat_video(path, node_map, skipped)
    data = load_json(path)
    kind = detect_format(data)  # sniffed on the parsed data (detect_format(path) would parse the file again)
    if kind == "posetrack18":
        return read_posetrack18(path, skipped)
    if kind == "posetrack17":
        return read_posetrack17(path)
    if kind == "coco":
        return read_coco_keypoints(path, skipped)
    if kind == "label_studio":
        refuse_label_studio(path, data)
    raise DataError(path, "unrecognised annotation format (expected PoseTrack18/21, PoseTrack17, COCO keypoints "
                          "or CVAT for video 1.1 XML)")


def write_annotations(video: Video | list[Video], path: str | Path, fmt: str | None = None,
                      node_map: Any = None) -> None:
    """Write in `fmt` (one of FORMATS; default: the format the video was read from, else PoseTrack18)."""
    videos = [video] if isinstance(video, Video) else list(video)
    fmt = fmt or (videos[0].extra.get("format") if videos else None) or "posetrack18"
    if fmt in ("coco", "cvat_coco"):
        write_coco_keypoints(videos, path, layout=videos[0].extra.get("layout", "coco") if videos else "coco",
                             cvat=fmt == "cvat_coco" or bool(videos and videos[0].extra.get("cvat_attributes")))
    elif fmt == "posetrack17":
        if len(videos) != 1:  # one file holds one video: a loop would leave only the last one
            from stdpose.errors import ConfigError

            raise ConfigError(f"{path}: PoseTrack17 holds one video per file, got {len(videos)}; write one file "
                              "per video or choose posetrack18")
        write_posetrack17(videos[0], path)
    elif fmt == "cvat_video":
        write_cvat_video(videos, path, node_map)
    elif fmt == "posetrack18":
        write_posetrack18(videos, path)
    else:
        from stdpose.errors import ConfigError

        raise ConfigError(f"unknown output format {fmt!r}; one of {', '.join(FORMATS)}")
