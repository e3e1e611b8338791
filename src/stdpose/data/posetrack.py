"""Readers and writers for pose annotation files, all into the one in-memory form (`records.Video`).

Formats:
- PoseTrack18 / PoseTrack21 JSON (COCO-like: `images` with `vid_id`, `frame_id`, `is_labeled`, ignore regions;
  `annotations` with 17-slot `keypoints`, `track_id`, `bbox`, `bbox_head`, optional `scores`).
- PoseTrack17 JSON as converted by poseval (`annolist` of `image`, `annorect`, `annopoints`, ...).
- COCO keypoint files (17 COCO joints, converted to PoseTrack18 slots with `skeleton.to_posetrack`).
- Person detection files in COCO results style (`image_id`, `bbox`, `score`).

Round trips are lossless: fields stdpose does not interpret are kept in the records' `extra` dicts and written back.
Every problem with a file raises `DataError` naming the file and what is wrong.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stdpose.atomic import atomic_write_json
from stdpose.data.records import Frame, Person, Video
from stdpose.errors import DataError
from stdpose.skeleton import (
    COCO_NAMES,
    COCO_TO_POSETRACK,
    NUM_SLOTS,
    POSETRACK17_TO_SLOT,
    POSETRACK_SLOTS,
    to_posetrack,
)

log = logging.getLogger(__name__)

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
_PT18_IMAGE_FIELDS = {"file_name", "id", "frame_id", "vid_id", "is_labeled", "ignore_regions_x", "ignore_regions_y",
                      "width", "height"}
_PT18_ANN_FIELDS = {"keypoints", "track_id", "bbox", "bbox_head", "scores", "score", "person_id", "propagated",
                    "image_id", "num_keypoints", "category_id"}


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


def _as_box(value: Any, where: str, name: str) -> tuple[float, float, float, float] | None:
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


def _keypoints_array(values: Any, where: str, layout: str = "posetrack") -> np.ndarray:
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


def _check_inside(person: Person, frame: Frame, where: str) -> None:
    """DataError when an annotated keypoint lies far outside the image (see OUTSIDE_TOLERANCE)."""
    if not frame.width or not frame.height:
        return
    pts = person.keypoints[person.annotated, :2]
    if len(pts) == 0:
        return
    mx, my = OUTSIDE_TOLERANCE * frame.width, OUTSIDE_TOLERANCE * frame.height
    bad = (pts[:, 0] < -mx) | (pts[:, 0] > frame.width + mx) | (pts[:, 1] < -my) | (pts[:, 1] > frame.height + my)
    if np.any(bad):
        x, y = pts[np.argmax(bad)]
        raise DataError(where, f"keypoint ({x:.1f}, {y:.1f}) lies outside the {frame.width}x{frame.height} image")


def _int_or_none(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _video_name(file_name: str, fallback: str) -> str:
    parent = Path(file_name).parent.name
    return parent or fallback


def _json_number(v: float) -> int | float:
    """Write integral floats as ints (PoseTrack files use ints for labeled pixels and flags)."""
    f = float(v)
    return int(f) if f.is_integer() else f


# ----------------------------------------------------------------------------------------------------------------
# PoseTrack18 / PoseTrack21


def _is_posetrack18(data: Any) -> bool:
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        return False
    return any(isinstance(im, dict) and ("vid_id" in im or "frame_id" in im) for im in data["images"])


def _layout_of_categories(data: dict, path: Path) -> str:
    """'posetrack' or 'coco' from the category's keypoint names; DataError for an unknown layout."""
    cats = data.get("categories")
    if not isinstance(cats, list):
        return "posetrack"
    for cat in cats:
        if not isinstance(cat, dict) or "keypoints" not in cat:
            continue
        names = list(cat["keypoints"])
        if names == list(POSETRACK_SLOTS):
            return "posetrack"
        if names == list(COCO_NAMES):
            return "coco"
        raise DataError(path, f"unknown keypoint layout in categories ({len(names)} joints: {names[:5]}...)")
    return "posetrack"


