"""PoseTrack18 / PoseTrack21 JSON: COCO-like `images` with `vid_id`, `frame_id`, `is_labeled`, ignore regions;
`annotations` with 17-slot `keypoints`, `track_id`, `bbox`, `bbox_head`, optional `scores`.

Round trips are lossless: fields stdpose does not interpret are kept in the records' `extra` dicts.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from stdpose.atomic import atomic_write_json
from stdpose.data.formats.common import (
    POSETRACK18_CATEGORY,
    as_bool,
    as_box,
    as_id,
    as_number,
    check_inside,
    int_or_none,
    json_number,
    keypoints_array,
    load_json,
    video_name_from_file,
)
from stdpose.data.records import Frame, Person, Video
from stdpose.errors import DataError
from stdpose.skeleton import (
    COCO_NAMES,
    COCO_TO_POSETRACK,
    NUM_SLOTS,
    POSETRACK_SLOTS,
)

log = logging.getLogger(__name__)



_PT18_IMAGE_FIELDS = {"file_name", "id", "frame_id", "vid_id", "is_labeled", "ignore_regions_x", "ignore_regions_y",
                      "width", "height"}
PT18_ANN_FIELDS = {"keypoints", "track_id", "bbox", "bbox_head", "scores", "score", "person_id", "propagated",
                    "image_id", "num_keypoints", "category_id"}


# ----------------------------------------------------------------------------------------------------------------
# PoseTrack18 / PoseTrack21


def is_posetrack18(data: Any) -> bool:
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        return False
    return any(isinstance(im, dict) and ("vid_id" in im or "frame_id" in im) for im in data["images"])


def layout_of_categories(data: dict, path: Path) -> str:
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
    A person box with zero or negative width/height is a counted skip (see `person_from_pt18`) added to `skipped`.
    """
    path = Path(path)
    counts = skipped if skipped is not None else Counter()
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(path, "not a PoseTrack18/21 file: expected an object with an 'images' list")
    anns = data.get("annotations", [])
    if not isinstance(anns, list):
        raise DataError(path, "'annotations' must be a list")
    layout = layout_of_categories(data, path)

    # images -> frames, grouped by video
    groups: dict[str, list[tuple[int, dict]]] = {}
    for pos, im in enumerate(data["images"]):
        if not isinstance(im, dict) or not isinstance(im.get("file_name"), str):
            raise DataError(path, f"image #{pos} has no 'file_name'")
        vid = str(im.get("vid_id", video_name_from_file(im["file_name"], path.stem)))
        groups.setdefault(vid, []).append((pos, im))

    frames_by_image: dict[Any, Frame] = {}
    videos: list[Video] = []
    for vid, items in groups.items():
        if all(int_or_none(im.get("frame_id")) is not None for _, im in items):
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
                regions.append((tuple(as_number(v, where, "ignore region x") for v in rx),
                                tuple(as_number(v, where, "ignore region y") for v in ry)))
            extra = {k: v for k, v in im.items() if k not in _PT18_IMAGE_FIELDS}
            if "ignore_regions_x" not in im:
                extra["_no_ignore_regions"] = True
            frame = Frame(
                index=index,
                file_name=im["file_name"],
                is_labeled=as_bool(im.get("is_labeled"), where, "is_labeled"),
                image_id=int_or_none(im.get("id")),
                frame_id=int_or_none(im.get("frame_id")),
                ignore_regions=regions,
                width=int_or_none(im.get("width")),
                height=int_or_none(im.get("height")),
                extra=extra,
            )
            frames.append(frame)
            key = as_id(im.get("id", im["file_name"]), where, "image id")
            if key in frames_by_image:
                raise DataError(where, f"duplicate image id {key}")
            frames_by_image[key] = frame
        name = video_name_from_file(items[0][1]["file_name"], vid)
        vid_extra = {"categories": data["categories"]} if "categories" in data else {}
        videos.append(Video(name=name, frames=frames, vid_id=vid, source=str(path), extra=vid_extra))

    for pos, ann in enumerate(anns):
        where = f"{path} (annotation #{pos})"
        if not isinstance(ann, dict):
            raise DataError(where, "annotation is not an object")
        frame = frames_by_image.get(as_id(ann.get("image_id"), where, "image_id"))
        if frame is None:
            raise DataError(where, f"image_id {ann.get('image_id')!r} matches no image")
        frame.persons.append(person_from_pt18(ann, where, layout, frame, counts))

    _infer_is_labeled(data["images"], videos, path, counts)
    warn_degenerate(path, counts)
    for video in videos:
        video.validate()
    return videos


