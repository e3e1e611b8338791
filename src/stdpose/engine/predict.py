"""Video pose ESTIMATION with a trained STDPose model: person boxes in, one pose per kept box out.

For every frame t and every person box on it (from a detection file or from ground-truth boxes):
1. the box is padded to the input aspect ratio and enlarged 25% (`box_to_center_size`, as in training), and that
   one crop is cut from frames t-1, t, t+1 (clamped at the video ends; `sampling.estimation_triplets`);
2. the model runs on the (left, key, right) crops with `aux_heatmaps=None`: in estimation the auxiliary heatmaps
   are the model's own predictions for the neighbours, so no label is needed at inference;
3. optional flip test: the same crops mirrored go through the model too, the output is mirrored back with left and
   right joints exchanged (`transforms.flip_heatmaps`) and averaged with the plain output;
4. heatmaps are decoded (argmax + DARK refinement) and mapped back to image pixels; each keypoint's score is its
   heatmap maximum (clipped to [0, 1]) times the box score;
5. optional OKS-NMS per frame drops duplicate poses (two boxes on one person).

Choices where the papers are silent or our conventions differ (docs/estimation.md):
- Flip shift. HRNet-style code shifts the mirrored heatmaps one pixel right before averaging, to undo the bias of
  its pixel convention. stdpose places pixel centres at integer coordinates and mirrors with x -> (w-1) - x at
  every resolution (see `stdpose.data.transforms`), which makes the mirrored heatmap exactly aligned; the shift
  would ADD a quarter-input-pixel bias here. `flip_shift=True` restores the HRNet behaviour, off by default.
- Person score (used by OKS-NMS to decide which duplicate survives, and written as the pose score) is the box score
  times the mean heatmap maximum over the evaluated joints whose maximum exceeds 0.2 (HRNet/DCPose rescoring).
- OKS-NMS measures OKS over the 15 evaluated joints whose heatmap maximum exceeds 0.2 (HRNet's `in_vis_thre`).
- Boxes below `box_score_threshold` (0.2 by default, DCPose's value) are dropped before anything runs on them.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stdpose.data.bounds import clip_box
from stdpose.data.records import Box, Frame, Person, Video
from stdpose.data.sampling import estimation_triplets
from stdpose.data.transforms import (
    box_to_center_size,
    crop_transforms,
    decode_heatmaps,
    flip_heatmaps,
    heatmap_to_image,
    to_tensor_image,
    warp_image,
)
from stdpose.data.video import BoundedFrameCache
from stdpose.engine.nms import oks_nms
from stdpose.errors import ConfigError, DataError
from stdpose.skeleton import EVALUATED_SLOTS, NUM_SLOTS

log = logging.getLogger(__name__)

DEFAULT_BOX_THRESHOLD = 0.2  # DCPose / PoseWarper drop detections below this score
RESCORE_MIN_JOINT = 0.2  # heatmap maxima below this do not count in the person score / OKS (HRNet in_vis_thre)

# A box as the estimator takes it: ((x, y, w, h), score).
ScoredBox = tuple[Box, float]


@dataclass
class EstimationStats:
    """What one `predict_video` call did."""

    frames: int = 0  # frames with at least one box
    boxes_in: int = 0  # boxes given
    below_threshold: int = 0  # dropped by box_score_threshold
    invalid_boxes: int = 0  # zero / negative / non-finite size (skipped, counted)
    boxes_clipped: int = 0  # partly outside the image: clipped to it (data/bounds.py)
    boxes_outside: int = 0  # entirely outside the image: skipped, counted
    persons: int = 0  # poses returned
    nms_removed: int = 0  # poses dropped by OKS-NMS
    model_calls: int = 0
    max_cached_frames: int = 0  # most decoded frames held at once (bounded by the batch, not the video length)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class _Job:
    frame: int
    box: Box
    score: float
    track_id: int | None
    center: np.ndarray
    size: np.ndarray


def _as_scored_box(item: Any) -> tuple[Box, float, int | None]:
    """Accept ((x, y, w, h), score), a bare (x, y, w, h), an object with .bbox/.score, or a dict with bbox/score;
    an optional track id comes from .track_id / 'track_id' (ground-truth boxes)."""
    track = None
    if isinstance(item, Mapping):
        box, score, track = item.get("bbox"), item.get("score", 1.0), item.get("track_id")
    elif hasattr(item, "bbox"):
        box, score, track = item.bbox, getattr(item, "score", 1.0), getattr(item, "track_id", None)
    elif len(item) == 2:
        box, score = item
    else:
        box, score = item, 1.0
    box = tuple(float(v) for v in box)
    if len(box) != 4:
        raise ValueError(f"a box needs 4 numbers (x, y, w, h), got {box}")
    return box, float(1.0 if score is None else score), track  # type: ignore[return-value]


class Estimator:
    """Top-down video pose estimation with an STDPose model trained with `data.task: estimation`.

    model: the network (`load_model_from_checkpoint`); config: its experiment config (input size and crop
    enlargement come from `data:`). batch_size: persons per model call (flip test doubles the work per call).
    flip_test: average with the mirrored input's heatmaps. box_score_threshold: drop boxes scoring below it.
    oks_nms: OKS threshold for per-frame non-maximum suppression (None: off). refine: heatmap decoding refinement
    ("dark", "quarter", "none"). flip_shift: shift mirrored heatmaps one pixel (HRNet habit; see module doc).
    `last_stats` holds an `EstimationStats` after each `predict_video`.
    """

    def __init__(
        self,
        model: Any,
        config: Mapping[str, Any],
        device: str = "cpu",
        batch_size: int = 32,
        flip_test: bool = False,
        box_score_threshold: float = DEFAULT_BOX_THRESHOLD,
        oks_nms: float | None = None,
        refine: str = "dark",
        flip_shift: bool = False,
        progress: bool = True,
    ) -> None:
        import torch

        data = dict(config.get("data") or {})
        task = data.get("task", "estimation")
        if task != "estimation":
            raise ConfigError(
                f"this model was trained for {task!r}: its auxiliary inputs are LABELS of the neighbouring frames, "
                "which estimation does not have. Use a model trained with data.task: estimation (or `stdpose "
                "propagate` for propagation models)"
            )
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if oks_nms is not None and not 0.0 < float(oks_nms) <= 1.0:
            raise ConfigError(f"oks_nms threshold must lie in (0, 1], got {oks_nms}")
        if not 0.0 <= float(box_score_threshold) <= 1.0:
            raise ConfigError(f"box_score_threshold must lie in [0, 1], got {box_score_threshold}")
        self.model = model.to(device).eval()
        self.config = config
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.flip_test = bool(flip_test)
        self.box_score_threshold = float(box_score_threshold)
        self.oks_nms = None if oks_nms is None else float(oks_nms)
        self.refine = refine
        self.flip_shift = bool(flip_shift)
        self.progress = progress
        h, w = (int(v) for v in model.cfg.input_size)
        self.input_hw = (h, w)
        self.heatmap_hw = tuple(int(v) for v in model.cfg.heatmap_size)
        self.enlarge = float(data.get("enlarge", 1.25))
        self.last_stats = EstimationStats()

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", **kwargs: Any) -> Estimator:
        """Load a `stdpose train` checkpoint (DataError when missing, corrupt or not a stdpose checkpoint)."""
        from stdpose.engine.checkpoints import load_model_from_checkpoint

        model, config = load_model_from_checkpoint(path, device=device)
        return cls(model, config, device=device, **kwargs)

    # ------------------------------------------------------------------------------------------------ model

    def _heatmaps(self, frames: np.ndarray) -> np.ndarray:
        """(B, 3, 3, H, W) normalised crops -> (B, J, h, w) heatmaps, flip-averaged when flip_test is on."""
        import torch

        x = torch.from_numpy(frames).to(self.device)
        out = self.model(x)["heatmaps"].float()  # (B, J, h, w)
        self.last_stats.model_calls += 1
        if self.flip_test:
            mirrored = self.model(torch.flip(x, dims=[-1]))["heatmaps"].float()
            self.last_stats.model_calls += 1
            back = flip_heatmaps(mirrored)  # mirrored back, left/right channels exchanged
            if self.flip_shift:
                back = torch.cat([back[..., :1], back[..., :-1]], dim=-1)  # HRNet: one pixel to the right
            out = 0.5 * (out + back)
        return out.cpu().numpy()

    def _run_batch(self, jobs: list[_Job], triplets: list[tuple[int, int, int]],
                   cache: BoundedFrameCache) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.input_hw
        hh, hw = self.heatmap_hw
        crops = np.empty((len(jobs), 3, 3, h, w), dtype=np.float32)
        for b, job in enumerate(jobs):
            to_input, _ = crop_transforms(job.center, job.size, 0.0, False, (w, h), (hw, hh))
            for slot, f in enumerate(triplets[job.frame]):  # (left, key, right)
                crops[b, slot] = to_tensor_image(warp_image(_read_frame(cache, f), to_input, (w, h)))
        heatmaps = self._heatmaps(crops)
        coords, maxvals = decode_heatmaps(heatmaps, refine=self.refine)  # (B, J, 2), (B, J)
        centers = np.stack([j.center for j in jobs])
        sizes = np.stack([j.size for j in jobs])
        xy = heatmap_to_image(np.asarray(coords, dtype=np.float64), centers, sizes, (hh, hw))  # (B, J, 2)
        return np.asarray(xy, dtype=np.float64), np.clip(np.asarray(maxvals, dtype=np.float64), 0.0, 1.0)

    # ------------------------------------------------------------------------------------------------ public

    def predict_video(
        self,
        video: Video,
        frames: Any,
        boxes: Mapping[int, Sequence[Any]],
        frames_to_predict: Iterable[int] | None = None,
    ) -> Video:
        """A new Video with the frames of `video` (metadata kept) holding one predicted Person per kept box.

        frames: a FrameReader (or any sequence of BGR images) covering the video; boxes: frame index -> boxes, each
        ((x, y, w, h), score) or an object/dict with bbox/score (see `boxes_from_detections`, `boxes_from_labels`).
        frames_to_predict: only these frame indices (None: every frame with boxes). Every returned frame is marked
        is_labeled=True (it was predicted, possibly with no person); persons have propagated=True, all 17 slots
        with v=1, per-keypoint `scores`, the person `score`, the box as `bbox` and its score in extra["box_score"].
        """
        import torch

        start = time.perf_counter()
        self.last_stats = stats = EstimationStats()
        where = video.source or video.name
        if frames is None or len(frames) < video.num_frames:
            have = 0 if frames is None else len(frames)
            raise DataError(where, f"the video has {video.num_frames} frames but only {have} images were given")
        wanted = set(range(video.num_frames)) if frames_to_predict is None else {int(i) for i in frames_to_predict}
        h, w = self.input_hw
        image_size = _image_size(video, frames)
        jobs: list[_Job] = []
        for index in sorted(boxes):
            if not 0 <= int(index) < video.num_frames:
                raise DataError(where, f"boxes given for frame {index}, but the video has {video.num_frames} frames")
            if index not in wanted:
                continue
            items = boxes[index]
            if items:
                stats.frames += 1
            for item in items:
                stats.boxes_in += 1
                try:
                    box, score, track = _as_scored_box(item)
                except (TypeError, ValueError) as exc:
                    raise DataError(where, f"frame {index}: unusable box {item!r} ({exc})") from None
                if score < self.box_score_threshold:
                    stats.below_threshold += 1
                    continue
                inside = clip_box(box, image_size) if all(np.isfinite(box)) else box
                if inside is None:
                    stats.boxes_outside += 1
                    continue
                stats.boxes_clipped += int(inside != tuple(float(v) for v in box))
                box = inside
                try:
                    center, size = box_to_center_size(box, w / h, self.enlarge)
                except ValueError:
                    stats.invalid_boxes += 1
                    continue
                jobs.append(_Job(int(index), box, score, track, center, size))
        if stats.invalid_boxes:
            stats.notes.append(f"{stats.invalid_boxes} box(es) with zero/negative/non-finite size skipped")
            log.warning("video %s: %s", video.name, stats.notes[-1])
        if stats.boxes_outside or stats.boxes_clipped:
            stats.notes.append(f"{stats.boxes_clipped} box(es) partly outside the image clipped to it, "
                               f"{stats.boxes_outside} entirely outside skipped")
            log.warning("video %s: %s", video.name, stats.notes[-1])

        triplets = [t.frames for t in estimation_triplets(video.num_frames)]
        xy = np.zeros((len(jobs), NUM_SLOTS, 2))
        maxval = np.zeros((len(jobs), NUM_SLOTS))
        # a batch of B persons needs at most B + 2 frames (jobs are in frame order): memory bounded by the batch
        cache = BoundedFrameCache(frames, self.batch_size + 2)
        bar = None
        if self.progress and jobs:
            from tqdm import tqdm

            bar = tqdm(total=len(jobs), desc=f"estimate {video.name}", unit="person", leave=False)
        try:
            with torch.inference_mode():
                for s in range(0, len(jobs), self.batch_size):
                    batch = jobs[s : s + self.batch_size]
                    xy[s : s + len(batch)], maxval[s : s + len(batch)] = self._run_batch(batch, triplets, cache)
                    # jobs are in frame order: keep only frames later batches can still need
                    cache.drop_before(triplets[jobs[min(s + self.batch_size, len(jobs) - 1)].frame][0])
                    if bar is not None:
                        bar.update(len(batch))
        finally:
            if bar is not None:
                bar.close()
        stats.max_cached_frames = cache.peak

        per_frame: dict[int, list[Person]] = {}
        for i, job in enumerate(jobs):
            per_frame.setdefault(job.frame, []).append(self._person(job, xy[i], maxval[i]))
        if self.oks_nms is not None:
            for index, persons in per_frame.items():
                kept = self._nms(persons)
                stats.nms_removed += len(persons) - len(kept)
                per_frame[index] = kept
        out_frames: list[Frame] = []
        for frame in video.frames:
            if frame.index not in wanted:
                continue
            persons = per_frame.get(frame.index, [])
            stats.persons += len(persons)
            out_frames.append(dataclasses.replace(frame, persons=persons, is_labeled=True,
                                                  ignore_regions=list(frame.ignore_regions), extra=dict(frame.extra)))
        stats.seconds = time.perf_counter() - start
        extra = dict(video.extra)
        extra["estimation"] = {"flip_test": self.flip_test, "oks_nms": self.oks_nms,
                               "box_score_threshold": self.box_score_threshold, "stats": stats.as_dict()}
        return dataclasses.replace(video, frames=out_frames, extra=extra)

    # ------------------------------------------------------------------------------------------------ helpers

    @staticmethod
    def _person(job: _Job, xy: np.ndarray, maxval: np.ndarray) -> Person:
        kps = np.ones((NUM_SLOTS, 3))
        kps[:, :2] = xy
        evaluated = maxval[list(EVALUATED_SLOTS)]
        confident = evaluated[evaluated > RESCORE_MIN_JOINT]
        quality = float(confident.mean()) if len(confident) else 0.0
        return Person(
            keypoints=kps,
            track_id=job.track_id,
            bbox=job.box,
            scores=maxval * job.score,
            score=quality * job.score,
            propagated=True,
            extra={"box_score": job.score},
        )

    def _nms(self, persons: list[Person]) -> list[Person]:
        if len(persons) < 2:
            return persons
        poses = np.zeros((len(persons), NUM_SLOTS, 3))
        for i, p in enumerate(persons):
            poses[i, :, :2] = p.keypoints[:, :2]
            box_score = max(float(p.extra.get("box_score", 1.0)), 1e-12)
            poses[i, list(EVALUATED_SLOTS), 2] = p.scores[list(EVALUATED_SLOTS)] / box_score  # heatmap maxima
        areas = [p.bbox[2] * p.bbox[3] for p in persons]
        keep = oks_nms(poses, [p.score for p in persons], areas, threshold=self.oks_nms,
                       min_joint_score=RESCORE_MIN_JOINT)
        return [persons[i] for i in sorted(keep)]


def _read_frame(frames: Any, index: int) -> np.ndarray:
    image = frames[index]
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise DataError(None, f"frame {index} is not a BGR (H, W, 3) image (got shape {shape})")
    return image


# ---------------------------------------------------------------------------------------------------- boxes


def posetrack_image_id(video: Video, frame: Frame) -> int | None:
    """The frame's image id: its own `image_id`, else PoseTrack's convention 1, 6-digit video id, 4-digit frame
    index (10034180000), which the PoseTrack18 files and the PoseWarper/DCPose box files use; None without an id."""
    if frame.image_id is not None:
        return int(frame.image_id)
    if video.vid_id is not None and str(video.vid_id).isdigit():
        return int(f"1{int(video.vid_id):06d}{frame.index:04d}")
    return None


def boxes_from_detections(
    video: Video, detections: Mapping[int, Sequence[Any]], by_frame_index: bool = False
) -> dict[int, list[ScoredBox]]:
    """Re-key detections read by `stdpose.data.formats.read_detections` (image_id -> detections) by frame index.

    Matching: by image id (`posetrack_image_id`), and, for detections that carry a `file_name` (or `image_name`)
    field, by the frame's file name (its last two path parts, "<sequence>/<frame>.jpg").
    `by_frame_index=True` reads image_id as the 0-based frame index (for plain videos and image folders).
    """
    out: dict[int, list[ScoredBox]] = {}
    if by_frame_index:
        for image_id, dets in detections.items():
            if 0 <= int(image_id) < video.num_frames:
                out.setdefault(int(image_id), []).extend((tuple(d.bbox), float(d.score)) for d in dets)
        return out
    matched_ids: set[int] = set()
    for frame in video.frames:
        image_id = posetrack_image_id(video, frame)
        if image_id is not None and image_id in detections:
            matched_ids.add(image_id)
            out.setdefault(frame.index, []).extend((tuple(d.bbox), float(d.score)) for d in detections[image_id])
    by_name = {_name_key(frame.file_name): frame.index for frame in video.frames}
    for image_id, dets in detections.items():
        if image_id in matched_ids:
            continue
        for d in dets:
            extra = getattr(d, "extra", None) or {}
            name = extra.get("file_name") or extra.get("image_name")
            index = by_name.get(_name_key(str(name))) if name else None
            if index is not None:
                out.setdefault(index, []).append((tuple(d.bbox), float(d.score)))
    return out


def _image_size(video: Video, frames: Any) -> tuple[int, int] | None:
    """(width, height) of the video's images: the reader's size, else the label file's; None when unknown."""
    size = getattr(frames, "size", None)
    if size and size[0] and size[1]:
        return int(size[0]), int(size[1])
    first = video.frames[0] if video.frames else None
    if first is not None and first.width and first.height:
        return int(first.width), int(first.height)
    return None


def _name_key(file_name: str) -> str:
    """The last two path parts ('<sequence>/<frame>.jpg'): unique within a PoseTrack split, whatever the prefix."""
    return "/".join(Path(file_name.replace("\\", "/")).parts[-2:])


def boxes_from_labels(video: Video) -> dict[int, list[dict[str, Any]]]:
    """Ground-truth boxes: every annotated person's `bbox` (or the tight box around its joints when it has none),
    score 1, with its track id. Frames that are not labeled get no boxes."""
    from stdpose.data.dataset import person_box

    out: dict[int, list[dict[str, Any]]] = {}
    for frame in video.frames:
        if not frame.is_labeled:
            continue
        for person in frame.persons:
            box = person_box(person)
            if box is None:
                continue
            out.setdefault(frame.index, []).append({"bbox": box, "score": 1.0, "track_id": person.track_id})
    return out