def read_posetrack18(path: str | Path, skipped: Counter | None = None) -> list[Video]:
    """Read a PoseTrack18/21 JSON file (one or several videos: frames are grouped by `vid_id`).

    Frames of a video are ordered by `frame_id` (file order when missing); Frame.index is that position.
    `file_name` is kept exactly as written (relative to the dataset root). Person `bbox` stays None when absent.
    A person box with zero or negative width/height is a counted skip (see `_person_from_pt18`) added to `skipped`.
    """
    path = Path(path)
    counts = skipped if skipped is not None else Counter()
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(path, "not a PoseTrack18/21 file: expected an object with an 'images' list")
    anns = data.get("annotations", [])
    if not isinstance(anns, list):
        raise DataError(path, "'annotations' must be a list")
    layout = _layout_of_categories(data, path)

    # images -> frames, grouped by video
    groups: dict[str, list[tuple[int, dict]]] = {}
    for pos, im in enumerate(data["images"]):
        if not isinstance(im, dict) or not isinstance(im.get("file_name"), str):
            raise DataError(path, f"image #{pos} has no 'file_name'")
        vid = str(im.get("vid_id", _video_name(im["file_name"], path.stem)))
        groups.setdefault(vid, []).append((pos, im))

    frames_by_image: dict[Any, Frame] = {}
    videos: list[Video] = []
    for vid, items in groups.items():
        if all(_int_or_none(im.get("frame_id")) is not None for _, im in items):
            items = sorted(items, key=lambda t: (int(t[1]["frame_id"]), t[0]))
        frames: list[Frame] = []
        for index, (pos, im) in enumerate(items):
            where = f"{path} (image #{pos} '{im['file_name']}')"
            xs, ys = im.get("ignore_regions_x", []) or [], im.get("ignore_regions_y", []) or []
            if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys):
                raise DataError(where, "ignore_regions_x and ignore_regions_y must be lists of equal length")
            regions = []
            for rx, ry in zip(xs, ys):
                if not isinstance(rx, list) or not isinstance(ry, list) or len(rx) != len(ry):
                    raise DataError(where, "an ignore region's x and y lists differ in length")
                regions.append((tuple(float(v) for v in rx), tuple(float(v) for v in ry)))
            extra = {k: v for k, v in im.items() if k not in _PT18_IMAGE_FIELDS}
            if "ignore_regions_x" not in im:
                extra["_no_ignore_regions"] = True
            frame = Frame(
                index=index,
                file_name=im["file_name"],
                is_labeled=bool(im.get("is_labeled", False)),
                image_id=_int_or_none(im.get("id")),
                frame_id=_int_or_none(im.get("frame_id")),
                ignore_regions=regions,
                width=_int_or_none(im.get("width")),
                height=_int_or_none(im.get("height")),
                extra=extra,
            )
            frames.append(frame)
            key = im.get("id", im["file_name"])
            if key in frames_by_image:
                raise DataError(where, f"duplicate image id {key}")
            frames_by_image[key] = frame
        name = _video_name(items[0][1]["file_name"], vid)
        vid_extra = {"categories": data["categories"]} if "categories" in data else {}
        videos.append(Video(name=name, frames=frames, vid_id=vid, source=str(path), extra=vid_extra))

    for pos, ann in enumerate(anns):
        where = f"{path} (annotation #{pos})"
        if not isinstance(ann, dict):
            raise DataError(where, "annotation is not an object")
        frame = frames_by_image.get(ann.get("image_id"))
        if frame is None:
            raise DataError(where, f"image_id {ann.get('image_id')!r} matches no image")
        frame.persons.append(_person_from_pt18(ann, where, layout, frame, counts))

    _warn_degenerate(path, counts)
    for video in videos:
        video.validate()
    return videos


def _warn_degenerate(path: Path, counts: Counter) -> None:
    if counts.get("degenerate_bbox"):
        log.warning("%s: %d person boxes with zero or negative size ignored (box taken from the keypoints)",
                    path, counts["degenerate_bbox"])


