"""The learned STDPose propagator: labeled poses -> poses on every unlabeled frame of a video.

It implements the `stdpose.propagation.common.Propagator` interface and shares the segment plan and the output
assembly with the weight-free methods (`stdpose.propagation.tracks`, `stdpose.propagation.common`), so every method
follows the same persons over the same frames and writes the same kind of output.

Per track segment (one person between two consecutive labeled frames, or at a video end):
1. one crop for the whole segment: the union of the track's two labeled boxes (`segment_crop_box`; it contains
   every interpolated box of the segment), padded to the input aspect ratio and enlarged 25% (`box_to_center_size`);
   exactly the crop `TripletDataset(crop="segment")` trains with. Detection boxes (`detections`) set the output
   boxes only: widening the crop with them would show the model crops it never saw in training;
2. `model.encode_frames` once per (frame, track): the two labeled frames and every key frame of the segment, batched
   across persons, frames and consecutive gaps (`batch_size` crops per call; gaps are grouped until their key frames
   fill a batch, so short gaps with one person still run full batches);
3. the two labeled poses rendered as Gaussian heatmaps in the same crop (`render_heatmaps`, the training sigma);
   a one-sided or video-end segment uses its one label on both sides (the nearest labeled frame, as in training);
4. `model.aggregate` for every key frame with the cached (left, key, right) features -> heatmaps -> keypoints in
   image pixels (`decode_heatmaps`, DARK refinement) with scores = heatmap maxima (clipped to [min_score, 1]).

The naive alternative (`reuse_backbone=False`) crops and encodes the three frames of every key frame again - three
backbone passes per key frame instead of about one - and gives the same poses; it exists for the efficiency
benchmark and the equality test. Models trained with `data.crop: key` crop every key frame with its own
(interpolated or detected) box, so their features cannot be shared between key frames: they always run naively.
Joints annotated in neither label are not predicted (the `Propagator` contract; e.g. PoseTrack's ears).
Frames are read through a `BoundedFrameCache` of `batch_size + 8` images and processed in video order, so memory does
not grow with the video's length (`last_stats.max_cached_frames`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stdpose.data.records import Box, Person, Video
from stdpose.data.transforms import (
    apply_affine,
    box_to_center_size,
    crop_transforms,
    decode_heatmaps,
    invert_affine,
    render_heatmaps,
    to_tensor_image,
    warp_image,
)
from stdpose.data.video import BoundedFrameCache
from stdpose.errors import ConfigError
from stdpose.propagation.common import FrameSource, PosePrediction, assemble_video, check_frames
from stdpose.propagation.tracks import (
    DetectionMatchSummary,
    TrackSegment,
    boxes_from_detections,
    segment_crop_box,
    segment_plan,
)
from stdpose.skeleton import NUM_SLOTS

log = logging.getLogger(__name__)

CROP_MODES = ("segment", "key")


@dataclass
class PropagationStats:
    """What one `propagate` call did: backbone images encoded, aggregate calls, timing, skipped segments."""

    segments: int = 0
    gaps: int = 0
    key_frames: int = 0  # (track, frame) poses predicted
    backbone_images: int = 0  # crops passed through encode_frames
    backbone_calls: int = 0  # encode_frames invocations (batches)
    aggregate_calls: int = 0
    skipped_no_box: int = 0  # segments whose labels have no box and < 2 joints (nothing to crop)
    frames_decoded: int = 0  # frames read from the source (a frame dropped from the cache and needed again: twice)
    max_cached_frames: int = 0  # most decoded frames held at once (bounded by the cache, whatever the video length)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class _Crop:
    """One person crop: image -> input and image -> heatmap affines."""

    to_input: np.ndarray
    to_heatmap: np.ndarray

    @property
    def heatmap_to_image(self) -> np.ndarray:
        return invert_affine(self.to_heatmap)


@dataclass
class _Job:
    """One track segment to predict: its crop(s) and label heatmaps."""

    segment: TrackSegment
    crop: _Crop | None  # segment mode: one crop for every frame
    predicted: np.ndarray  # (17,) joints annotated in at least one label
    aux: np.ndarray | None = None  # (2, J, h, w) label heatmaps in `crop` (segment mode)


class STDPosePropagator:
    """Propagation with a trained STDPose model (see the module docstring for the algorithm).

    model: an STDPose network (`stdpose.model.build_model` or `load_model_from_checkpoint`); config: its experiment
    config (the `data:` section gives input size, sigma, enlarge, crop mode and task). `crop` overrides nothing: it
    must equal the crop mode the model was trained with (ConfigError otherwise) and defaults to it.
    batch_size: crops per backbone call (and key frames per aggregate call); batch_across_gaps: group consecutive
    gaps until their key frames fill a batch (False: one gap at a time, as before issue 14). detections: frame
    index -> detections (see `stdpose.propagation.tracks.boxes_from_detections`) for the boxes of unlabeled
    frames. After `propagate`, `last_stats` holds a `PropagationStats` and `last_summary` the segment plan summary.
    """

    name = "stdpose"
    needs_frames = True

    def __init__(
        self,
        model: Any,
        config: Mapping[str, Any],
        device: str = "cpu",
        batch_size: int = 32,
        progress: bool = True,
        reuse_backbone: bool = True,
        crop: str | None = None,
        one_sided: str = "half",
        detections: Mapping[int, Sequence[Any]] | None = None,
        refine: str = "dark",
        min_score: float = 1e-3,
        batch_across_gaps: bool = True,
        extend: int = 0,
    ) -> None:
        import torch

        data = dict(config.get("data") or {})
        task = data.get("task", "propagation")
        if task != "propagation":
            raise ConfigError(f"this model was trained for {task!r}, not propagation: its auxiliary inputs are its "
                              "own predictions, not labels (train one with data.task: propagation)")
        trained_crop = data.get("crop", "key")
        if trained_crop not in CROP_MODES:
            raise ConfigError(f"unknown crop mode {trained_crop!r} in the model's config (expected {CROP_MODES})")
        if crop is not None and crop != trained_crop:
            raise ConfigError(f"crop mode {crop!r} requested, but the model was trained with data.crop: "
                              f"{trained_crop!r}; a model only works on crops like those it was trained on")
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model.to(device).eval()
        self.config = config
        self.device = torch.device(device)
        self.crop = trained_crop
        self.batch_size = int(batch_size)
        self.progress = progress
        self.reuse_backbone = bool(reuse_backbone)
        self.one_sided = one_sided
        self.extend = extend  # frames filled past a track's first/last label (stdpose.propagation.tracks)
        self.detections = detections
        self.refine = refine
        self.min_score = float(min_score)
        self.batch_across_gaps = bool(batch_across_gaps)
        h, w = (int(v) for v in model.cfg.input_size)
        self.input_hw = (h, w)
        self.heatmap_hw = tuple(int(v) for v in model.cfg.heatmap_size)
        self.sigma = float(data.get("sigma", 2.0))
        self.enlarge = float(data.get("enlarge", 1.25))
        self.last_stats = PropagationStats()
        self.last_summary: dict[str, Any] = {}
        if self.crop == "key" and self.reuse_backbone:
            log.info("model trained with key-frame crops: every key frame is cropped and encoded on its own "
                     "(train with data.crop: segment to share backbone passes between key frames)")

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", **kwargs: Any) -> STDPosePropagator:
        """Load a `stdpose train` checkpoint (DataError when missing, corrupt or not a stdpose checkpoint)."""
        from stdpose.engine.checkpoints import load_model_from_checkpoint

        model, config = load_model_from_checkpoint(path, device=device)
        return cls(model, config, device=device, **kwargs)

    # ------------------------------------------------------------------------------------------------ geometry

    def _crop(self, box: Box) -> _Crop:
        h, w = self.input_hw
        hh, hw = self.heatmap_hw
        center, size = box_to_center_size(box, w / h, self.enlarge)
        to_input, to_heatmap = crop_transforms(center, size, 0.0, False, (w, h), (hw, hh))
        return _Crop(to_input, to_heatmap)

    def _aux(self, segment: TrackSegment, crop: _Crop) -> np.ndarray:
        """(2, J, h, w) label heatmaps [left, right] in `crop`; an absent side uses the other side's label."""
        left = segment.left_person if segment.left_person is not None else segment.right_person
        right = segment.right_person if segment.right_person is not None else segment.left_person
        maps = []
        for person in (left, right):
            kps = person.keypoints.copy()  # type: ignore[union-attr]
            kps[:, :2] = apply_affine(kps[:, :2], crop.to_heatmap)
            maps.append(render_heatmaps(kps, self.heatmap_hw, self.sigma)[0])
        return np.stack(maps)

    def _input(self, image: np.ndarray, crop: _Crop) -> np.ndarray:
        h, w = self.input_hw
        return to_tensor_image(warp_image(image, crop.to_input, (w, h)))  # (3, H, W)

    # ------------------------------------------------------------------------------------------------ network

    def _encode(self, crops: list[np.ndarray]) -> tuple[Any, Any]:
        """features (N, C, H', W'), heatmaps (N, J, h, w) for N input crops, in batches of `batch_size`."""
        import torch

        feats, hms = [], []
        for start in range(0, len(crops), self.batch_size):
            batch = torch.from_numpy(np.stack(crops[start:start + self.batch_size])).to(self.device)
            enc = self.model.encode_frames(batch)
            feats.append(enc["features"])
            hms.append(enc["heatmaps"])
            self.last_stats.backbone_calls += 1
        self.last_stats.backbone_images += len(crops)
        return torch.cat(feats), torch.cat(hms)

    def _aggregate(self, features: Any, heatmaps: Any, aux: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Decoded (B, J, 2) heatmap coordinates and (B, J) maxima for B triplets."""
        import torch

        aux_t = torch.from_numpy(aux).to(self.device)
        out = self.model.aggregate(features, heatmaps, aux_t)["heatmaps"]  # (B, J, h, w)
        self.last_stats.aggregate_calls += 1
        coords, maxvals = decode_heatmaps(out.float().cpu().numpy(), refine=self.refine)
        return coords, maxvals

    def _prediction(self, coords: np.ndarray, maxval: np.ndarray, crop: _Crop, predicted: np.ndarray
                    ) -> PosePrediction:
        xy = apply_affine(coords, crop.heatmap_to_image)  # (J, 2) image pixels
        scores = np.where(predicted, np.clip(maxval, self.min_score, 1.0), 0.0)
        return PosePrediction(xy, scores)

    # ------------------------------------------------------------------------------------------------ per gap

    def _run_reuse(self, jobs: list[_Job], frames: BoundedFrameCache,
                   out: dict[tuple[int, int], PosePrediction]) -> None:
        """Segment crops: encode every (frame, track) once, aggregate every key frame from the cached features."""
        import torch

        # labeled frames of every job (of this group of gaps), encoded together: (job, frame) -> row
        anchor_rows: dict[tuple[int, int], int] = {}
        crops = []
        for n, job in enumerate(jobs):
            for f in sorted({job.segment.left, job.segment.right}):
                anchor_rows[(n, f)] = len(crops)
                crops.append(self._input(frames[f], job.crop))  # type: ignore[arg-type]
        anchor_feats, anchor_hms = self._encode(crops)
        pairs = sorted((k, n) for n, job in enumerate(jobs) for k in job.segment.frames)
        for start in range(0, len(pairs), self.batch_size):
            chunk = pairs[start:start + self.batch_size]
            key_crops = [self._input(frames[k], jobs[n].crop) for k, n in chunk]  # type: ignore[arg-type]
            key_feats, key_hms = self._encode(key_crops)
            left = [anchor_rows[(n, jobs[n].segment.left)] for _, n in chunk]
            right = [anchor_rows[(n, jobs[n].segment.right)] for _, n in chunk]
            feats = torch.stack([anchor_feats[left], key_feats, anchor_feats[right]], dim=1)  # (B, 3, C, H', W')
            hms = torch.stack([anchor_hms[left], key_hms, anchor_hms[right]], dim=1)  # (B, 3, J, h, w)
            aux = np.stack([jobs[n].aux for _, n in chunk])  # (B, 2, J, h, w)
            coords, maxvals = self._aggregate(feats, hms, aux)
            for b, (k, n) in enumerate(chunk):
                job = jobs[n]
                out[(job.segment.track_id, k)] = self._prediction(coords[b], maxvals[b], job.crop, job.predicted)  # type: ignore[arg-type]

    def _run_naive(self, jobs: list[_Job], frames: BoundedFrameCache, boxes: Mapping[tuple[int, int], Box],
                   out: dict[tuple[int, int], PosePrediction]) -> None:
        """Every key frame on its own: crop and encode its three frames, then aggregate."""
        pairs = sorted((k, n) for n, job in enumerate(jobs) for k in job.segment.frames)
        for start in range(0, len(pairs), self.batch_size):
            chunk = pairs[start:start + self.batch_size]
            crops, aux, used = [], [], []
            for k, n in chunk:
                job = jobs[n]
                seg = job.segment
                crop = job.crop if job.crop is not None else self._crop(boxes[(seg.track_id, k)])
                for f in (seg.left, k, seg.right):
                    crops.append(self._input(frames[f], crop))
                aux.append(job.aux if job.crop is not None else self._aux(seg, crop))
                used.append(crop)
            feats, hms = self._encode(crops)  # (3B, ...)
            b = len(chunk)
            feats = feats.reshape(b, 3, *feats.shape[1:])  # (B, 3, C, H', W')
            hms = hms.reshape(b, 3, *hms.shape[1:])  # (B, 3, J, h, w)
            coords, maxvals = self._aggregate(feats, hms, np.stack(aux))
            for i, (k, n) in enumerate(chunk):
                job = jobs[n]
                out[(job.segment.track_id, k)] = self._prediction(coords[i], maxvals[i], used[i], job.predicted)

    # ------------------------------------------------------------------------------------------------ video

    def _groups(self, gaps: Mapping[tuple[int, int], list[_Job]]) -> Any:
        """Jobs of consecutive gaps (video order), grouped until their key frames fill a batch."""
        group: list[_Job] = []
        pairs = 0
        for jobs in gaps.values():
            group += jobs
            pairs += sum(len(job.segment.frames) for job in jobs)
            if not self.batch_across_gaps or pairs >= self.batch_size:
                yield group
                group, pairs = [], 0
        if group:
            yield group

    def propagate(self, video: Video, frames: FrameSource | None, labeled: Sequence[int]) -> Video:
        """A new Video: labeled frames keep their labels, every other frame gets the propagated tracks."""
        import torch

        start_time = time.perf_counter()
        self.last_stats = stats = PropagationStats()
        frames = check_frames(video, frames, self.name)
        plan = segment_plan(video, labeled, self.one_sided, self.extend, frames=frames)
        for msg in plan.summary.messages:
            log.warning(msg)
        det_summary = DetectionMatchSummary()
        boxes = boxes_from_detections(plan.segments, self.detections or {}, summary=det_summary)

        gaps: dict[tuple[int, int], list[_Job]] = {}
        for seg in sorted(plan.segments, key=lambda s: (s.left, s.right, s.first, s.track_id)):
            if len(seg.frames) == 0:
                continue
            frame_boxes = [boxes[(seg.track_id, i)] for i in seg.frames if (seg.track_id, i) in boxes]
            label_box = segment_crop_box(seg)
            if label_box is None or not frame_boxes:
                stats.skipped_no_box += 1
                continue
            predicted = np.zeros(NUM_SLOTS, dtype=bool)
            for p in (seg.left_person, seg.right_person):
                if isinstance(p, Person):
                    predicted |= p.annotated
            job = _Job(seg, None, predicted)
            if self.crop == "segment":
                job.crop = self._crop(label_box)
                job.aux = self._aux(seg, job.crop)
            gaps.setdefault((seg.left, seg.right), []).append(job)
            stats.segments += 1
            stats.key_frames += len(seg.frames)
        stats.gaps = len(gaps)
        if stats.skipped_no_box:
            stats.notes.append(f"{stats.skipped_no_box} track segment(s) skipped: their labels have no box and "
                               "fewer than 2 annotated joints (nothing to crop)")
            log.warning("video %s: %s", video.name, stats.notes[-1])

        predictions: dict[tuple[int, int], PosePrediction] = {}
        bar = None
        if self.progress:
            from tqdm import tqdm

            # counts frames, not segments: the ETA holds when one long segment dominates
            bar = tqdm(total=stats.key_frames, desc=f"{self.name} {video.name}", unit="frame", leave=False)
        cache = BoundedFrameCache(frames, self.batch_size + 8)
        try:
            with torch.inference_mode():
                for jobs in self._groups(gaps):
                    if self.reuse_backbone and self.crop == "segment":
                        self._run_reuse(jobs, cache, predictions)
                    else:
                        self._run_naive(jobs, cache, boxes, predictions)
                    if bar is not None:
                        bar.update(sum(len(j.segment.frames) for j in jobs))
        finally:
            if bar is not None:
                bar.close()
        stats.frames_decoded, stats.max_cached_frames = cache.reads, cache.peak
        out = assemble_video(video, plan, predictions, self.name, boxes if self.detections else None)
        stats.seconds = time.perf_counter() - start_time
        self.last_summary = out.extra["propagation"]
        self.last_summary["stats"] = stats.as_dict()
        return out


# ---------------------------------------------------------------------------------------------------- label files
