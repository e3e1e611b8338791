"""COCO person-keypoint files (17 COCO joints, mapped to PoseTrack18 slots with `skeleton.to_posetrack`), including
CVAT's "COCO Keypoints 1.0" export of a video task.

Which images are labeled: an image's own `is_labeled` when it has one; else, when the file lists images without
any annotation next to annotated ones (a video export lists every frame, keyframes annotated), the annotated
images only; else every image (a plain COCO file). CVAT writes the track of an annotation in
`attributes.track_id` and marks CVAT-interpolated ones `attributes.keyframe: false`: those are not labels (the
frame is not labeled for that track) and are kept aside, written back on a plain round trip and replaced by the
propagated poses after propagation.
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
from stdpose.data.records import UNLABELED_TRACKS, Frame, Person, Video
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
    cvat = False
    interpolated: dict[int, list[tuple[int, dict]]] = {}  # frame index -> (track id, raw annotation)
    for pos, ann in enumerate(data.get("annotations", [])):
        where = f"{path} (annotation #{pos})"
        if not isinstance(ann, dict):
            raise DataError(where, "annotation is not an object")
        frame = by_id.get(as_id(ann.get("image_id"), where, "image_id"))
        if frame is None:
            raise DataError(where, f"image_id {ann.get('image_id')!r} matches no image")
        attributes = ann.get("attributes") if isinstance(ann.get("attributes"), dict) else {}
        if "track_id" in attributes:
            cvat = True
        if attributes.get("keyframe") is False and int_or_none(attributes.get("track_id")) is not None:
            interpolated.setdefault(frame.index, []).append((int(attributes["track_id"]), ann))
            counts["cvat_interpolated_annotations"] += 1
            continue
        person = person_from_pt18(_with_cvat_track(ann), where, layout, frame, counts)
        if person.propagated:  # the writer's v=2 on predicted joints; records use v=1 for every annotated joint
            person.keypoints[person.keypoints[:, 2] > 0, 2] = 1.0
        if "track_id" not in ann and "track_id" in attributes:
            person.extra["_track_in_attributes"] = True
        if layout == "coco":
            flat = np.asarray(ann.get("keypoints") or np.zeros(len(COCO_NAMES) * 3), dtype=np.float64).reshape(-1, 3)
            person.extra["_coco_eyes"] = flat[list(_COCO_EYES)].tolist()
        frame.persons.append(person)
    _mark_labeled(data["images"], frames, interpolated)
    warn_degenerate(path, counts)
    extra = {k: v for k, v in data.items() if k not in ("images", "annotations")}
    extra["format"] = "coco"
    extra["layout"] = layout
    if cvat:
        extra["cvat_attributes"] = True
    video = Video(name=path.stem, frames=frames, source=str(path), extra=extra)
    video.validate()
    return [video]


def _with_cvat_track(ann: dict) -> dict:
    """The annotation with CVAT's `attributes.track_id` as its track id (a top-level one wins)."""
    attributes = ann.get("attributes")
    if "track_id" in ann or not isinstance(attributes, dict) or "track_id" not in attributes:
        return ann
    return {**ann, "track_id": attributes["track_id"]}


def _mark_labeled(images: list, frames: list[Frame], interpolated: dict[int, list[tuple[int, dict]]]) -> None:
    """Frame.is_labeled by the rule of the module docstring; CVAT-interpolated annotations kept aside."""
    explicit = [isinstance(im, dict) and "is_labeled" in im for im in images]
    annotated = [bool(f.persons) for f in frames]
    sparse_listing = any(annotated) and not all(annotated)
    for frame, im, has_flag in zip(frames, images, explicit):
        if has_flag:
            frame.is_labeled = bool(im["is_labeled"])
        elif sparse_listing or interpolated:
            frame.is_labeled = bool(frame.persons)
        else:
            frame.is_labeled = True
        if has_flag:
            frame.extra.pop("is_labeled", None)
            frame.extra["_is_labeled_field"] = True
        kept = interpolated.get(frame.index, [])
        if kept:
            frame.extra["_cvat_interpolated"] = [ann for _, ann in kept]
            if frame.is_labeled:
                frame.extra[UNLABELED_TRACKS] = sorted({t for t, _ in kept})


def _coco_keypoints(person: Person) -> list:
    out = np.zeros((len(COCO_NAMES), 3))
    for slot, src in enumerate(COCO_TO_POSETRACK):
        if src >= 0:
            out[src] = person.keypoints[slot]
    eyes = person.extra.get("_coco_eyes")
    if eyes is not None:
        out[list(_COCO_EYES)] = np.asarray(eyes, dtype=np.float64)
    return out


