"""Pictures of poses: skeleton overlays on frames, overlay videos, and PoseTrack AP bar charts.

Human labels are drawn with filled joints and solid bones; propagated poses (pseudo-labels) with hollow joints,
dashed bones and a "prop" tag, so a reviewer sees at a glance which poses a person drew and which stdpose made.
Colours (BGR): left side orange, right side blue, midline green.

Readable at any person size: joint and bone sizes follow each person's box (`marker_sizes`), not the image, so an
80-pixel walker gets 3-pixel rings and a 600-pixel close-up bigger ones. Tags are placed so they do not overlap
each other or the frame header (`_TagLayout`). Joints whose score is below `dim_below` (and their bones) are drawn
faded (alpha `FADED_ALPHA`); joints a review flagged (`person.extra["review_joints"]`) get a red outer ring and
their pose a red tag. Overlay videos are H.264 mp4 (PyAV's bundled libx264) when PyAV is installed, else
MPEG-4 Part 2 mp4 or MJPG avi through OpenCV (`write_overlay_video`). Every file is written atomically.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
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
REVIEW_COLOR: Color = (60, 60, 255)  # red: flagged for review

DEFAULT_DIM_BELOW = 0.3  # joints scored below this are drawn faded
FADED_ALPHA = 0.35  # opacity of faded joints and bones
MIN_OVERLAY_SIDE = 360  # overlay videos of smaller frames are upscaled (integer factor) so text stays readable


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
    """Text scale: 1.0 for a 640-pixel-wide frame, never below 1.0 (smaller text is not readable)."""
    return max(1.0, max(image.shape[:2]) / 640.0)


def person_size(person: Person) -> float | None:
    """sqrt(width * height) of the person's box (its keypoints' box when it has none); None without either."""
    box = person.bbox if person.bbox is not None else person.box_from_keypoints()
    if box is None or box[2] <= 0 or box[3] <= 0:
        return None
    return float(math.sqrt(box[2] * box[3]))


def marker_sizes(person: Person, image: np.ndarray | None = None) -> tuple[int, int]:
    """(bone thickness, joint radius) in pixels for drawing `person`: from its box, so the skeleton stays thin
    next to the limbs it marks (about 1/60 and 1/25 of sqrt(box area)); a person without a box uses 1/8 of the
    image's shorter side as its size."""
    size = person_size(person)
    if size is None:
        size = min(image.shape[:2]) / 8.0 if image is not None else 100.0
    return max(1, round(size / 60.0)), max(2, round(size / 25.0))


def _pt(p: np.ndarray) -> tuple[int, int]:
    return round(float(p[0])), round(float(p[1]))


