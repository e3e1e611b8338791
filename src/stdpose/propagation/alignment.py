"""Label frames -> video frames: which frame of the video each label file frame is, and the frames in label order.

Label files list frames sparsely (only the labeled ones, or every frame); videos and image folders hold every
frame. `align_labels` maps one onto the other by the frame numbers in the file names, so propagation sees the
real gaps between labels, and `restore_alignment` puts the result back into the file's own numbering.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stdpose.data.records import Video

log = logging.getLogger(__name__)


def frame_number(file_name: str) -> int | None:
    """The frame number in a file name ('images/val/000342_mpii_test/000017.jpg' -> 17), or None."""
    import re

    m = re.search(r"(\d+)\D*$", Path(file_name).name)
    return int(m.group(1)) if m else None


def _renumbered_name(template: str, number: int) -> str:
    """`template` with the frame number of its file name replaced by `number` (same zero padding)."""
    import re

    path = Path(template)
    m = re.search(r"(\d+)(\D*)$", path.name)
    if not m:
        return str(path.with_name(f"{number:06d}{path.suffix}"))
    digits = m.group(1)
    name = path.name[:m.start(1)] + f"{number:0{len(digits)}d}" + m.group(2)
    return str(path.with_name(name))


@dataclass
class Alignment:
    """How the frames of a label file map onto the frames of a video.

    video: the frames that exist in the video, re-indexed 0..n-1 in video order (what propagators get);
    video_index[i]: the video frame of `video.frames[i]`; missing: frames of the label file the video lacks (kept
    as they are in the output, nothing propagated onto them); added: frames the label file did not list (an
    only-labeled-frames file, e.g. COCO, is expanded to every frame of the video); notes: what was done and why.
    """

    video: Video
    video_index: list[int]
    missing: list[Any]
    added: int = 0
    notes: list[str] = field(default_factory=list)


def align_labels(video: Video, num_video_frames: int, video_names: Sequence[str] | None = None) -> Alignment:
    """Map the frames of `video` (a label file) onto a video of `num_video_frames` frames.

    - A file that lists only labeled frames (COCO keypoints, a sparse PoseTrack file) while the video has more frames
      is expanded to every video frame: its frames go where their file names say (by name in `video_names` - the
      frame folder's file names - else by the number in the file name); the new frames are unlabeled and empty.
    - Otherwise frame i of the file is frame i of the video when the counts agree, else matched by file name /
      number when every frame has a distinct one, else by position.
    Frames that land outside the video are `missing`; DataError only when no frame of the file is in the video.
    """
    from stdpose.data.records import Frame
    from stdpose.errors import DataError

    where = video.source or video.name
    notes: list[str] = []
    n_ann = video.num_frames
    by_name = {Path(n).name: i for i, n in enumerate(video_names or [])}
    names = [Path(f.file_name).name for f in video.frames]
    numbers = [frame_number(f.file_name) for f in video.frames]
    if by_name and all(n in by_name for n in names):
        target: list[int] = [by_name[n] for n in names]
        how = "by file name"
    elif all(n is not None for n in numbers) and len(set(numbers)) == n_ann:
        target = [int(n) for n in numbers]  # type: ignore[arg-type]
        how = "by the frame number in the file names"
    else:
        target = list(range(n_ann))
        how = "by position"
    only_labeled = n_ann > 0 and all(f.is_labeled for f in video.frames)
    expand = only_labeled and num_video_frames > n_ann and how != "by position"
    if not expand and n_ann == num_video_frames:
        if how == "by file name" and target != list(range(n_ann)):
            notes.append(f"the frame folder orders the labels' file names differently: matched by file name, "
                         f"not by position (e.g. label frame '{names[0]}' is folder frame {target[0]})")
        elif by_name and how != "by file name":
            absent = [n for n in names if n not in by_name]
            notes.append(f"{len(absent)} of the labels' {n_ann} file names are not in the frame folder (e.g. "
                         f"'{absent[0]}'): frames matched by position, frame i of the labels = frame i of the "
                         "folder; check that this is the right folder")
            target, how = list(range(n_ann)), "by position"
        else:
            target, how = list(range(n_ann)), "by position"
    if how == "by position" and only_labeled and num_video_frames > n_ann:
        notes.append(f"the labels list only labeled frames and their file names carry no frame numbers: frame i "
                     f"of the labels is taken as frame i of the video ({n_ann} of {num_video_frames} frames)")
    inside = [i for i in range(n_ann) if 0 <= target[i] < num_video_frames]
    missing = [i for i in range(n_ann) if i not in set(inside)]
    if not inside:
        raise DataError(where, f"none of its {n_ann} frames is in the video ({num_video_frames} frames; matched "
                               f"{how})")
    if len({target[i] for i in inside}) != len(inside):
        raise DataError(where, f"two frames of the labels map to the same video frame (matched {how})")
    if missing:
        lab = sum(video.frames[i].is_labeled for i in missing)
        notes.append(f"the labels reference {len(missing)} frame(s) the video lacks ({lab} labeled, e.g. "
                     f"'{video.frames[missing[0]].file_name}'; the video has {num_video_frames} frames): they are "
                     "written unchanged and nothing is propagated onto them")
    at = {target[i]: i for i in inside}
    frames: list[Frame] = []
    video_index: list[int] = []
    added = 0
    if expand:
        template = video.frames[inside[0]]
        image_base = _affine_base([(target[i], video.frames[i].image_id) for i in inside])
        frame_base = _affine_base([(target[i], video.frames[i].frame_id) for i in inside])
        for v in range(num_video_frames):
            if v in at:
                frames.append(dataclasses.replace(video.frames[at[v]], index=len(frames)))
            else:
                name = (list(video_names)[v] if video_names else None)
                file_name = str(Path(template.file_name).with_name(Path(name).name)) if name else \
                    _renumbered_name(template.file_name, v)
                frames.append(Frame(index=len(frames), file_name=file_name, is_labeled=False,
                                    width=template.width, height=template.height,
                                    image_id=None if image_base is None else image_base + v,
                                    frame_id=None if frame_base is None else frame_base + v))
                added += 1
            video_index.append(v)
        notes.append(f"the labels list only their {n_ann} labeled frame(s): expanded to all {num_video_frames} "
                     f"video frames (matched {how}); {added} unlabeled frame(s) added")
    else:
        for v in sorted(at):
            frames.append(dataclasses.replace(video.frames[at[v]], index=len(frames)))
            video_index.append(v)
        if how != "by position":
            notes.append(f"label frames matched to video frames {how}")
    work = dataclasses.replace(video, frames=frames, extra=dict(video.extra))
    return Alignment(work, video_index, [video.frames[i] for i in missing], added, notes)


def label_frame_count(video: Video) -> int | None:
    """How many frames the label file says its video has: PoseTrack18's `nframes` when its images agree on one,
    else None. (Used when no video is given, so a sparse file still spans the frames it skips.)"""
    stated = {f.extra.get("nframes") for f in video.frames}
    if len(stated) == 1:
        (n,) = stated
        if isinstance(n, int) and not isinstance(n, bool) and n > 0:
            return n
    return None


def _affine_base(pairs: list[tuple[int, int | None]]) -> int | None:
    """b when every (video frame v, id) pair has id = b + v (PoseTrack-style ids: 1, video, 4-digit frame), so
    added frames can be numbered the same way (sorting by frame_id then keeps the video order); else None."""
    bases = {int(i) - v for v, i in pairs if i is not None}
    if len(bases) == 1 and all(i is not None for _, i in pairs):
        return bases.pop()
    return None


def restore_alignment(result: Video, alignment: Alignment) -> Video:
    """The propagated working video with the label file's missing frames put back (after the others)."""
    frames = list(result.frames) + [dataclasses.replace(f, persons=list(f.persons)) for f in alignment.missing]
    frames = [dataclasses.replace(f, index=i) for i, f in enumerate(frames)]
    return dataclasses.replace(result, frames=frames)


class AlignedFrames:
    """A FrameSource over an `Alignment`: frame i is video frame `video_index[i]`, resized to `size` (W, H) when
    its own size differs (frames of different sizes: each such frame is counted in `resized`)."""

    def __init__(self, reader: Any, video_index: Sequence[int], size: tuple[int, int] | None = None) -> None:
        self.reader = reader
        self.video_index = list(video_index)
        self.size = size if size is not None else tuple(reader.size)
        self.fps = float(getattr(reader, "fps", 25.0) or 25.0)
        self.resized: dict[int, tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self.video_index)

    def __getitem__(self, index: int) -> np.ndarray:
        import cv2

        if not 0 <= int(index) < len(self.video_index):
            raise IndexError(f"frame {index} out of range ({len(self.video_index)} frames)")
        image = self.reader[self.video_index[int(index)]]
        h, w = image.shape[:2]
        if (w, h) != tuple(self.size):
            if index not in self.resized:
                self.resized[int(index)] = (w, h)
                log.warning("frame %d is %dx%d, the video's frames are %dx%d: resized to %dx%d",
                            self.video_index[int(index)], w, h, *self.size, *self.size)
            image = cv2.resize(image, tuple(int(v) for v in self.size), interpolation=cv2.INTER_LINEAR)
        return image


def reference_size(video: Video, image_of: Any) -> tuple[tuple[int, int], str]:
    """((W, H), where from) the frame size the labels are in: the label file's image width/height when its labeled
    frames agree on one, else the size of the first labeled frame's image (`image_of(i)` reads frame i)."""
    sizes = {(f.width, f.height) for f in video.frames if f.is_labeled and f.width and f.height}
    if len(sizes) == 1:
        w, h = sizes.pop()
        return (int(w), int(h)), "the label file's image size"
    labeled = video.labeled_indices()
    first = labeled[0] if labeled else 0
    image = image_of(first)
    return (int(image.shape[1]), int(image.shape[0])), f"the size of frame {first}"