def write_coco_keypoints(videos: Video | list[Video], path: str | Path, layout: str = "coco",
                         cvat: bool = False) -> None:
    """Write videos as one COCO keypoints file, atomically.

    layout="coco" writes the 17 COCO joints (PoseTrack's head_bottom/head_top have no COCO joint and are dropped);
    layout="posetrack" writes the PoseTrack18 slots with a PoseTrack category (nothing dropped).
    Ids: the input's image and annotation ids are kept; new ones are numbered above the largest, so none collides.
    Propagated persons' predicted joints get v=2 (COCO's "labeled and visible"; v=1 would say "not visible").
    cvat=True writes CVAT's COCO style: the track in `attributes` {track_id, keyframe, occluded}, no top-level
    track_id (propagated poses of a file read from CVAT's COCO export get those attributes anyway).
    """
    if layout not in ("coco", "posetrack"):
        raise ValueError(f"layout must be 'coco' or 'posetrack', got {layout!r}")
    videos = [videos] if isinstance(videos, Video) else list(videos)
    images, annotations = [], []
    top: dict[str, Any] = {}
    # New ids go above every id of the input, so nothing of the input is renumbered and nothing collides.
    used_images = {int(f.image_id) for v in videos for f in v.frames if f.image_id is not None}
    used_anns = {int(p.extra["id"]) for v in videos for f in v.frames for p in f.persons
                 if int_or_none(p.extra.get("id")) is not None}
    used_anns |= {int(a["id"]) for v in videos for f in v.frames for a in f.extra.get("_cvat_interpolated", [])
                  if int_or_none(a.get("id")) is not None}
    next_image = max(used_images, default=0) + 1
    next_ann = max(used_anns, default=0) + 1
    for video in videos:
        propagated_video = "propagation" in video.extra
        for k, v in video.extra.items():
            if k not in ("format", "layout", "categories") and not k.startswith(("_", "cvat_")):
                top.setdefault(k, v)
        for frame in video.frames:
            if frame.image_id is not None:
                image_id = int(frame.image_id)
            else:
                image_id, next_image = next_image, next_image + 1
            image = {k: v for k, v in frame.extra.items() if not k.startswith("_")}
            image.update(file_name=frame.file_name, id=image_id)
            if frame.extra.get("_is_labeled_field"):
                image["is_labeled"] = bool(frame.is_labeled)
            if frame.width is not None:
                image["width"] = int(frame.width)
            if frame.height is not None:
                image["height"] = int(frame.height)
            images.append(image)
            if not propagated_video:
                annotations.extend(frame.extra.get("_cvat_interpolated", []))  # a plain round trip keeps them
            for person in frame.persons:
                own_id = int_or_none(person.extra.get("id")) is not None
                ann = pt18_annotation(person, image_id, next_ann)
                if not own_id:
                    next_ann += 1
                if person.extra.get("_track_in_attributes") or (cvat and person.track_id is not None):
                    ann.pop("track_id", None)
                if cvat and person.track_id is not None:
                    attributes = dict(ann.get("attributes") or {})
                    attributes["track_id"] = int(person.track_id)
                    attributes.setdefault("keyframe", True)
                    attributes.setdefault("occluded", False)
                    ann["attributes"] = attributes
                if layout == "coco":
                    kps = _coco_keypoints(person)
                    if person.propagated:  # predicted joints: v=2 ("labeled and visible"); see docs/data-formats
                        kps[kps[:, 2] > 0, 2] = 2
                    ann["keypoints"] = [json_number(v) for v in kps.reshape(-1)]
                    ann["num_keypoints"] = int((kps[:, 2] > 0).sum())
                    if person.scores is not None:
                        sc = np.zeros(len(COCO_NAMES))
                        for slot, src in enumerate(COCO_TO_POSETRACK):
                            if src >= 0:
                                sc[src] = person.scores[slot]
                        ann["scores"] = sc.tolist()
                elif person.propagated:
                    flat = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
                    flat[flat[:, 2] > 0, 2] = 2
                    ann["keypoints"] = [json_number(v) for v in flat.reshape(-1)]
                annotations.append(ann)
    # the input's own categories (its skeleton, extra fields) when they describe the layout written; else ours
    stored = videos[0].extra.get("categories") if videos else None
    if isinstance(stored, list) and stored and layout_of_categories({"categories": stored}, Path(path)) == layout:
        categories = copy.deepcopy(stored)
    else:
        categories = [copy.deepcopy(COCO_CATEGORY if layout == "coco" else POSETRACK18_CATEGORY)]
    atomic_write_json(path, {**top, "images": images, "annotations": annotations, "categories": categories})