def _dashed_line(img: np.ndarray, p0: np.ndarray, p1: np.ndarray, color: Color, thickness: int, dash: float) -> None:
    import cv2

    length = float(np.hypot(*(p1 - p0)))
    n = max(1, int(length // max(dash, 1.0)))
    for k in range(0, n, 2):  # draw every other piece
        a = p0 + (p1 - p0) * (k / n)
        b = p0 + (p1 - p0) * (min(k + 1, n) / n)
        cv2.line(img, _pt(a), _pt(b), color, thickness, cv2.LINE_AA)


def _faded_joints(person: Person, dim_below: float) -> np.ndarray:
    """(17,) True for the joints drawn faded: propagated joints scored below `dim_below`."""
    if not person.propagated or person.scores is None:
        return np.zeros(len(POSETRACK_SLOTS), dtype=bool)
    return np.asarray(person.scores) < dim_below


def _draw_skeleton(img: np.ndarray, person: Person, color: Color | None, draw_scores: bool, faded: np.ndarray,
                   layer: str) -> None:
    """Draw the bones and joints of `person` that belong to `layer` ("faded" or "solid")."""
    import cv2

    thick, radius = marker_sizes(person, img)
    kps = person.keypoints
    vis = person.annotated & np.all(np.isfinite(kps[:, :2]), axis=1)
    want_faded = layer == "faded"
    for a, b in SKELETON_EDGES:
        if not (vis[a] and vis[b]) or bool(faded[a] or faded[b]) != want_faded:
            continue
        c = color or _edge_color(a, b)
        p0, p1 = kps[a, :2], kps[b, :2]
        length = float(np.hypot(*(p1 - p0)))
        if person.propagated:  # dashed, from ring edge to ring edge so the joints stay hollow
            gap = (p1 - p0) / max(length, 1e-6) * (radius + thick)
            if length > 2 * (radius + thick):
                _dashed_line(img, p0 + gap, p1 - gap, c, thick, dash=max(3.0, 2.5 * radius))
        else:
            cv2.line(img, _pt(p0), _pt(p1), c, thick, cv2.LINE_AA)
    flagged = set(person.extra.get("review_joints") or []) if person.propagated else set()
    for j in np.flatnonzero(vis):
        centre = _pt(kps[j])
        if int(j) in flagged and not want_faded:  # the review ring stays solid, also around a faded joint
            cv2.circle(img, centre, radius + thick + 1, REVIEW_COLOR, max(1, round(thick / 2)), cv2.LINE_AA)
        if bool(faded[j]) != want_faded:
            continue
        c = color or _side_color(_side(j))
        if person.propagated:  # hollow ring
            cv2.circle(img, centre, radius, c, max(1, round(thick * 0.75)), cv2.LINE_AA)
        else:  # filled dot with a dark rim
            cv2.circle(img, centre, radius, c, -1, cv2.LINE_AA)
            cv2.circle(img, centre, radius, (0, 0, 0), 1, cv2.LINE_AA)
        if draw_scores and person.scores is not None:
            cv2.putText(img, f"{person.scores[j]:.2f}", (centre[0] + radius + 1, centre[1] - radius),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.3 * _scale(img), c, 1, cv2.LINE_AA)


def _blend_layer(img: np.ndarray, layer: np.ndarray, alpha: float) -> None:
    """Where `layer` differs from `img`, mix it in with opacity `alpha` (in place)."""
    changed = np.any(layer != img, axis=-1)
    if changed.any():
        mixed = img[changed].astype(np.float32) * (1 - alpha) + layer[changed].astype(np.float32) * alpha
        img[changed] = np.clip(np.round(mixed), 0, 255).astype(np.uint8)


class _TagLayout:
    """Places text tags so they overlap neither each other nor anything reserved (the frame header).

    Each tag tries, in order: above its person's box (left-aligned, then right-aligned), below the box, inside its
    top edge, then further up and down in steps of one tag height; the first free spot wins, else the candidate
    with the least overlap.
    """

    def __init__(self, img: np.ndarray) -> None:
        self.h, self.w = img.shape[:2]
        self.taken: list[tuple[int, int, int, int]] = []  # x0, y0, x1, y1

    def _clip(self, x: int, y: int, tw: int, th: int) -> tuple[int, int, int, int]:
        x = int(np.clip(x, 0, max(0, self.w - tw)))
        y = int(np.clip(y, 0, max(0, self.h - th)))
        return x, y, x + tw, y + th

    def _overlap(self, r: tuple[int, int, int, int]) -> int:
        total = 0
        for t in self.taken:
            dx = min(r[2], t[2]) - max(r[0], t[0])
            dy = min(r[3], t[3]) - max(r[1], t[1])
            if dx > 0 and dy > 0:
                total += dx * dy
        return total

    def place(self, tw: int, th: int, box: tuple[float, float, float, float] | None,
              fixed: tuple[int, int] | None = None) -> tuple[int, int, int, int]:
        """The rectangle (x0, y0, x1, y1) for a tw x th tag near `box` (or exactly at `fixed`), reserved."""
        if fixed is not None:
            rect = self._clip(fixed[0], fixed[1], tw, th)
        else:
            x, y, bw, bh = box if box is not None else (0.0, 0.0, float(self.w), 0.0)
            x0, x1, top, bottom = round(x), round(x + bw), round(y), round(y + bh)
            candidates = [(x0, top - th - 1), (x1 - tw, top - th - 1), (x0, bottom + 1), (x0, top + 1)]
            candidates += [(x0, top - th - 1 - k * (th + 1)) for k in range(1, 6)]
            candidates += [(x0, bottom + 1 + k * (th + 1)) for k in range(1, 6)]
            rects = [self._clip(cx, cy, tw, th) for cx, cy in candidates]
            overlaps = [self._overlap(r) for r in rects]
            rect = rects[int(np.argmin(overlaps))]
        self.taken.append(rect)
        return rect


def _tag_size(text: str, scale: float) -> tuple[int, int, int]:
    import cv2

    fs, th = 0.45 * scale, max(1, round(scale))
    (tw, tht), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, fs, th)
    return tw + 4, tht + base + 4, base


def _draw_tag(img: np.ndarray, text: str, rect: tuple[int, int, int, int], color: Color, scale: float) -> None:
    import cv2

    fs, th = 0.45 * scale, max(1, round(scale))
    _, _, base = _tag_size(text, scale)
    x0, y0, x1, y1 = rect
    cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), (0, 0, 0), -1)
    cv2.putText(img, text, (x0 + 2, y1 - base - 2), cv2.FONT_HERSHEY_SIMPLEX, fs, color, th, cv2.LINE_AA)