def _person_from_pt18(ann: dict, where: str, layout: str, frame: Frame, skipped: Counter | None = None) -> Person:
    """One annotation -> Person. A box with zero or negative width/height is a documented, counted skip: the record
    gets bbox None (users of the box fall back to the keypoints' box), the original value stays in `extra` so it
    is written back unchanged, and `skipped["degenerate_bbox"]` counts it. Real annotation sets do contain a few
    such boxes, and refusing the whole file for one of them would be worse than this fallback."""
    kps = _keypoints_array(ann.get("keypoints"), where, layout)
    scores = ann.get("scores")
    extra = {k: v for k, v in ann.items() if k not in _PT18_ANN_FIELDS}
    if "keypoints" not in ann:
        extra["_no_keypoints"] = True
    if "category_id" in ann and ann["category_id"] != 1:
        extra["category_id"] = ann["category_id"]
    if isinstance(scores, list) and len(scores) == 0:
        extra["scores"] = []  # GT files carry an empty list; keep it for a faithful round trip
        scores = None
    if scores is not None:
        try:
            scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise DataError(where, "scores must be a list of numbers") from None
        if layout == "coco" and scores.size == len(COCO_NAMES):
            scores = np.array([scores[s] if s >= 0 else 0.0 for s in COCO_TO_POSETRACK])
        if scores.size != NUM_SLOTS:
            raise DataError(where, f"scores must have {NUM_SLOTS} values, got {scores.size}")
    bbox = _as_box(ann.get("bbox"), where, "bbox")
    if bbox is not None and (bbox[2] <= 0 or bbox[3] <= 0):
        extra["bbox"] = ann["bbox"]
        bbox = None
        if skipped is not None:
            skipped["degenerate_bbox"] += 1
    person = Person(
        keypoints=kps,
        track_id=_int_or_none(ann.get("track_id")),
        bbox=bbox,
        bbox_head=_as_box(ann.get("bbox_head"), where, "bbox_head"),
        scores=scores,
        score=None if ann.get("score") is None else float(ann["score"]),
        person_id=_int_or_none(ann.get("person_id")),
        propagated=bool(ann.get("propagated", False)),
        extra=extra,
    )
    _check_inside(person, frame, where)
    return person


def _default_image_id(video: Video, frame: Frame) -> int:
    """PoseTrack18's convention: 1, the 6-digit video id, the 4-digit frame number (10034180000)."""
    if video.vid_id is not None and str(video.vid_id).isdigit():
        return int(f"1{int(video.vid_id):06d}{frame.index:04d}")
    return frame.index


def _pt18_image(video: Video, frame: Frame) -> dict:
    image_id = frame.image_id if frame.image_id is not None else _default_image_id(video, frame)
    out = {k: v for k, v in frame.extra.items() if not k.startswith("_")}
    out.update(
        file_name=frame.file_name,
        id=image_id,
        frame_id=frame.frame_id if frame.frame_id is not None else image_id,
        vid_id=video.vid_id if video.vid_id is not None else video.name,
        is_labeled=bool(frame.is_labeled),
    )
    out.setdefault("nframes", video.num_frames)
    if frame.ignore_regions or not frame.extra.get("_no_ignore_regions"):
        out["ignore_regions_x"] = [[_json_number(v) for v in xs] for xs, _ in frame.ignore_regions]
        out["ignore_regions_y"] = [[_json_number(v) for v in ys] for _, ys in frame.ignore_regions]
    if frame.width is not None:
        out["width"] = int(frame.width)
    if frame.height is not None:
        out["height"] = int(frame.height)
    return out


def _pt18_annotation(person: Person, image_id: int, ann_id: int) -> dict:
    out = {k: v for k, v in person.extra.items() if not k.startswith("_")}
    out.setdefault("id", ann_id)
    out["image_id"] = image_id
    out.setdefault("category_id", 1)
    if not (person.extra.get("_no_keypoints") and not person.annotated.any()):
        out["keypoints"] = [_json_number(v) for v in person.keypoints.reshape(-1)]
    out["num_keypoints"] = int(person.annotated.sum())
    if person.track_id is not None:
        out["track_id"] = int(person.track_id)
    if person.person_id is not None:
        out["person_id"] = int(person.person_id)
    if person.bbox is not None:
        out["bbox"] = [_json_number(v) for v in person.bbox]
    if person.bbox_head is not None:
        out["bbox_head"] = [_json_number(v) for v in person.bbox_head]
    if person.scores is not None:
        out["scores"] = [float(v) for v in person.scores]
    if person.score is not None:
        out["score"] = float(person.score)
    if person.propagated:
        out["propagated"] = True
    return out


def posetrack18_dict(videos: list[Video]) -> dict:
    """The PoseTrack18 JSON object for one or several videos (what `write_posetrack18` saves)."""
    images, annotations = [], []
    categories = None
    for video in videos:
        categories = categories or video.extra.get("categories")
        for frame in video.frames:
            image = _pt18_image(video, frame)
            images.append(image)
            for k, person in enumerate(frame.persons):
                annotations.append(_pt18_annotation(person, image["id"], int(image["id"]) * 100 + k))
    if categories is None or _layout_of_categories({"categories": categories}, Path("?")) != "posetrack":
        categories = [POSETRACK18_CATEGORY]
    return {"images": images, "annotations": annotations, "categories": copy.deepcopy(categories)}


