"""PoseTrack17 JSON as converted by poseval (`annolist` of `image`, `annorect`, `annopoints`, ...).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from stdpose.atomic import atomic_write_json
from stdpose.data.formats.common import (
    as_bool,
    as_number,
    int_or_none,
    json_number,
    load_json,
    video_name_from_file,
)
from stdpose.data.formats.posetrack18 import PT18_ANN_FIELDS
from stdpose.data.records import Frame, Person, Video
from stdpose.errors import DataError
from stdpose.skeleton import (
    NUM_SLOTS,
    POSETRACK17_TO_SLOT,
)

# ----------------------------------------------------------------------------------------------------------------
# PoseTrack17 (poseval JSON)


def _unwrap(value: Any) -> Any:
    """poseval wraps scalars in one-element lists ([v]); accept both forms."""
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def _pt17_annolist(data: Any, path: Path) -> list:
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict):
        data = data[0]
    if not isinstance(data, dict) or not isinstance(data.get("annolist"), list):
        raise DataError(path, "not a PoseTrack17 file: expected an object with an 'annolist' list")
    return data["annolist"]


_PT17_RECT_FIELDS = {"x1", "y1", "x2", "y2", "score", "track_id", "annopoints"}
_PT17_ENTRY_FIELDS = {"image", "annorect", "imgnum", "is_labeled", "ignore_regions"}


def read_posetrack17(path: str | Path) -> list[Video]:
    """Read a PoseTrack17 JSON file as converted by poseval (one video; frames in `imgnum` order).

    `annorect` x1/y1/x2/y2 is the HEAD box (poseval's PCKh reference) and becomes `bbox_head`; point ids 0..14
    follow poseval's joint order and are mapped to PoseTrack18 slots. Present points get v = 1 (annotated);
    poseval's `is_visible` flags are kept for writing back. Frames without `is_labeled` count as labeled when they
    hold people.
    """
    path = Path(path)
    annolist = _pt17_annolist(load_json(path), path)
    entries = []
    for pos, entry in enumerate(annolist):
        where = f"{path} (annolist #{pos})"
        if not isinstance(entry, dict):
            raise DataError(where, "entry is not an object")
        image = _unwrap(entry.get("image"))
        if not isinstance(image, dict) or not isinstance(image.get("name"), str):
            raise DataError(where, "entry has no image name ('image': [{'name': ...}])")
        entries.append((pos, entry, image["name"]))
    if all(int_or_none(_unwrap(e.get("imgnum"))) is not None for _, e, _ in entries):
        entries.sort(key=lambda t: (int(_unwrap(t[1]["imgnum"])), t[0]))

    frames = []
    for index, (pos, entry, name) in enumerate(entries):
        where = f"{path} (annolist #{pos} '{name}')"
        rects = entry.get("annorect") or []
        if not isinstance(rects, list):
            raise DataError(where, "'annorect' must be a list")
        regions = []
        for region in entry.get("ignore_regions") or []:
            pts = region.get("point", []) if isinstance(region, dict) else None
            if not isinstance(pts, list):
                raise DataError(where, "ignore region without a 'point' list")
            try:
                xs = tuple(float(_unwrap(p["x"])) for p in pts)
                ys = tuple(float(_unwrap(p["y"])) for p in pts)
            except (KeyError, TypeError, ValueError):
                raise DataError(where, "ignore region point without numeric x and y") from None
            regions.append((xs, ys))
        labeled = _unwrap(entry.get("is_labeled"))
        extra = {k: v for k, v in entry.items() if k not in _PT17_ENTRY_FIELDS}
        if entry.get("imgnum") is not None:
            extra["imgnum"] = int_or_none(_unwrap(entry["imgnum"]))
        if labeled is None:
            extra["_no_is_labeled"] = True
        frame = Frame(
            index=index,
            file_name=name,
            is_labeled=as_bool(labeled, where, "is_labeled") if labeled is not None else len(rects) > 0,
            ignore_regions=regions,
            extra=extra,
        )
        for k, rect in enumerate(rects):
            frame.persons.append(_person_from_pt17(rect, f"{where} (annorect #{k})"))
        frames.append(frame)

    first = frames[0].file_name if frames else path.stem
    name = video_name_from_file(first, path.stem)
    vid_id = name.split("_")[0] if name.split("_")[0].isdigit() else None
    video = Video(name=name, frames=frames, vid_id=vid_id, source=str(path), extra={"format": "posetrack17"})
    video.validate()
    return [video]


def _person_from_pt17(rect: Any, where: str) -> Person:
    if not isinstance(rect, dict):
        raise DataError(where, "annorect entry is not an object")
    kps = np.zeros((NUM_SLOTS, 3))
    scores = np.zeros(NUM_SLOTS)
    has_scores = False
    visible: dict[int, Any] = {}
    annopoints = _unwrap(rect.get("annopoints"))
    points = annopoints.get("point", []) if isinstance(annopoints, dict) else []
    for point in points or []:
        try:
            pid = int(_unwrap(point["id"]))
            x, y = float(_unwrap(point["x"])), float(_unwrap(point["y"]))
        except (KeyError, TypeError, ValueError):
            raise DataError(where, f"point without numeric id, x, y: {point!r}") from None
        if not 0 <= pid < len(POSETRACK17_TO_SLOT):
            raise DataError(where, f"unknown keypoint layout: point id {pid} (PoseTrack17 ids are 0..14)")
        if not (math.isfinite(x) and math.isfinite(y)):
            raise DataError(where, f"point {pid} has non-finite coordinates")
        slot = POSETRACK17_TO_SLOT[pid]
        kps[slot] = (x, y, 1.0)
        if "is_visible" in point:
            visible[slot] = _unwrap(point["is_visible"])
        if "score" in point:
            scores[slot] = as_number(point["score"], where, "joint score")
            has_scores = True
    head = None
    if all(k in rect for k in ("x1", "y1", "x2", "y2")):
        try:
            x1, y1, x2, y2 = (float(_unwrap(rect[k])) for k in ("x1", "y1", "x2", "y2"))
        except (TypeError, ValueError):
            raise DataError(where, "head box x1/y1/x2/y2 must be numbers") from None
        head = (x1, y1, x2 - x1, y2 - y1)
    extra = {k: v for k, v in rect.items() if k not in _PT17_RECT_FIELDS}
    if visible:
        extra["_pt17_visible"] = visible
    score = _unwrap(rect.get("score"))
    return Person(
        keypoints=kps,
        track_id=int_or_none(_unwrap(rect.get("track_id"))),
        bbox_head=head,
        scores=scores if has_scores else None,
        score=None if score is None else as_number(score, where, "score"),
        extra=extra,
    )


def posetrack17_dict(video: Video) -> dict:
    """The PoseTrack17 (poseval) JSON object for one video (what `write_posetrack17` saves)."""
    annolist = []
    for frame in video.frames:
        entry = {k: v for k, v in frame.extra.items() if not k.startswith("_") and k != "imgnum"}
        entry["image"] = [{"name": frame.file_name}]
        imgnum = frame.extra.get("imgnum")
        entry["imgnum"] = [int(imgnum) if imgnum is not None else frame.index + 1]
        if not frame.extra.get("_no_is_labeled"):
            entry["is_labeled"] = [1 if frame.is_labeled else 0]
        if frame.ignore_regions:
            entry["ignore_regions"] = [
                {"point": [{"x": [json_number(x)], "y": [json_number(y)]} for x, y in zip(xs, ys)]}
                for xs, ys in frame.ignore_regions
            ]
        entry["annorect"] = [_pt17_rect(p) for p in frame.persons]
        annolist.append(entry)
    return {"annolist": annolist}


def _pt17_rect(person: Person) -> dict:
    rect = {k: v for k, v in person.extra.items() if not k.startswith("_") and k not in PT18_ANN_FIELDS}
    if person.track_id is not None:
        rect["track_id"] = [int(person.track_id)]
    if person.bbox_head is not None:
        x, y, w, h = person.bbox_head
        rect.update(x1=[json_number(x)], y1=[json_number(y)], x2=[json_number(x + w)], y2=[json_number(y + h)])
    if person.score is not None:
        rect["score"] = [float(person.score)]
    visible = {int(k): v for k, v in person.extra.get("_pt17_visible", {}).items()}
    points = []
    for pid, slot in enumerate(POSETRACK17_TO_SLOT):
        if person.keypoints[slot, 2] <= 0:
            continue
        point = {"id": [pid], "x": [json_number(person.keypoints[slot, 0])],
                 "y": [json_number(person.keypoints[slot, 1])]}
        if person.scores is not None:
            point["score"] = [float(person.scores[slot])]
        if slot in visible:
            point["is_visible"] = [visible[slot]]
        points.append(point)
    rect["annopoints"] = [{"point": points}]
    return rect


def write_posetrack17(video: Video, path: str | Path) -> None:
    """Write one video as PoseTrack17 (poseval) JSON, atomically. Ears (no PoseTrack17 id) are not written."""
    atomic_write_json(path, posetrack17_dict(video))


