"""Frames from a video file or an image folder, decoded lazily with a small LRU cache.

`open_frames(source)` returns a `FrameReader`: `len(reader)`, `reader[i]` -> (H, W, 3) uint8 BGR, `.fps`, `.size`
(width, height) and `.path`. `VideoFrames(video, root)` reads the frames of an annotated `records.Video` from
`root / frame.file_name`. Every returned array is a fresh copy (callers may draw on it). Readers can be pickled
(for DataLoader workers): the open capture and the cache are dropped and rebuilt on first use.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from stdpose.data.records import Video
from stdpose.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_FOLDER_FPS = 25.0  # image folders carry no frame rate; PoseTrack clips are mostly 25-30 fps
# Forward gaps up to this many frames are decoded sequentially instead of seeking (seeking restarts at a keyframe).
_MAX_SEQUENTIAL_SKIP = 48


class FrameIndexError(DataError, IndexError):
    """A frame index outside the reader (also an IndexError, so Python's sequence protocol works)."""


def _natural_key(path: Path) -> list:
    """Sort 'frame2' before 'frame10'."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


class FrameReader:
    """Base class: random access to frames with an LRU cache of decoded images.

    Subclasses implement `_decode(i)`. `cache_size` decoded frames are kept (a triplet window plus some slack).
    """

    def __init__(self, path: str | Path, cache_size: int = 16):
        self.path = Path(path)
        self.cache_size = max(0, int(cache_size))
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self.fps: float = DEFAULT_FOLDER_FPS
        self._size: tuple[int, int] | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames."""
        if self._size is None:
            h, w = self[0].shape[:2]
            self._size = (int(w), int(h))
        return self._size

    def _decode(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def __getitem__(self, index: int) -> np.ndarray:
        n = len(self)
        if not isinstance(index, int | np.integer):
            raise TypeError(f"frame index must be an int, got {type(index).__name__}")
        index = int(index)
        if not 0 <= index < n:
            raise FrameIndexError(self.path, f"frame {index} out of range (the source has {n} frames)")
        cached = self._cache.get(index)
        if cached is None:
            cached = self._decode(index)
            if self.cache_size:
                self._cache[index] = cached
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(index)
        return cached.copy()

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self[i]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, frames={len(self)}, fps={self.fps:g})"


def _read_image(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(path, "image file not found")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(path, "cannot decode image (unreadable, truncated or not an image)")
    return image


class ImageListReader(FrameReader):
    """Frames from a list of image files (one image per frame)."""

    def __init__(self, files: Sequence[str | Path], path: str | Path, fps: float = DEFAULT_FOLDER_FPS,
                 size: tuple[int, int] | None = None, cache_size: int = 16):
        super().__init__(path, cache_size)
        self.files = [Path(f) for f in files]
        self.fps = float(fps)
        self._size = size

    def __len__(self) -> int:
        return len(self.files)

    def _decode(self, index: int) -> np.ndarray:
        return _read_image(self.files[index])


class ImageFolderReader(ImageListReader):
    """Frames from the images of a folder, in natural file-name order."""

    def __init__(self, folder: str | Path, fps: float = DEFAULT_FOLDER_FPS, cache_size: int = 16):
        folder = Path(folder)
        files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
        if not files:
            raise DataError(folder, f"folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        super().__init__(files, folder, fps=fps, cache_size=cache_size)


class VideoFileReader(FrameReader):
    """Frames of a video file OpenCV can decode (mp4, avi, ...).

    Consecutive and short forward reads decode sequentially; other jumps seek. A frame that cannot be decoded
    although the container reports it raises DataError naming the file and frame.
    """

    def __init__(self, path: str | Path, cache_size: int = 16):
        super().__init__(path, cache_size)
        if not self.path.is_file():
            raise DataError(self.path, "video file not found")
        cap = self._open()
        try:
            self._count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            fps = float(cap.get(cv2.CAP_PROP_FPS))
            w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        finally:
            cap.release()
        if self._count <= 0 or w <= 0 or h <= 0:
            raise DataError(self.path, "cannot read video (no frames or no size; corrupt or unsupported file)")
        self.fps = fps if fps > 0 and np.isfinite(fps) else DEFAULT_FOLDER_FPS
        self._size = (w, h)
        self._cap: cv2.VideoCapture | None = None
        self._next = 0  # index of the frame the open capture decodes next

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise DataError(self.path, "cannot open video (corrupt file or a codec OpenCV cannot decode)")
        return cap

    def __len__(self) -> int:
        return self._count

    def _decode(self, index: int) -> np.ndarray:
        if self._cap is None:
            self._cap, self._next = self._open(), 0
        if index < self._next or index - self._next > _MAX_SEQUENTIAL_SKIP:
            if index < self._next and index <= _MAX_SEQUENTIAL_SKIP:
                self._cap.release()  # near the start: reopen and decode forward (exact for every codec)
                self._cap, self._next = self._open(), 0
            else:
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)
                self._next = index
        while self._next < index:
            if not self._cap.grab():
                break
            self._next += 1
        ok, frame = self._cap.read() if self._next == index else (False, None)
        if not ok or frame is None:
            self.close()
            raise DataError(self.path, f"cannot decode frame {index} of {self._count} (truncated or corrupt video)")
        self._next = index + 1
        return frame

    def close(self) -> None:
        """Release the decoder (reopened on the next read)."""
        if self._cap is not None:
            self._cap.release()
        self._cap, self._next = None, 0

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_cap"], state["_next"] = None, 0
        return state

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


class VideoFrames(ImageListReader):
    """The frames of an annotated Video, read from `root / frame.file_name` (Frame.index order)."""

    def __init__(self, video: Video, root: str | Path, fps: float | None = None, cache_size: int = 16):
        from stdpose.paths import confined

        root = Path(root)
        files = [confined(root, f.file_name, "file_name", video.source) for f in video.frames]
        first = video.frames[0] if video.frames else None
        size = (int(first.width), int(first.height)) if first is not None and first.width and first.height else None
        fps = fps if fps is not None else float(video.extra.get("fps", DEFAULT_FOLDER_FPS))
        super().__init__(files, root / video.name, fps=fps, size=size, cache_size=cache_size)
        self.video = video

    def _decode(self, index: int) -> np.ndarray:
        try:
            return super()._decode(index)
        except DataError as exc:
            raise DataError(exc.path, f"{exc.problem} (frame {index} of video {self.video.name})") from None


def open_frames(source: str | Path, fps: float | None = None, cache_size: int = 16) -> FrameReader:
    """A FrameReader for a video file, a folder of frame images, or a single image (a 1-frame reader).

    `fps` overrides the frame rate (image folders have none; the default is DEFAULT_FOLDER_FPS).
    """
    path = Path(source)
    if path.is_dir():
        return ImageFolderReader(path, fps=fps or DEFAULT_FOLDER_FPS, cache_size=cache_size)
    if not path.exists():
        raise DataError(path, "no such video file or frame folder")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageListReader([path], path, fps=fps or DEFAULT_FOLDER_FPS, cache_size=cache_size)
    reader = VideoFileReader(path, cache_size=cache_size)
    if fps:
        reader.fps = float(fps)
    return reader


class BoundedFrameCache:
    """At most `capacity` decoded frames of one source, least recently used dropped first.

    The propagator and the estimator read frames through it so that their memory does not grow with the video's
    length (issue 14): whatever the schedule, no more than `capacity` images are held, and `peak` records the
    most that ever were (tests check it). A dropped frame that is needed again is simply decoded again.
    """

    def __init__(self, frames: Any, capacity: int):
        if int(capacity) < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.frames = frames
        self.capacity = int(capacity)
        self._images: OrderedDict[int, np.ndarray] = OrderedDict()
        self.peak = 0
        self.reads = 0  # frames[i] calls (decodes)

    def __getitem__(self, index: int) -> np.ndarray:
        index = int(index)
        image = self._images.get(index)
        if image is not None:
            self._images.move_to_end(index)
            return image
        image = self.frames[index]
        self.reads += 1
        self._images[index] = image
        while len(self._images) > self.capacity:
            self._images.popitem(last=False)
        self.peak = max(self.peak, len(self._images))
        return image

    def __len__(self) -> int:
        return len(self._images)

    def drop_before(self, index: int) -> None:
        """Forget frames before `index` (callers that move forward through the video)."""
        for i in [i for i in self._images if i < index]:
            del self._images[i]