def write_posetrack18(video: Video | list[Video], path: str | Path) -> None:
    """Write one video (or several, merged like test_posetrack18_val.json) as PoseTrack18 JSON, atomically.

    Person `scores` are written when present, `propagated: true` for pseudo-labels, and every unknown field kept
    in `extra` goes back out, so read -> write -> read gives the same records.
    """
    videos = [video] if isinstance(video, Video) else list(video)
    atomic_write_json(path, posetrack18_dict(videos))


# ----------------------------------------------------------------------------------------------------------------
# folder / auto-detection


def detect_format(data: Any) -> str:
    """'posetrack18', 'posetrack17', 'coco' or 'unknown' for parsed JSON."""
    if isinstance(data, dict) and "annolist" in data:
        return "posetrack17"
    if isinstance(data, list) and data and isinstance(data[0], dict) and "annolist" in data[0]:
        return "posetrack17"
    if _is_posetrack18(data):
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
    if all(_int_or_none(_unwrap(e.get("imgnum"))) is not None for _, e, _ in entries):
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
            extra["imgnum"] = _int_or_none(_unwrap(entry["imgnum"]))
        if labeled is None:
            extra["_no_is_labeled"] = True
        frame = Frame(
            index=index,
            file_name=name,
            is_labeled=bool(labeled) if labeled is not None else len(rects) > 0,
            ignore_regions=regions,
            extra=extra,
        )
        for k, rect in enumerate(rects):
            frame.persons.append(_person_from_pt17(rect, f"{where} (annorect #{k})"))
        frames.append(frame)

    first = frames[0].file_name if frames else path.stem
    name = _video_name(first, path.stem)
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
            scores[slot] = float(_unwrap(point["score"]))
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
        track_id=_int_or_none(_unwrap(rect.get("track_id"))),
        bbox_head=head,
        scores=scores if has_scores else None,
        score=None if score is None else float(score),
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
                {"point": [{"x": [_json_number(x)], "y": [_json_number(y)]} for x, y in zip(xs, ys)]}
                for xs, ys in frame.ignore_regions
            ]
        entry["annorect"] = [_pt17_rect(p) for p in frame.persons]
        annolist.append(entry)
    return {"annolist": annolist}


def _pt17_rect(person: Person) -> dict:
    rect = {k: v for k, v in person.extra.items() if not k.startswith("_") and k not in _PT18_ANN_FIELDS}
    if person.track_id is not None:
        rect["track_id"] = [int(person.track_id)]
    if person.bbox_head is not None:
        x, y, w, h = person.bbox_head
        rect.update(x1=[_json_number(x)], y1=[_json_number(y)], x2=[_json_number(x + w)], y2=[_json_number(y + h)])
    if person.score is not None:
        rect["score"] = [float(person.score)]
    visible = {int(k): v for k, v in person.extra.get("_pt17_visible", {}).items()}
    points = []
    for pid, slot in enumerate(POSETRACK17_TO_SLOT):
        if person.keypoints[slot, 2] <= 0:
            continue
        point = {"id": [pid], "x": [_json_number(person.keypoints[slot, 0])],
                 "y": [_json_number(person.keypoints[slot, 1])]}
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


# ----------------------------------------------------------------------------------------------------------------
# COCO keypoints

_COCO_EYES = (COCO_NAMES.index("left_eye"), COCO_NAMES.index("right_eye"))
_COCO_IMAGE_FIELDS = {"file_name", "id", "width", "height"}