def _infer_is_labeled(images: list, videos: list[Video], path: Path, counts: Counter) -> None:
    """A video none of whose images carries `is_labeled` (a hand-made file): its frames with persons are taken as
    labeled, as PoseTrack17 files are read; counted in `counts["is_labeled_inferred"]` and logged."""
    flagged = {str(im.get("vid_id", video_name_from_file(im["file_name"], path.stem)))
               for im in images if "is_labeled" in im}
    for video in videos:
        if video.vid_id in flagged:
            continue
        inferred = 0
        for frame in video.frames:
            frame.is_labeled = bool(frame.persons)
            inferred += frame.is_labeled
        counts["is_labeled_inferred"] += inferred
        video.extra["is_labeled_inferred"] = inferred
        if inferred:
            log.warning("%s: no image of video %s has 'is_labeled'; its %d frame(s) with persons are taken as "
                        "labeled", path, video.name, inferred)


def warn_degenerate(path: Path, counts: Counter) -> None:
    if counts.get("degenerate_bbox"):
        log.warning("%s: %d person boxes with zero or negative size ignored (box taken from the keypoints)",
                    path, counts["degenerate_bbox"])


def person_from_pt18(ann: dict, where: str, layout: str, frame: Frame, skipped: Counter | None = None) -> Person:
    """One annotation -> Person. A box with zero or negative width/height is a documented, counted skip: the record
    gets bbox None (users of the box fall back to the keypoints' box), the original value stays in `extra` so it
    is written back unchanged, and `skipped["degenerate_bbox"]` counts it. Real annotation sets do contain a few
    such boxes, and refusing the whole file for one of them would be worse than this fallback."""
    kps = keypoints_array(ann.get("keypoints"), where, layout)
    scores = ann.get("scores")
    extra = {k: v for k, v in ann.items() if k not in PT18_ANN_FIELDS}
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
    bbox = as_box(ann.get("bbox"), where, "bbox")
    if bbox is not None and (bbox[2] <= 0 or bbox[3] <= 0):
        extra["bbox"] = ann["bbox"]
        bbox = None
        if skipped is not None:
            skipped["degenerate_bbox"] += 1
    person = Person(
        keypoints=kps,
        track_id=int_or_none(ann.get("track_id")),
        bbox=bbox,
        bbox_head=as_box(ann.get("bbox_head"), where, "bbox_head"),
        scores=scores,
        score=None if ann.get("score") is None else as_number(ann["score"], where, "score"),
        person_id=int_or_none(ann.get("person_id")),
        propagated=as_bool(ann.get("propagated"), where, "propagated"),
        extra=extra,
    )
    check_inside(person, frame, where)
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
        out["ignore_regions_x"] = [[json_number(v) for v in xs] for xs, _ in frame.ignore_regions]
        out["ignore_regions_y"] = [[json_number(v) for v in ys] for _, ys in frame.ignore_regions]
    if frame.width is not None:
        out["width"] = int(frame.width)
    if frame.height is not None:
        out["height"] = int(frame.height)
    return out


def pt18_annotation(person: Person, image_id: int, ann_id: int) -> dict:
    out = {k: v for k, v in person.extra.items() if not k.startswith("_")}
    out.setdefault("id", ann_id)
    out["image_id"] = image_id
    out.setdefault("category_id", 1)
    if not (person.extra.get("_no_keypoints") and not person.annotated.any()):
        out["keypoints"] = [json_number(v) for v in person.keypoints.reshape(-1)]
    out["num_keypoints"] = int(person.annotated.sum())
    if person.track_id is not None:
        out["track_id"] = int(person.track_id)
    if person.person_id is not None:
        out["person_id"] = int(person.person_id)
    if person.bbox is not None:
        out["bbox"] = [json_number(v) for v in person.bbox]
    if person.bbox_head is not None:
        out["bbox_head"] = [json_number(v) for v in person.bbox_head]
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
    used = {int(p.extra["id"]) for v in videos for f in v.frames for p in f.persons
            if int_or_none(p.extra.get("id")) is not None}  # the input's annotation ids stay; new ones avoid them
    top = max(used, default=0)
    for video in videos:
        categories = categories or video.extra.get("categories")
        for frame in video.frames:
            image = _pt18_image(video, frame)
            images.append(image)
            for k, person in enumerate(frame.persons):
                ann_id = int(image["id"]) * 100 + k
                if int_or_none(person.extra.get("id")) is None:
                    if ann_id in used:
                        top = ann_id = max(top, max(used)) + 1
                    used.add(ann_id)
                annotations.append(pt18_annotation(person, image["id"], ann_id))
    if categories is None or layout_of_categories({"categories": categories}, Path("?")) != "posetrack":
        categories = [POSETRACK18_CATEGORY]
    return {"images": images, "annotations": annotations, "categories": copy.deepcopy(categories)}


def write_posetrack18(video: Video | list[Video], path: str | Path) -> None:
    """Write one video (or several, merged like test_posetrack18_val.json) as PoseTrack18 JSON, atomically.

    Person `scores` are written when present, `propagated: true` for pseudo-labels, and every unknown field kept
    in `extra` goes back out, so read -> write -> read gives the same records.
    """
    videos = [video] if isinstance(video, Video) else list(video)
    atomic_write_json(path, posetrack18_dict(videos))


