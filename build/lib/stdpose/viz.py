"""Pictures of poses: skeleton overlays on frames, overlay videos, and PoseTrack AP bar charts.

Human labels are drawn with filled joints and solid bones; propagated poses (pseudo-labels) with hollow joints,
dashed bones and a "prop" tag, so a reviewer sees at a glance which poses a person drew and which stdpose made.
Colours (BGR): left side orange, right side blue, midline green. Every file is written atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from stdpose.atomic import atomic_path
from stdpose.data.records import Frame, Person, Video
from stdpose.errors import ConfigError, DataError
from stdpose.skeleton import GROUP_NAMES, POSETRACK_SLOTS, SKELETON_EDGES

log = logging.getLogger(__name__)

Color = tuple[int, int, int]
LEFT_COLOR: Color = (0, 140, 255)  # orange (BGR)
RIGHT_COLOR: Color = (255, 150, 0)  # blue
MID_COLOR: Color = (60, 200, 60)  # green
IGNORE_COLOR: Color = (128, 128, 128)
LABEL_TAG_COLOR: Color = (255, 255, 255)
PROPAGATED_TAG_COLOR: Color = (0, 255, 255)  # yellow


def _side(slot: int) -> int:
    """-1 left, +1 right, 0 midline."""
    name = POSETRACK_SLOTS[slot]
    return -1 if name.startswith("left_") else 1 if name.startswith("right_") else 0


def _side_color(side: int) -> Color:
    return LEFT_COLOR if side < 0 else RIGHT_COLOR if side > 0 else MID_COLOR


def _edge_color(a: int, b: int) -> Color:
    sa, sb = _side(a), _side(b)
    return _side_color(sa if sa == sb else 0)


def _scale(image: np.ndarray) -> float:
    """Drawing scale: 1.0 for a 640-pixel-wide frame, never below 0.5."""
    return max(0.5, max(image.shape[:2]) / 640.0)


def _dashed_line(img: np.ndarray, p0: np.ndarray, p1: np.ndarray, color: Color, thickness: int, dash: float) -> None:
    import cv2

    length = float(np.hypot(*(p1 - p0)))
    n = max(1, int(length // dash))
    for k in range(0, n, 2):  # draw every other piece
        a = p0 + (p1 - p0) * (k / n)
        b = p0 + (p1 - p0) * (min(k + 1, n) / n)
        cv2.line(img, (round(a[0]), round(a[1])), (round(b[0]), round(b[1])), color, thickness, cv2.LINE_AA)


def _put_tag(img: np.ndarray, text: str, org: tuple[int, int], color: Color, scale: float) -> None:
    import cv2

    font, fs, th = cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale, max(1, round(scale))
    (tw, tht), base = cv2.getTextSize(text, font, fs, th)
    x = int(np.clip(org[0], 0, max(0, img.shape[1] - tw - 2)))
    y = int(np.clip(org[1], tht + 2, img.shape[0] - base - 1))
    cv2.rectangle(img, (x, y - tht - 2), (x + tw + 2, y + base), (0, 0, 0), -1)
    cv2.putText(img, text, (x + 1, y), font, fs, color, th, cv2.LINE_AA)


def _draw_pose_inplace(img: np.ndarray, person: Person, color: Color | None, draw_scores: bool) -> None:
    import cv2

    s = _scale(img)
    thick, radius = max(1, round(2 * s)), max(2, round(4 * s))
    kps = person.keypoints
    vis = person.annotated & np.all(np.isfinite(kps[:, :2]), axis=1)
    for a, b in SKELETON_EDGES:
        if not (vis[a] and vis[b]):
            continue
        c = color or _edge_color(a, b)
        p0, p1 = kps[a, :2], kps[b, :2]
        if person.propagated:  # dashed, from ring edge to ring edge so the joints stay hollow
            gap = (p1 - p0) / max(float(np.hypot(*(p1 - p0))), 1e-6) * (radius + thick)
            if np.hypot(*(p1 - p0)) > 2 * (radius + thick):
                _dashed_line(img, p0 + gap, p1 - gap, c, thick, dash=6 * s)
        else:
            cv2.line(img, (round(p0[0]), round(p0[1])), (round(p1[0]), round(p1[1])), c, thick, cv2.LINE_AA)
    for j in np.flatnonzero(vis):
        c = color or _side_color(_side(j))
        centre = (round(kps[j, 0]), round(kps[j, 1]))
        if person.propagated:  # hollow ring
            cv2.circle(img, centre, radius, c, max(1, round(1.5 * s)), cv2.LINE_AA)
        else:  # filled dot with a dark rim
            cv2.circle(img, centre, radius, c, -1, cv2.LINE_AA)
            cv2.circle(img, centre, radius, (0, 0, 0), 1, cv2.LINE_AA)
        if draw_scores and person.scores is not None:
            cv2.putText(img, f"{person.scores[j]:.2f}", (centre[0] + radius + 1, centre[1] - radius),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.3 * s, c, 1, cv2.LINE_AA)
    box = person.bbox if person.bbox is not None else person.box_from_keypoints()
    if box is None:
        return
    tid = "?" if person.track_id is None else str(person.track_id)
    if person.propagated:
        score = f" {person.score:.2f}" if person.score is not None else ""
        _put_tag(img, f"prop {tid}{score}", (round(box[0]), round(box[1]) - 2), PROPAGATED_TAG_COLOR, s)
    else:
        _put_tag(img, f"label {tid}", (round(box[0]), round(box[1]) - 2), LABEL_TAG_COLOR, s)


def _check_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 2:
        import cv2

        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"expected a (H, W, 3) uint8 BGR image, got shape {img.shape} dtype {img.dtype}")
    return np.ascontiguousarray(img).copy()


def draw_pose(image: np.ndarray, person: Person, color: Color | None = None, draw_scores: bool = False) -> np.ndarray:
    """A copy of the BGR `image` with `person`'s skeleton drawn (annotated joints only).

    `color` (BGR) overrides the left/right/midline colours; `draw_scores` writes each joint's score beside it.
    Propagated persons get hollow joints, dashed bones and a "prop <track> <score>" tag; labels a "label <track>" tag.
    """
    img = _check_image(image)
    _draw_pose_inplace(img, person, color, draw_scores)
    return img


def draw_frame(image: np.ndarray, frame: Frame, draw_scores: bool = False) -> np.ndarray:
    """A copy of `image` with every person of `frame`, its ignore regions (grey outlines) and a header saying
    whether the frame is labeled and how many of its poses were propagated."""
    import cv2

    img = _check_image(image)
    for xs, ys in frame.ignore_regions:
        pts = np.round(np.stack([xs, ys], axis=1)).astype(np.int32)
        if len(pts) >= 2:
            cv2.polylines(img, [pts], True, IGNORE_COLOR, max(1, round(_scale(img))), cv2.LINE_AA)
    for person in frame.persons:
        _draw_pose_inplace(img, person, None, draw_scores)
    n_prop = sum(p.propagated for p in frame.persons)
    state = "labeled" if frame.is_labeled else "unlabeled"
    header = f"frame {frame.index} {state}: {len(frame.persons) - n_prop} label(s), {n_prop} propagated"
    _put_tag(img, header, (4, 4), LABEL_TAG_COLOR if frame.is_labeled else PROPAGATED_TAG_COLOR, _scale(img))
    return img


def save_overlay_frame(image: np.ndarray, frame: Frame, out_path: str | Path) -> Path:
    """Draw `frame` on `image` and write it (format from the suffix, e.g. .jpg / .png) atomically."""
    import cv2

    out = Path(out_path)
    ok, buf = cv2.imencode(out.suffix or ".png", draw_frame(image, frame))
    if not ok:
        raise DataError(out, f"OpenCV cannot encode an image as '{out.suffix}'")
    with atomic_path(out) as tmp:
        tmp.write_bytes(buf.tobytes())
    return out


class _CodecUnavailable(Exception):
    pass


# (fourcc, suffix) tried in order; MJPG/.avi is built into every OpenCV, mp4v needs the FFmpeg backend.
VIDEO_CODECS: tuple[tuple[str, str], ...] = (("mp4v", ".mp4"), ("MJPG", ".avi"))


def write_overlay_video(video: Video, frames, out_path: str | Path, fps: float | None = None,
                        progress: bool = True) -> Path:
    """Write every frame of `video` with its poses drawn, as mp4 ('mp4v'); returns the path written.

    `frames` is a `stdpose.data.video.FrameReader` (or any indexable of BGR images); `fps` defaults to the
    reader's `fps` attribute, else 25. When mp4 cannot be written here the video is written as MJPG .avi beside
    the requested path instead, with a warning. Written atomically.
    """

    out = Path(out_path)
    if video.num_frames == 0:
        raise DataError(video.source or video.name, "the video has no frames to draw")
    if len(frames) < video.num_frames:
        raise DataError(video.source or video.name,
                        f"{video.num_frames} annotated frames but only {len(frames)} video frames")
    rate = float(fps or getattr(frames, "fps", None) or 25.0)
    first = _check_image(frames[0])
    size = (first.shape[1], first.shape[0])
    codecs = [c for c in VIDEO_CODECS if c[1] == out.suffix.lower()] + [c for c in VIDEO_CODECS
                                                                       if c[1] != out.suffix.lower()]
    for n, (fourcc, suffix) in enumerate(codecs):
        target = out if suffix == out.suffix.lower() else out.with_suffix(suffix)
        try:
            _write_video(video, frames, target, fourcc, rate, size, progress)
        except _CodecUnavailable:
            log.warning("cannot write %s video with OpenCV here (codec %s)%s", suffix, fourcc,
                        "; trying the next codec" if n + 1 < len(codecs) else "")
            continue
        if target != out:
            log.warning("wrote the overlay video as %s instead of %s (codec fallback)", target, out)
        return target
    raise DataError(out, f"OpenCV can write none of the video codecs {[c for c, _ in VIDEO_CODECS]}")


def _write_video(video: Video, frames, target: Path, fourcc: str, fps: float, size: tuple[int, int],
                 progress: bool) -> None:
    import cv2

    indices = range(video.num_frames)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc=f"overlay {target.name}", unit="frame", leave=False)
    with atomic_path(target) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if not writer.isOpened():
            raise _CodecUnavailable(fourcc)
        try:
            for i in indices:
                img = _check_image(frames[i])
                if (img.shape[1], img.shape[0]) != size:
                    raise DataError(video.source or video.name, f"frame {i} is {img.shape[1]}x{img.shape[0]}, "
                                                                f"the first frame is {size[0]}x{size[1]}")
                writer.write(draw_frame(img, video.frames[i]))
        finally:
            writer.release()
        if tmp.stat().st_size == 0:
            raise _CodecUnavailable(fourcc)


def plot_ap_chart(rows: Mapping[str, Mapping[str, float]], out_path: str | Path,
                  title: str = "PoseTrack mAP") -> Path:
    """Grouped bar chart of AP per joint group (Head .. Ankle, Mean) with one bar per method; PNG, atomic.

    `rows` maps a method name to {group: AP}; groups missing or non-finite for a method get no bar. Values above
    1 are read as percent (y axis 0..100), otherwise as fractions (0..1).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not rows:
        raise ConfigError("plot_ap_chart needs at least one method row")
    groups = [g for g in GROUP_NAMES if any(g in r for r in rows.values())]
    if not groups:
        raise ConfigError(f"no row has any of the groups {', '.join(GROUP_NAMES)}")
    values = np.array([[float(r.get(g, np.nan)) for g in groups] for r in rows.values()])  # (methods, groups)
    finite = values[np.isfinite(values)]
    top = 100.0 if finite.size and finite.max() > 1.0 else 1.0
    fig = Figure(figsize=(min(16.0, 2.0 + len(groups) * (0.35 + 0.25 * len(rows))), 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(rows)
    x = np.arange(len(groups))
    for m, name in enumerate(rows):
        pos = x - 0.4 + width * (m + 0.5)
        ok = np.isfinite(values[m])
        bars = ax.bar(pos[ok], values[m][ok], width * 0.95, label=name)
        if len(rows) <= 4:
            ax.bar_label(bars, fmt="%.1f" if top > 1 else "%.2f", fontsize=6, padding=1)
    ax.set_xticks(x, groups)
    ax.set_ylim(0, top * 1.18)  # headroom for the legend row
    ax.set_ylabel("AP (%)" if top > 1 else "AP")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", ncol=min(len(rows), 6), frameon=False)
    fig.tight_layout()
    out = Path(out_path)
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return out
