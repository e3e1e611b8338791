"""COCO person-keypoint files (17 COCO joints, mapped to PoseTrack18 slots with `skeleton.to_posetrack`).
"""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from stdpose.atomic import atomic_write_json
from stdpose.data.formats.common import (
    COCO_CATEGORY,
    POSETRACK18_CATEGORY,
    as_id,
    int_or_none,
    json_number,
    load_json,
)
from stdpose.data.formats.posetrack18 import layout_of_categories, person_from_pt18, pt18_annotation, warn_degenerate
from stdpose.data.records import Frame, Person, Video
from stdpose.errors import DataError
from stdpose.skeleton import (
    COCO_NAMES,
    COCO_TO_POSETRACK,
)

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
    layout = layout_of_categories(data, path)
    frames, by_id = [], {}
    for pos, im in enumerate(data["images"]):
        if not isinstance(im, dict) or not isinstance(im.get("file_name"), str) or "id" not in im:
            raise DataError(path, f"image #{pos} needs 'file_name' and 'id'")
        frame = Frame(
            index=pos,
            file_name=im["file_name"],
            is_labeled=True,
            image_id=int_or_none(im["id"]),
            width=int_or_none(im.get("width")),
            height=int_or_none(im.get("height")),
            extra={k: v for k, v in im.items() if k not in _COCO_IMAGE_FIELDS},
        )
        if as_id(im["id"], f"{path} (image #{pos})", "image id") in by_id:
            raise DataError(path, f"image #{pos}: duplicate image id {im['id']}")
        by_id[im["id"]] = frame
        frames.append(frame)
    for pos, ann in enumerate(data.get("annotations", [])):
        where = f"{path} (annotation #{pos})"
        if not isinstance(ann, dict):
            raise DataError(where, "annotation is not an object")
        frame = by_id.get(as_id(ann.get("image_id"), where, "image_id"))
        if frame is None:
            raise DataError(where, f"image_id {ann.get('image_id')!r} matches no image")
        person = person_from_pt18(ann, where, layout, frame, counts)
        if layout == "coco":
            flat = np.asarray(ann.get("keypoints") or np.zeros(len(COCO_NAMES) * 3), dtype=np.float64).reshape(-1, 3)
            person.extra["_coco_eyes"] = flat[list(_COCO_EYES)].tolist()
        frame.persons.append(person)
    warn_degenerate(path, counts)
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
                ann = pt18_annotation(person, image_id, next_ann)
                next_ann = max(next_ann, int(ann["id"])) + 1
                if layout == "coco":
                    kps = _coco_keypoints(person)
                    ann["keypoints"] = [json_number(v) for v in kps.reshape(-1)]
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


