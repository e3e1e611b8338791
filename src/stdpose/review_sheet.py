"""The review sheet: one picture (or a small static HTML page) listing the frames and tracks an annotator should
check after propagation, with a crop of each.

Input: a propagated video whose persons carry the review flags of `stdpose.propagation.review.mark_for_review`.
Flagged poses are grouped per track into runs of consecutive frames (a person drifting off for five frames is one
item, not five); each run shows its worst pose (lowest score among the flagged joints) cropped from the frame, with
the skeleton drawn, the flagged joints ringed in red, and a caption: track, frames, worst frame and score, how many
joints. `.html` writes a self-contained page (crops embedded as JPEG) with every flagged frame listed; any image
suffix (.jpg, .png) writes a contact sheet of the worst `max_items` runs.
"""

from __future__ import annotations

import base64
import copy
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stdpose.atomic import atomic_write_text
from stdpose.data.records import Person, Video
from stdpose.errors import ConfigError, DataError
from stdpose.skeleton import POSETRACK_SLOTS
from stdpose.viz import DEFAULT_DIM_BELOW, REVIEW_COLOR, draw_pose, write_image

CELL_W, CELL_H = 160, 220  # crop cell of the contact sheet, pixels
CAPTION_H = 40
CROP_MARGIN = 0.35  # crops show the person's box enlarged by this fraction (context around the limbs)


@dataclass
class ReviewItem:
    """One track's run of consecutive flagged frames."""

    track_id: int | None
    frames: list[int]
    worst_frame: int
    worst_score: float  # lowest score among the flagged joints of the worst pose
    joints: list[int] = field(default_factory=list)  # union of the flagged slots over the run

    @property
    def span(self) -> str:
        return f"{self.frames[0]}" if len(self.frames) == 1 else f"{self.frames[0]}-{self.frames[-1]}"

    def joint_names(self) -> list[str]:
        return [POSETRACK_SLOTS[j] for j in self.joints]


@dataclass
class ReviewSheet:
    """What `write_review_sheet` wrote: the path, every run found, and how many of them the sheet shows."""

    path: Path
    items: list[ReviewItem]
    shown: int

    @property
    def frames(self) -> list[int]:
        """Every flagged frame index, in order."""
        return sorted({i for item in self.items for i in item.frames})


def _flagged_score(person: Person) -> float:
    joints = person.extra.get("review_joints") or []
    if person.scores is None or not joints:
        return 0.0
    return float(min(person.scores[j] for j in joints))


def review_items(video: Video) -> list[ReviewItem]:
    """Runs of consecutive flagged frames per track, worst first (lowest flagged score, then longest)."""
    by_track: dict[int | None, list[tuple[int, Person]]] = {}
    for frame in video.frames:
        for person in frame.persons:
            if person.propagated and person.extra.get("review"):
                by_track.setdefault(person.track_id, []).append((frame.index, person))
    items: list[ReviewItem] = []
    for tid, poses in by_track.items():
        run: list[tuple[int, Person]] = []
        for index, person in sorted(poses, key=lambda ip: ip[0]) + [(-10, None)]:  # sentinel closes the last run
            if run and (person is None or index != run[-1][0] + 1):
                worst_index, worst = min(run, key=lambda ip: _flagged_score(ip[1]))
                joints = sorted({int(j) for _, p in run for j in p.extra.get("review_joints") or []})
                items.append(ReviewItem(tid, [i for i, _ in run], worst_index, _flagged_score(worst), joints))
                run = []
            if person is not None:
                run.append((index, person))
    items.sort(key=lambda it: (it.worst_score, -len(it.frames), it.frames[0]))
    return items


def _worst_person(video: Video, item: ReviewItem) -> Person:
    return next(p for p in video.frames[item.worst_frame].persons
                if p.propagated and p.track_id == item.track_id and p.extra.get("review"))


def crop_person(image: np.ndarray, person: Person, cell: tuple[int, int] = (CELL_W, CELL_H),
                dim_below: float = DEFAULT_DIM_BELOW) -> np.ndarray:
    """A cell-sized (W, H) crop around `person` (its box plus CROP_MARGIN, letterboxed) with its skeleton drawn at
    the crop's resolution, so small people get a readable, enlarged view."""
    import cv2

    box = person.bbox if person.bbox is not None else person.box_from_keypoints()
    h_img, w_img = image.shape[:2]
    if box is None:
        box = (0.0, 0.0, float(w_img), float(h_img))
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    w, h = w * (1 + CROP_MARGIN), h * (1 + CROP_MARGIN)
    cw, ch = cell
    side = max(w / cw, h / ch, 1e-6)  # image pixels per cell pixel, so the box fits the cell
    x0, y0 = cx - cw * side / 2, cy - ch * side / 2
    # affine map image -> cell (scale, then shift); pixels outside the image are black
    m = np.array([[1 / side, 0, -x0 / side], [0, 1 / side, -y0 / side]], dtype=np.float64)
    crop = cv2.warpAffine(image, m, (cw, ch), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT)
    moved = copy.deepcopy(person)  # the same map on the coordinates
    moved.keypoints[:, 0] = (moved.keypoints[:, 0] - x0) / side
    moved.keypoints[:, 1] = (moved.keypoints[:, 1] - y0) / side
    if moved.bbox is not None:
        bx, by, bw, bh = moved.bbox
        moved.bbox = ((bx - x0) / side, (by - y0) / side, bw / side, bh / side)
    return draw_pose(crop, moved, dim_below=dim_below)