def _person_tag(person: Person) -> tuple[str, Color]:
    tid = "?" if person.track_id is None else str(person.track_id)
    if not person.propagated:
        return f"label {tid}", LABEL_TAG_COLOR
    score = f" {person.score:.2f}" if person.score is not None else ""
    if person.extra.get("review"):
        return f"prop {tid}{score} check", REVIEW_COLOR
    return f"prop {tid}{score}", PROPAGATED_TAG_COLOR


def _draw_persons(img: np.ndarray, persons: list[Person], color: Color | None, draw_scores: bool,
                  dim_below: float, layout: _TagLayout) -> None:
    """Faded parts of every person first (blended), then the solid parts, then the tags (placed without overlap)."""
    faded = [_faded_joints(p, dim_below) for p in persons]
    if any(f.any() for f in faded):
        layer = img.copy()
        for person, f in zip(persons, faded):
            _draw_skeleton(layer, person, color, draw_scores, f, "faded")
        _blend_layer(img, layer, FADED_ALPHA)
    for person, f in zip(persons, faded):
        _draw_skeleton(img, person, color, draw_scores, f, "solid")
    s = _scale(img)
    for person in persons:
        box = person.bbox if person.bbox is not None else person.box_from_keypoints()
        if box is None:
            continue
        text, tag_color = _person_tag(person)
        tw, th, _ = _tag_size(text, s)
        _draw_tag(img, text, layout.place(tw, th, box), tag_color, s)


def _check_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 2:
        import cv2

        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"expected a (H, W, 3) uint8 BGR image, got shape {img.shape} dtype {img.dtype}")
    return np.ascontiguousarray(img).copy()


def draw_pose(image: np.ndarray, person: Person, color: Color | None = None, draw_scores: bool = False,
              dim_below: float = DEFAULT_DIM_BELOW) -> np.ndarray:
    """A copy of the BGR `image` with `person`'s skeleton drawn (annotated joints only).

    `color` (BGR) overrides the left/right/midline colours; `draw_scores` writes each joint's score beside it;
    propagated joints scored below `dim_below` are faded. Propagated persons get hollow joints, dashed bones and a
    "prop <track> <score>" tag; labels a "label <track>" tag.
    """
    img = _check_image(image)
    _draw_persons(img, [person], color, draw_scores, dim_below, _TagLayout(img))
    return img


def frame_header(frame: Frame) -> str:
    """The short header line of an overlay frame: its number, labeled or not, and how many poses it holds."""
    n_prop = sum(p.propagated for p in frame.persons)
    n_review = sum(bool(p.extra.get("review")) for p in frame.persons if p.propagated)
    if frame.is_labeled:
        return f"frame {frame.index}  labeled: {len(frame.persons) - n_prop}"
    return f"frame {frame.index}  propagated: {n_prop}" + (f"  check: {n_review}" if n_review else "")


def draw_frame(image: np.ndarray, frame: Frame, draw_scores: bool = False,
               dim_below: float = DEFAULT_DIM_BELOW) -> np.ndarray:
    """A copy of `image` with every person of `frame`, its ignore regions (grey outlines) and a header saying
    whether the frame is labeled and how many poses it holds (and how many a review flagged)."""
    import cv2

    img = _check_image(image)
    for xs, ys in frame.ignore_regions:
        pts = np.round(np.stack([xs, ys], axis=1)).astype(np.int32)
        if len(pts) >= 2:
            cv2.polylines(img, [pts], True, IGNORE_COLOR, max(1, round(_scale(img))), cv2.LINE_AA)
    layout = _TagLayout(img)
    s = _scale(img)
    header = frame_header(frame)
    tw, th, _ = _tag_size(header, s)
    header_rect = layout.place(tw, th, None, fixed=(2, 2))
    _draw_persons(img, frame.persons, None, draw_scores, dim_below, layout)
    _draw_tag(img, header, header_rect, LABEL_TAG_COLOR if frame.is_labeled else PROPAGATED_TAG_COLOR, s)
    return img


