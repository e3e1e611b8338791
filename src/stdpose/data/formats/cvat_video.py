"""CVAT for video 1.1 XML (`annotations.xml` of a CVAT video task export) with skeleton tracks.

What CVAT writes (docs.cvat.ai "XML annotation format", interpolation mode, and its exporter): a `<meta>` with the
task (`size`, `start_frame`, `stop_frame`, `original_size`, `labels` - a skeleton label and its point sublabels,
whose `<parent>` names the skeleton), then one `<track id label>` per person holding, per frame, a
`<skeleton frame keyframe z_order>` whose `<points label keyframe outside occluded points="x,y">` children are the
joints and whose `<attribute name>` children are the shape's attributes. A skeleton has no `outside` of its own: it
is outside when all its points are. CVAT fills the frames between keyframes by linear interpolation and keeps a
track visible after its last keyframe until an all-outside keyframe.

Reading (`read_cvat_video`):
- only keyframes are labels: a skeleton with `keyframe="1"` gives the track's pose on that frame (its joints with
  `outside="0"`; points with `keyframe="0"` inside a keyframe skeleton are left out and counted); an all-outside
  keyframe says the person is gone. Interpolated skeletons (`keyframe="0"`) are CVAT's own filling: counted, not
  read. A frame is labeled when some track has a keyframe there; the other tracks are listed as not labeled on it
  (`tracks.UNLABELED_TRACKS`), so each track is propagated between its own keyframes.
- joint names map onto PoseTrack18 slots through a node map: "posetrack" (the slot names), "coco" (COCO-17 names;
  the eyes have no slot and are kept for writing back) or a user file (JSON/YAML `{cvat node name: slot name or
  null}`); with none given, the first built-in map that knows every node name is used, else DataError listing
  the unknown names. Occluded flags and unmapped nodes are kept in `Person.extra` for writing back.
- frames are numbered like CVAT's exported images (`frame_000000.png`, start_frame + k * step).

Writing (`write_cvat_video`), so that CVAT imports it into a task with the same skeleton: every frame a track has
a pose on is a keyframe (CVAT re-interpolating between our poses would change them), a track that stops gets an
all-outside keyframe on the next frame (else CVAT would freeze it to the end of the video), unannotated joints are
`outside="1"`. Propagated skeletons carry the attributes `propagated` (true), `score` (mean joint score) and
`method`, plus `review` / `review_joints` when a review flagged them; the meta declares them on the skeleton
label. CVAT keeps attributes only that the task's label defines: add them to the skeleton label (mutable) before
importing, or they are dropped and only the poses arrive.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from stdpose.atomic import atomic_write_text
from stdpose.data.records import UNLABELED_TRACKS, Frame, Person, Video
from stdpose.errors import DataError
from stdpose.skeleton import COCO_NAMES, POSETRACK_SLOTS, SLOT

FRAME_NAME = "frame_{:06d}.png"  # CVAT's exported image names
# Attributes written on propagated skeletons (and declared on the skeleton label in the meta).
OUTPUT_ATTRIBUTES = (("propagated", "checkbox", "false", "false"), ("score", "text", "", ""),
                     ("method", "text", "", ""), ("review", "checkbox", "false", "false"),
                     ("review_joints", "text", "", ""))

NODE_MAPS: dict[str, dict[str, str | None]] = {
    "posetrack": {name: name for name in POSETRACK_SLOTS},
    "coco": {name: (name if name in SLOT else None) for name in COCO_NAMES},
}


def is_cvat_xml(path: str | Path) -> bool:
    """True when the file starts like XML with an <annotations> root (sniffs the first 2 KB)."""
    try:
        with open(path, "rb") as f:
            head = f.read(2048).lstrip()
    except OSError:
        return False
    return head.startswith(b"<?xml") or head.startswith(b"<annotations")


def load_node_map(spec: str | Path | dict | None, path: Path, names: list[str]) -> tuple[dict[str, str | None], str]:
    """(CVAT node name -> PoseTrack slot name or None, the map's name) for `spec` (see the module doc)."""
    if isinstance(spec, dict):
        mapping, label = dict(spec), "given mapping"
    elif spec in NODE_MAPS:
        mapping, label = NODE_MAPS[str(spec)], str(spec)
    elif spec is not None:
        mapping, label = _read_map_file(Path(spec)), str(spec)
    else:
        for name, candidate in NODE_MAPS.items():
            if names and all(n in candidate for n in names):
                return candidate, name
        closest = max(NODE_MAPS, key=lambda m: sum(n in NODE_MAPS[m] for n in names))
        unknown = [n for n in names if n not in NODE_MAPS[closest]]
        raise DataError(path, f"skeleton node names {unknown[:8]} are neither PoseTrack18 slot names nor COCO-17 "
                              "names; give a node map (--cvat-map FILE: JSON/YAML {node name: PoseTrack slot})")
    bad = {k: v for k, v in mapping.items() if v is not None and v not in SLOT}
    if bad:
        raise DataError(spec if not isinstance(spec, dict) else path,
                        f"node map targets {sorted(bad.values())[:5]} are not PoseTrack18 slots "
                        f"({', '.join(POSETRACK_SLOTS)})")
    targets = [v for v in mapping.values() if v is not None]
    if len(set(targets)) != len(targets):
        raise DataError(path, "node map sends two nodes to the same PoseTrack slot")
    unknown = [n for n in names if n not in mapping]
    if unknown:
        raise DataError(path, f"skeleton nodes {unknown[:8]} are not in the node map ({label})")
    return mapping, label


def _read_map_file(path: Path) -> dict[str, str | None]:
    if path.suffix in (".yaml", ".yml"):
        from stdpose.yaml_io import read_yaml_mapping

        raw: Any = read_yaml_mapping(path, "node map")
    else:
        from stdpose.data.formats.common import load_json

        raw = load_json(path)
    if not isinstance(raw, dict) or not all(isinstance(k, str) and (v is None or isinstance(v, str))
                                            for k, v in raw.items()):
        raise DataError(path, "a node map must be a mapping {CVAT node name: PoseTrack slot name or null}")
    return raw


def _flag(el: ET.Element, name: str, where: str, default: str | None = None) -> bool:
    value = el.get(name, default)
    if value not in ("0", "1"):
        raise DataError(where, f"<{el.tag}> attribute {name}={value!r} must be 0 or 1")
    return value == "1"


def _point(el: ET.Element, where: str) -> tuple[float, float]:
    try:
        xs = [float(v) for v in (el.get("points") or "").split(";")[0].split(",")]
    except ValueError:
        xs = []
    if len(xs) != 2 or not all(np.isfinite(xs)):
        raise DataError(where, f"point {el.get('label')!r} has points={el.get('points')!r}, expected 'x,y'")
    return xs[0], xs[1]


def _int(text: str | None, default: int | None = None) -> int | None:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return default


def _meta(root: ET.Element, path: Path) -> tuple[ET.Element, dict[str, Any]]:
    meta = root.find("meta")
    if meta is None:
        raise DataError(path, "CVAT XML without <meta>")
    if meta.find("project") is not None and meta.find("task") is None:
        raise DataError(path, "a CVAT project export holds several tasks; export the video's task "
                              "('CVAT for video 1.1') instead")
    task = meta.find("task")
    if task is None:
        task = meta.find("job")
    if task is None:
        raise DataError(path, "CVAT XML <meta> has no <task> or <job>")
    info = {
        "name": (task.findtext("name") or path.stem).strip(),
        "id": (task.findtext("id") or "").strip(),
        "size": _int(task.findtext("size")),
        "start_frame": _int(task.findtext("start_frame"), 0) or 0,
        "stop_frame": _int(task.findtext("stop_frame")),
        "step": 1,
        "width": _int(task.findtext("original_size/width")) or _int(meta.findtext("original_size/width")),
        "height": _int(task.findtext("original_size/height")) or _int(meta.findtext("original_size/height")),
    }
    frame_filter = (task.findtext("frame_filter") or "").strip()
    if frame_filter.startswith("step="):
        info["step"] = _int(frame_filter[5:], 1) or 1
    return task, info


def _skeleton_labels(task: ET.Element) -> dict[str, list[str]]:
    """Skeleton label name -> its point sublabel names, from the meta."""
    labels = task.find("labels")
    out: dict[str, list[str]] = {}
    if labels is None:
        return out
    for lab in labels.findall("label"):
        if (lab.findtext("type") or "").strip() == "skeleton":
            out.setdefault((lab.findtext("name") or "").strip(), [])
    for lab in labels.findall("label"):
        parent = (lab.findtext("parent") or "").strip()
        if parent in out:
            out[parent].append((lab.findtext("name") or "").strip())
    return out


def read_cvat_video(path: str | Path, node_map: str | Path | dict | None = None,
                    skipped: Counter | None = None) -> list[Video]:
    """Read a CVAT for video 1.1 XML file as one Video (see the module docstring)."""
    path = Path(path)
    counts = skipped if skipped is not None else Counter()
    if not path.is_file():
        raise DataError(path, "file not found" if not path.exists() else "not a file")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise DataError(path, f"malformed or truncated XML: {exc}") from None
    if root.tag != "annotations":
        raise DataError(path, f"not a CVAT XML file: root element <{root.tag}>, expected <annotations>")
    if root.findall("image") and not root.findall("track"):
        raise DataError(path, "this is 'CVAT for images' (per-image <image> elements); export the video task as "
                              "'CVAT for video 1.1' so tracks and keyframes are kept")
    task, info = _meta(root, path)
    declared = _skeleton_labels(task)

    tracks = []
    for t in root.findall("track"):
        skeletons = t.findall("skeleton")
        if not skeletons:
            counts["cvat_non_skeleton_tracks"] += 1
            continue
        tid = _int(t.get("id"))
        if tid is None:
            raise DataError(path, f"<track> without a numeric id (label {t.get('label')!r})")
        tracks.append((tid, t.get("label", ""), skeletons))
    if not tracks:
        raise DataError(path, "no skeleton track in this CVAT XML (poses must be CVAT skeletons; "
                              f"{counts['cvat_non_skeleton_tracks']} other track(s) found)")
    names = sorted({p.get("label", "") for _, _, sks in tracks for s in sks for p in s.findall("points")})
    if not names:
        names = sorted({n for _, lab, _ in tracks for n in declared.get(lab, [])})
    mapping, map_name = load_node_map(node_map, path, names)

    frames_seen = [(_int(s.get("frame")), s) for _, _, sks in tracks for s in sks]
    if any(f is None or f < 0 for f, _ in frames_seen):
        raise DataError(path, "a <skeleton> has no valid frame number")
    size = info["size"] or (max(f for f, _ in frames_seen) + 1)  # type: ignore[operator]
    if info["stop_frame"] is not None and info["size"] is None:
        size = (info["stop_frame"] - info["start_frame"]) // info["step"] + 1
    if max(f for f, _ in frames_seen) >= size:  # type: ignore[operator]
        raise DataError(path, f"a skeleton lies on frame {max(f for f, _ in frames_seen)} but the task has "
                              f"{size} frames")

    frames = [Frame(index=k, file_name=FRAME_NAME.format(info["start_frame"] + k * info["step"]), frame_id=k,
                    width=info["width"], height=info["height"]) for k in range(size)]
    keyframes: dict[int, list[tuple[int, bool]]] = {}  # track -> (frame, visible) of its keyframes, in order
    for tid, label, skeletons in tracks:
        seen: set[int] = set()
        for s in skeletons:
            f = int(s.get("frame"))  # type: ignore[arg-type]
            where = f"{path} (track {tid}, frame {f})"
            if f in seen:
                raise DataError(where, "two skeletons of one track on the same frame")
            seen.add(f)
            if not _flag(s, "keyframe", where, "1"):
                counts["cvat_interpolated_shapes"] += 1
                continue
            person = _person(s, tid, label, mapping, where, counts)
            keyframes.setdefault(tid, []).append((f, person is not None))
            if person is not None:
                frames[f].persons.append(person)
                frames[f].is_labeled = True  # a frame is labeled when some track has a visible keyframe on it
    # On a labeled frame, a track without a keyframe there is absent (known) when its last keyframe before is an
    # all-outside one or it has none yet, as CVAT shows it; otherwise CVAT interpolates it: not labeled here.
    for tid, keys in keyframes.items():
        keys.sort()
        for frame in frames:
            if not frame.is_labeled or any(f == frame.index for f, _ in keys):
                continue
            before = [visible for f, visible in keys if f < frame.index]
            if before and before[-1]:
                frame.extra.setdefault(UNLABELED_TRACKS, []).append(tid)
    for frame in frames:
        frame.persons.sort(key=lambda p: p.track_id)
    extra = {"format": "cvat_video", "cvat_task": {k: info[k] for k in ("name", "id", "start_frame", "step")},
             "cvat_node_map": {"name": map_name, "map": mapping},
             "cvat_labels": sorted({lab for _, lab, _ in tracks})}
    video = Video(name=info["name"] or path.stem, frames=frames, source=str(path), extra=extra)
    video.validate()
    return [video]


def _person(s: ET.Element, tid: int, label: str, mapping: dict[str, str | None], where: str,
            counts: Counter) -> Person | None:
    """The pose of one keyframe skeleton; None when every point is outside (the person is gone)."""
    kps = np.zeros((len(POSETRACK_SLOTS), 3))
    occluded: list[int] = []
    nodes: dict[str, list[float]] = {}
    inside = 0
    for p in s.findall("points"):
        name = p.get("label", "")
        out = _flag(p, "outside", where, "0")
        occ = _flag(p, "occluded", where, "0")
        x, y = _point(p, where) if not out else (0.0, 0.0)
        if not out and p.get("keyframe", "1") == "0":
            counts["cvat_interpolated_joints"] += 1
            continue
        inside += not out
        slot = mapping.get(name)
        if slot is None:
            if not out:
                nodes[name] = [x, y, float(occ)]
            continue
        if not out:
            kps[SLOT[slot]] = (x, y, 1.0)
            if occ:
                occluded.append(SLOT[slot])
    if inside == 0:
        return None
    attrs = {a.get("name", ""): (a.text or "") for a in s.findall("attribute")}
    extra: dict[str, Any] = {}
    if occluded:
        extra["_cvat_occluded"] = occluded
    if nodes:
        extra["_cvat_nodes"] = nodes
    if label:
        extra["_cvat_label"] = label
    for key in ("method",):
        if attrs.get(key):
            extra[key] = attrs[key]
    if attrs.get("review", "").lower() == "true":
        extra["review"] = True
        extra["review_joints"] = [int(v) for v in attrs.get("review_joints", "").split(";") if v.strip().isdigit()]
    other = {k: v for k, v in attrs.items() if k not in {a[0] for a in OUTPUT_ATTRIBUTES}}
    if other:
        extra["_cvat_attributes"] = other
    score = None
    try:
        score = float(attrs["score"]) if attrs.get("score") else None
    except ValueError:
        raise DataError(where, f"attribute score={attrs['score']!r} is not a number") from None
    return Person(keypoints=kps, track_id=tid, score=score, propagated=attrs.get("propagated", "").lower() == "true",
                  extra=extra)


# ----------------------------------------------------------------------------------------------------------------
# writing


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def _meta_element(video: Video, nodes: list[str], label: str, size: int) -> ET.Element:
    task_info = video.extra.get("cvat_task", {})
    meta = ET.Element("meta")
    task = _sub(meta, "task")
    _sub(task, "id", str(task_info.get("id") or "0"))
    _sub(task, "name", str(task_info.get("name") or video.name))
    _sub(task, "size", str(size))
    _sub(task, "mode", "interpolation")
    _sub(task, "overlap", "0")
    start = int(task_info.get("start_frame", 0) or 0)
    step = int(task_info.get("step", 1) or 1)
    _sub(task, "start_frame", str(start))
    _sub(task, "stop_frame", str(start + (size - 1) * step))
    _sub(task, "frame_filter", f"step={step}" if step != 1 else "")
    labels = _sub(task, "labels")
    skel = _sub(labels, "label")
    _sub(skel, "name", label)
    _sub(skel, "type", "skeleton")
    attributes = _sub(skel, "attributes")
    for name, kind, default, values in OUTPUT_ATTRIBUTES:
        a = _sub(attributes, "attribute")
        _sub(a, "name", name)
        _sub(a, "mutable", "True")
        _sub(a, "input_type", kind)
        _sub(a, "default_value", default)
        _sub(a, "values", values)
    for node in nodes:
        sub = _sub(labels, "label")
        _sub(sub, "name", node)
        _sub(sub, "type", "points")
        _sub(sub, "parent", label)
        _sub(sub, "attributes")
    w = next((f.width for f in video.frames if f.width), None)
    h = next((f.height for f in video.frames if f.height), None)
    if w and h:
        orig = _sub(task, "original_size")
        _sub(orig, "width", str(int(w)))
        _sub(orig, "height", str(int(h)))
    return meta


def _fmt(v: float) -> str:
    return f"{float(v):.2f}"


def _skeleton(track: ET.Element, frame: int, person: Person | None, nodes: list[str],
              mapping: dict[str, str | None]) -> None:
    s = _sub(track, "skeleton", frame=str(frame), keyframe="1", z_order="0")
    occluded = set(person.extra.get("_cvat_occluded", ())) if person is not None else set()
    extra_nodes = person.extra.get("_cvat_nodes", {}) if person is not None else {}
    for node in nodes:
        slot = mapping.get(node)
        x = y = 0.0
        out, occ = True, False
        if person is not None and slot is not None and person.keypoints[SLOT[slot], 2] > 0:
            x, y = person.keypoints[SLOT[slot], :2]
            out, occ = False, SLOT[slot] in occluded
        elif person is not None and node in extra_nodes:
            x, y, o = extra_nodes[node]
            out, occ = False, bool(o)
        _sub(s, "points", label=node, keyframe="1", outside=str(int(out)), occluded=str(int(occ)),
             points=f"{_fmt(x)},{_fmt(y)}")
    if person is None:
        return
    attrs: dict[str, str] = {}
    if person.propagated:
        attrs["propagated"] = "true"
        score = person.score if person.score is not None else (
            float(np.mean(person.scores[person.annotated])) if person.scores is not None and person.annotated.any()
            else None)
        if score is not None:
            attrs["score"] = f"{score:.3f}"
    elif person.score is not None:
        attrs["score"] = f"{person.score:.3f}"
    if person.extra.get("method"):
        attrs["method"] = str(person.extra["method"])
    if person.extra.get("review"):
        attrs["review"] = "true"
        attrs["review_joints"] = ";".join(str(int(j)) for j in person.extra.get("review_joints", ()))
    attrs.update(person.extra.get("_cvat_attributes", {}))
    for name, value in attrs.items():
        _sub(s, "attribute", value, name=name)


def _stops_after(f: int, poses: dict[int, Person], known: list[int]) -> bool:
    """Whether a track with a pose on frame f and none on f + 1 ends there (CVAT must be told by an all-outside
    keyframe): it has no later pose, or the next label that knows about it says it is absent. Otherwise the frames
    up to its next pose are unlabeled frames between two of its labels, which CVAT interpolates."""
    if not any(g > f for g in poses):
        return True
    following = next((g for g in known if g > f), None)
    return following is not None and following not in poses


def cvat_video_xml(video: Video, node_map: str | Path | dict | None = None, label: str | None = None) -> str:
    """The CVAT for video 1.1 XML text of `video` (what `write_cvat_video` saves)."""
    given = video.extra.get("cvat_node_map", {})
    if node_map is None and given:
        mapping: dict[str, str | None] = dict(given["map"])
    elif node_map is None:
        mapping = dict(NODE_MAPS["posetrack"])
    else:
        mapping, _ = load_node_map(node_map, Path(video.source or video.name), [])
    nodes = list(mapping)
    label = label or next(iter(video.extra.get("cvat_labels", [])), "person")
    size = video.num_frames
    root = ET.Element("annotations")
    _sub(root, "version", "1.1")
    root.append(_meta_element(video, nodes, label, size))

    by_track: dict[int, dict[int, Person]] = {}
    untracked = 0
    for frame in video.frames:
        for person in frame.persons:
            if person.track_id is None:
                untracked += 1
                continue
            poses = by_track.setdefault(int(person.track_id), {})
            if frame.index in poses:
                raise DataError(video.source or video.name,
                                f"frame {frame.index}: two persons with track id {person.track_id}; CVAT tracks "
                                "hold one shape per frame")
            poses[frame.index] = person
    if untracked:
        raise DataError(video.source or video.name, f"{untracked} person(s) without a track id: CVAT for video "
                                                    "needs tracks (propagate first, which assigns ids)")
    for tid in sorted(by_track):
        track = _sub(root, "track", id=str(tid), label=label, source="manual")
        poses = by_track[tid]
        known = sorted(f.index for f in video.frames
                       if f.is_labeled and tid not in set(f.extra.get(UNLABELED_TRACKS, ())))
        for f in sorted(poses):
            _skeleton(track, f, poses[f], nodes, mapping)
            if f + 1 < size and f + 1 not in poses and _stops_after(f, poses, known):
                _skeleton(track, f + 1, None, nodes, mapping)  # all outside: the track stops here
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_cvat_video(video: Video | list[Video], path: str | Path, node_map: str | Path | dict | None = None,
                     label: str | None = None) -> None:
    """Write one video as CVAT for video 1.1 XML, atomically (see the module docstring)."""
    videos = [video] if isinstance(video, Video) else list(video)
    if len(videos) != 1:
        raise DataError(path, f"CVAT for video holds one video per file, got {len(videos)}")
    atomic_write_text(path, cvat_video_xml(videos[0], node_map, label))