def read_coco_keypoints(path: str | Path, skipped: Counter | None = None) -> list[Video]:
    """Read a COCO person-keypoints file as one Video (its images are the frames, in file order, all labeled).

    COCO joints are mapped to PoseTrack18 slots (`skeleton.to_posetrack`); head_bottom/head_top stay unannotated
    and the eyes, which PoseTrack lacks, are kept in `Person.extra` so writing COCO back is lossless.
    """
    path = Path(path)
    counts = skipped if skipped is not None else Counter()
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(path, "not a COCO keypoints file: expected an object with an 'images' list")
    if not isinstance(data.get("annotations", []), list):
        raise DataError(path, "'annotations' must be a list")
    layout = _layout_of_categories(data, path)
    frames, by_id = [], {}
    for pos, im in enumerate(data["images"]):
        if not isinstance(im, dict) or not isinstance(im.get("file_name"), str) or "id" not in im:
            raise DataError(path, f"image #{pos} needs 'file_name' and 'id'")
        frame = Frame(
            index=pos,
            file_name=im["file_name"],
            is_labeled=True,
            image_id=_int_or_none(im["id"]),
            width=_int_or_none(im.get("width")),
            height=_int_or_none(im.get("height")),
            extra={k: v for k, v in im.items() if k not in _COCO_IMAGE_FIELDS},
        )
        if im["id"] in by_id:
            raise DataError(path, f"image #{pos}: duplicate image id {im['id']}")
        by_id[im["id"]] = frame
        frames.append(frame)
    for pos, ann in enumerate(data.get("annotations", [])):
        where = f"{path} (annotation #{pos})"
        if not isinstance(ann, dict):
            raise DataError(where, "annotation is not an object")
        frame = by_id.get(ann.get("image_id"))
        if frame is None:
            raise DataError(where, f"image_id {ann.get('image_id')!r} matches no image")
        person = _person_from_pt18(ann, where, layout, frame, counts)
        if layout == "coco":
            flat = np.asarray(ann.get("keypoints") or np.zeros(len(COCO_NAMES) * 3), dtype=np.float64).reshape(-1, 3)
            person.extra["_coco_eyes"] = flat[list(_COCO_EYES)].tolist()
        frame.persons.append(person)
    _warn_degenerate(path, counts)
    extra = {k: v for k, v in data.items() if k not in ("images", "annotations")}
    extra["format"] = "coco"
    extra["layout"] = layout
    video = Video(name=path.stem, frames=frames, source=str(path), extra=extra)
    video.validate()
    return [video]


def _coco_keypoints(person: Person) -> list:
    out = np.zeros((len(COCO_NAMES), 3))
    for slot, src in enumerate(COCO_TO_POSETRACK):
        if src >= 0:
            out[src] = person.keypoints[slot]
    eyes = person.extra.get("_coco_eyes")
    if eyes is not None:
        out[list(_COCO_EYES)] = np.asarray(eyes, dtype=np.float64)
    return out


def write_coco_keypoints(videos: Video | list[Video], path: str | Path, layout: str = "coco") -> None:
    """Write videos as one COCO keypoints file, atomically.

    layout="coco" writes the 17 COCO joints (PoseTrack's head_bottom/head_top have no COCO joint and are dropped);
    layout="posetrack" writes the PoseTrack18 slots with a PoseTrack category (nothing dropped).
    """
    if layout not in ("coco", "posetrack"):
        raise ValueError(f"layout must be 'coco' or 'posetrack', got {layout!r}")
    videos = [videos] if isinstance(videos, Video) else list(videos)
    images, annotations = [], []
    top: dict[str, Any] = {}
    next_image = next_ann = 1
    for video in videos:
        for k, v in video.extra.items():
            if k not in ("format", "layout", "categories"):
                top.setdefault(k, v)
        for frame in video.frames:
            image_id = frame.image_id if frame.image_id is not None else next_image
            next_image = max(next_image, image_id) + 1
            image = {k: v for k, v in frame.extra.items() if not k.startswith("_")}
            image.update(file_name=frame.file_name, id=image_id)
            if frame.width is not None:
                image["width"] = int(frame.width)
            if frame.height is not None:
                image["height"] = int(frame.height)
            images.append(image)
            for person in frame.persons:
                ann = _pt18_annotation(person, image_id, next_ann)
                next_ann = max(next_ann, int(ann["id"])) + 1
                if layout == "coco":
                    kps = _coco_keypoints(person)
                    ann["keypoints"] = [_json_number(v) for v in kps.reshape(-1)]
                    ann["num_keypoints"] = int((kps[:, 2] > 0).sum())
                    if person.scores is not None:
                        sc = np.zeros(len(COCO_NAMES))
                        for slot, src in enumerate(COCO_TO_POSETRACK):
                            if src >= 0:
                                sc[src] = person.scores[slot]
                        ann["scores"] = sc.tolist()
                annotations.append(ann)
    category = copy.deepcopy(COCO_CATEGORY if layout == "coco" else POSETRACK18_CATEGORY)
    atomic_write_json(path, {**top, "images": images, "annotations": annotations, "categories": [category]})


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
        category = _int_or_none(det.get("category_id", 1))
        if category != 1:
            counts["not_person"] += 1
            continue
        box = _as_box(det["bbox"], where, "bbox")
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