def save_overlay_frame(image: np.ndarray, frame: Frame, out_path: str | Path,
                       dim_below: float = DEFAULT_DIM_BELOW) -> Path:
    """Draw `frame` on `image` and write it (format from the suffix, e.g. .jpg / .png) atomically."""
    return write_image(draw_frame(image, frame, dim_below=dim_below), out_path)


def write_image(image: np.ndarray, out_path: str | Path, jpeg_quality: int = 90) -> Path:
    """Write a BGR image (format from the suffix) atomically; DataError when OpenCV cannot encode that format."""
    import cv2

    out = Path(out_path)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if out.suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(out.suffix or ".png", image, params)
    if not ok:
        raise DataError(out, f"OpenCV cannot encode an image as '{out.suffix}'")
    with atomic_path(out) as tmp:
        tmp.write_bytes(buf.tobytes())
    return out


def scale_frame(frame: Frame, factor: float) -> Frame:
    """A copy of `frame` with every coordinate (keypoints, boxes, ignore regions) multiplied by `factor`."""
    if factor == 1:
        return frame
    persons = []
    for p in frame.persons:
        q = copy.deepcopy(p)
        q.keypoints[:, :2] *= factor
        q.bbox = tuple(v * factor for v in q.bbox) if q.bbox is not None else None
        q.bbox_head = tuple(v * factor for v in q.bbox_head) if q.bbox_head is not None else None
        persons.append(q)
    regions = [(tuple(x * factor for x in xs), tuple(y * factor for y in ys)) for xs, ys in frame.ignore_regions]
    return dataclasses.replace(frame, persons=persons, ignore_regions=regions)


class _CodecUnavailable(Exception):
    pass


# (codec, suffix) tried in order, those of the requested suffix first. "libx264" is H.264 through PyAV (its wheels
# bundle FFmpeg with libx264; plays in browsers and notebooks); "mp4v" (MPEG-4 Part 2, plays in desktop players
# only) needs OpenCV's FFmpeg backend; MJPG/.avi is built into every OpenCV.
VIDEO_CODECS: tuple[tuple[str, str], ...] = (("libx264", ".mp4"), ("mp4v", ".mp4"), ("MJPG", ".avi"))
CODEC_NAMES = {"libx264": "H.264", "mp4v": "MPEG-4 Part 2", "MJPG": "Motion JPEG"}
H264_CRF = 23  # x264's default quality
H264_PRESET = "veryfast"  # x264 speed/size: on vtest.avi 2.7x faster than "medium" and no bigger


@dataclasses.dataclass
class OverlayVideo:
    """What `encode_overlay_video` wrote: the path (may differ from the request after a codec fallback), the codec,
    the frame count and the upscale factor applied to small frames."""

    path: Path
    codec: str
    frames: int
    upscale: int

    @property
    def codec_name(self) -> str:
        return CODEC_NAMES.get(self.codec, self.codec)


def overlay_upscale(width: int, height: int, min_side: int = MIN_OVERLAY_SIDE) -> int:
    """Integer factor that brings the shorter side to at least `min_side` (1 for frames that are big enough)."""
    short = min(width, height)
    return 1 if short <= 0 or short >= min_side else int(math.ceil(min_side / short))


def write_overlay_video(video: Video, frames, out_path: str | Path, fps: float | None = None,
                        progress: bool = True, dim_below: float = DEFAULT_DIM_BELOW,
                        min_side: int = MIN_OVERLAY_SIDE) -> Path:
    """Write every frame of `video` with its poses drawn; returns the path written (see `encode_overlay_video`)."""
    return encode_overlay_video(video, frames, out_path, fps, progress, dim_below, min_side).path


