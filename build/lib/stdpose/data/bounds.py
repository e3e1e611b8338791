"""What happens to poses and boxes outside the image (docs/data-formats.md lists each rule):

- human labels far outside the frame (beyond `formats.common.OUTSIDE_TOLERANCE` of its size) are an error: the
  label file or the frame size is wrong, and propagating from them would spread the error (`check_labels_inside`);
- propagated joints outside the frame are clipped onto its border and their boxes clipped to the image, counted
  (`clip_to_image`); annotators click slightly past the border too, so labeled frames are left as they are;
- a person box (detections, `predict --boxes`) partly outside the image is clipped to it; one entirely outside is
  skipped and counted (`clip_box`).
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np

from stdpose.data.records import Video


def check_labels_inside(video: Video, size: tuple[int, int], source: str | None = None) -> None:
    """DataError naming the frame when an annotated keypoint of a labeled frame lies far outside a (w, h) frame."""
    from stdpose.data.formats.common import check_inside

    w, h = size
    for frame in video.frames:
        if not frame.is_labeled:
            continue
        sized = dataclasses.replace(frame, width=int(w), height=int(h), persons=[])
        for k, person in enumerate(frame.persons):
            check_inside(person, sized, f"{source or video.source or video.name} (frame {frame.index} "
                                        f"'{frame.file_name}', person {k})")


def clip_box(box: tuple[float, float, float, float], size: tuple[int, int] | None
             ) -> tuple[float, float, float, float] | None:
    """(x, y, w, h) clipped to a (width, height) image; None when nothing of it is inside. Unchanged without size."""
    if size is None:
        return box
    x, y, bw, bh = (float(v) for v in box)
    x0, y0 = max(x, 0.0), max(y, 0.0)
    x1, y1 = min(x + bw, float(size[0])), min(y + bh, float(size[1]))
    if not (x1 > x0 and y1 > y0):
        return None
    return (x0, y0, x1 - x0, y1 - y0)


def clip_to_image(video: Video, size: tuple[int, int]) -> Counter:
    """Clip the propagated poses (unlabeled frames) of `video` onto a (w, h) image, in place.

    Joints move onto the nearest border pixel; a box is clipped to the image (dropped to None when it lies entirely
    outside). Returns counts: `joints_clipped`, `boxes_clipped`, `boxes_dropped`."""
    w, h = size
    counts: Counter = Counter()
    for frame in video.frames:
        if frame.is_labeled:
            continue
        for person in frame.persons:
            kps = np.asarray(person.keypoints, dtype=np.float64)
            mask = kps[:, 2] > 0
            xy = kps[mask, :2]
            clipped = np.stack([np.clip(xy[:, 0], 0, w - 1), np.clip(xy[:, 1], 0, h - 1)], axis=1)
            moved = int(np.any(clipped != xy, axis=1).sum()) if len(xy) else 0
            if moved:
                kps[mask, :2] = clipped
                person.keypoints = kps
                counts["joints_clipped"] += moved
            if person.bbox is not None:
                box = clip_box(person.bbox, size)
                if box is None:
                    counts["boxes_dropped"] += 1
                elif box != tuple(float(v) for v in person.bbox):
                    counts["boxes_clipped"] += 1
                person.bbox = box
    return counts