def _caption(item: ReviewItem) -> tuple[str, str]:
    track = "?" if item.track_id is None else str(item.track_id)
    return (f"track {track}  frames {item.span}",
            f"worst {item.worst_frame}: {item.worst_score:.2f}, {len(item.joints)} jt")


def _cell(crop: np.ndarray, item: ReviewItem) -> np.ndarray:
    import cv2

    cell = np.full((CELL_H + CAPTION_H, CELL_W, 3), 24, np.uint8)
    cell[:CELL_H] = crop
    for k, line in enumerate(_caption(item)):
        cv2.putText(cell, line, (4, CELL_H + 15 + 17 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (255, 255, 255) if k == 0 else REVIEW_COLOR, 1, cv2.LINE_AA)
    cv2.rectangle(cell, (0, 0), (CELL_W - 1, CELL_H + CAPTION_H - 1), (70, 70, 70), 1)
    return cell


def _title(video: Video, items: Sequence[ReviewItem], shown: int, threshold: float | None) -> str:
    poses = sum(len(it.frames) for it in items)
    frames = len({i for it in items for i in it.frames})
    below = f" (joint score < {threshold:g})" if threshold is not None else ""
    more = f"; worst {shown} of {len(items)} runs shown" if shown < len(items) else ""
    return f"{video.name}: {poses} pose(s) to check on {frames} frame(s){below}, {len(items)} run(s){more}"


def _contact_sheet(crops: list[np.ndarray], items: Sequence[ReviewItem], title: str, columns: int) -> np.ndarray:
    import cv2

    columns = max(1, min(columns, len(crops))) if crops else 1
    rows = max(1, math.ceil(len(crops) / columns))
    header = 34
    sheet = np.full((header + rows * (CELL_H + CAPTION_H), columns * CELL_W, 3), 16, np.uint8)
    if sheet.shape[1] < 640:  # room for the title
        sheet = np.concatenate([sheet, np.full((sheet.shape[0], 640 - sheet.shape[1], 3), 16, np.uint8)], axis=1)
    cv2.putText(sheet, title, (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    if not crops:
        cv2.putText(sheet, "nothing to check", (6, header + 30), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (160, 220, 160), 1,
                    cv2.LINE_AA)
    for k, (crop, item) in enumerate(zip(crops, items)):
        r, c = divmod(k, columns)
        y, x = header + r * (CELL_H + CAPTION_H), c * CELL_W
        sheet[y:y + CELL_H + CAPTION_H, x:x + CELL_W] = _cell(crop, item)
    return sheet


def _jpeg_b64(image: np.ndarray) -> str:
    import cv2

    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:  # pragma: no cover - OpenCV always encodes JPEG
        raise DataError(None, "cannot encode a JPEG crop")
    return base64.b64encode(buf.tobytes()).decode("ascii")


def _html_page(video: Video, items: Sequence[ReviewItem], crops: list[np.ndarray], title: str) -> str:
    esc = html.escape
    frames = sorted({i for it in items for i in it.frames})
    rows = []
    for k, item in enumerate(items):
        img = f'<img src="data:image/jpeg;base64,{_jpeg_b64(crops[k])}" alt="track {item.track_id}">' \
            if k < len(crops) else ""
        rows.append(
            f"<tr><td>{img}</td><td>{esc(str(item.track_id))}</td><td>{esc(item.span)} ({len(item.frames)})</td>"
            f"<td>{item.worst_frame}</td><td>{item.worst_score:.2f}</td><td>{esc(', '.join(item.joint_names()))}"
            f"</td><td>{esc(' '.join(str(i) for i in item.frames))}</td></tr>")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{esc(title)}</title>",
        "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px;vertical-align:top;font-size:13px}img{display:block}</style>",
        "</head><body>", f"<h1>Review: {esc(video.name)}</h1>", f"<p>{esc(title)}</p>",
        f"<p><b>Frames to check</b> ({len(frames)}): {esc(' '.join(str(i) for i in frames)) or 'none'}</p>",
        "<table><tr><th>worst pose</th><th>track</th><th>frames</th><th>worst frame</th><th>score</th>"
        "<th>joints below the threshold</th><th>flagged frames</th></tr>",
        *rows, "</table>", "</body></html>", ""])


def write_review_sheet(video: Video, frames, out_path: str | Path, threshold: float | None = None,
                       max_items: int = 48, columns: int = 6, dim_below: float = DEFAULT_DIM_BELOW) -> ReviewSheet:
    """Write the review sheet of a flagged, propagated `video` (`.html`: a page; other suffixes: an image).

    `frames` gives the video's BGR images by frame index (a FrameReader); only the worst frame of each shown run is
    read. `threshold` is printed in the title. The image shows the worst `max_items` runs; the page lists every
    run and every flagged frame, with crops of the worst `max_items`.
    """
    out = Path(out_path)
    if frames is None:
        raise ConfigError("the review sheet needs the video frames (give --video)")
    if max_items < 1:
        raise ConfigError(f"max_items must be at least 1, got {max_items}")
    items = review_items(video)
    shown = min(len(items), max_items)
    crops = []
    for item in sorted(items[:shown], key=lambda it: it.worst_frame):  # read frames in order
        crops.append((item, crop_person(np.asarray(frames[item.worst_frame]), _worst_person(video, item),
                                        dim_below=dim_below)))
    by_item = {id(item): crop for item, crop in crops}
    ordered = [by_item[id(item)] for item in items[:shown]]
    title = _title(video, items, shown, threshold)
    if out.suffix.lower() in (".html", ".htm"):
        atomic_write_text(out, _html_page(video, items, ordered, title))
    else:
        write_image(_contact_sheet(ordered, items[:shown], title, columns), out)
    return ReviewSheet(out, items, shown)