def encode_overlay_video(video: Video, frames, out_path: str | Path, fps: float | None = None,
                         progress: bool = True, dim_below: float = DEFAULT_DIM_BELOW,
                         min_side: int = MIN_OVERLAY_SIDE) -> OverlayVideo:
    """Write every frame of `video` with its poses drawn, H.264 mp4 when PyAV is installed.

    `frames` is a `stdpose.data.video.FrameReader` (or any indexable of BGR images); `fps` defaults to the
    reader's `fps` attribute, else 25. Frames whose shorter side is below `min_side` are upscaled by an integer
    factor first (a 192x144 clip becomes 576x432) so the header and tags are readable at native size. Fallbacks,
    each with a warning that says why: without PyAV, MPEG-4 Part 2 mp4 through OpenCV (desktop players only);
    when OpenCV cannot write mp4 either, MJPG .avi beside the requested path. Written atomically.
    """
    out = Path(out_path)
    if video.num_frames == 0:
        raise DataError(video.source or video.name, "the video has no frames to draw")
    if len(frames) < video.num_frames:
        raise DataError(video.source or video.name,
                        f"{video.num_frames} annotated frames but only {len(frames)} video frames")
    rate = float(fps or getattr(frames, "fps", None) or 25.0)
    first = _check_image(frames[0])
    factor = overlay_upscale(first.shape[1], first.shape[0], min_side)
    size = (first.shape[1], first.shape[0])
    suffix = out.suffix.lower()
    codecs = [c for c in VIDEO_CODECS if c[1] == suffix] + [c for c in VIDEO_CODECS if c[1] != suffix]
    reasons: list[str] = []
    for fourcc, codec_suffix in codecs:
        target = out if codec_suffix == suffix else out.with_suffix(codec_suffix)
        try:
            writer = _write_pyav if fourcc == "libx264" else _write_opencv
            writer(video, frames, target, fourcc, rate, size, factor, dim_below, progress)
        except _CodecUnavailable as exc:
            reasons.append(f"{CODEC_NAMES.get(fourcc, fourcc)}: {exc}")
            continue
        if reasons:
            log.warning("overlay video written as %s (%s) instead of %s: %s", target, CODEC_NAMES.get(fourcc, fourcc),
                        "H.264" if suffix == ".mp4" else out.suffix, "; ".join(reasons))
        return OverlayVideo(target, fourcc, video.num_frames, factor)
    raise DataError(out, f"no video encoder works here ({'; '.join(reasons)})")


def _overlay_frames(video: Video, frames, size: tuple[int, int], factor: int, dim_below: float, progress: bool,
                    desc: str):
    """The drawn frames (BGR uint8, upscaled by `factor`, padded to even width/height), in order."""
    import cv2

    indices = range(video.num_frames)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc=desc, unit="frame", leave=False)
    for i in indices:
        img = _check_image(frames[i])
        if (img.shape[1], img.shape[0]) != size:
            raise DataError(video.source or video.name, f"frame {i} is {img.shape[1]}x{img.shape[0]}, "
                                                        f"the first frame is {size[0]}x{size[1]}")
        frame = video.frames[i]
        if factor > 1:
            img = cv2.resize(img, (size[0] * factor, size[1] * factor), interpolation=cv2.INTER_CUBIC)
            frame = scale_frame(frame, factor)
        drawn = draw_frame(img, frame, dim_below=dim_below)
        h, w = drawn.shape[:2]
        if h % 2 or w % 2:  # yuv420p needs even sizes
            drawn = cv2.copyMakeBorder(drawn, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)
        yield drawn


def _out_size(size: tuple[int, int], factor: int) -> tuple[int, int]:
    w, h = size[0] * factor, size[1] * factor
    return w + w % 2, h + h % 2


def _write_pyav(video: Video, frames, target: Path, codec: str, fps: float, size: tuple[int, int], factor: int,
                dim_below: float, progress: bool) -> None:
    from fractions import Fraction

    try:
        import av
    except ImportError:
        raise _CodecUnavailable("PyAV is not installed (pip install av)") from None
    width, height = _out_size(size, factor)
    with atomic_path(target, suffix=".mp4") as tmp:
        container = av.open(str(tmp), mode="w", format="mp4")
        try:
            try:
                stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
            except Exception as exc:  # an FFmpeg build without the encoder
                raise _CodecUnavailable(f"PyAV's FFmpeg has no {codec} encoder ({exc})") from None
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"crf": str(H264_CRF), "preset": H264_PRESET}
            for drawn in _overlay_frames(video, frames, size, factor, dim_below, progress, f"overlay {target.name}"):
                for packet in stream.encode(av.VideoFrame.from_ndarray(drawn, format="bgr24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        finally:
            container.close()


def _write_opencv(video: Video, frames, target: Path, fourcc: str, fps: float, size: tuple[int, int], factor: int,
                  dim_below: float, progress: bool) -> None:
    import cv2

    with atomic_path(target) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*fourcc), fps, _out_size(size, factor))
        if not writer.isOpened():
            raise _CodecUnavailable(f"OpenCV cannot open a {fourcc} writer here")
        try:
            for drawn in _overlay_frames(video, frames, size, factor, dim_below, progress, f"overlay {target.name}"):
                writer.write(drawn)
        finally:
            writer.release()
        if tmp.stat().st_size == 0:
            raise _CodecUnavailable(f"OpenCV wrote an empty {fourcc} file")


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
