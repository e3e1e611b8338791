"""Torch Dataset of person-centred frame triplets, and the Lightning DataModule that builds it from a config.

One sample = (a labeled key frame, one annotated person in it). Its item holds the three frames (left, key, right)
cropped with ONE affine (from the key frame's box, paper Sec. 3), the Gaussian target of the key person, and for
propagation the LABELS of the same track in the two auxiliary frames rendered in that same crop.

Which key frames (see `stdpose.data.sampling`):
- propagation, train, `aux_inputs="labels"`: every labeled frame; its auxiliaries are labeled frames at the
  distances inference produces with labels every `interval` frames, drawn again for every item
  (`training_propagation_triplets`); the model is fed their labels.
- propagation, train, `aux_inputs="predictions"` (paper Sec. 4.2): every labeled frame; its auxiliaries are ANY
  frames at those distances (`training_triplet_any_aux`, no label needed there); the model is fed its own
  predictions for them in training (the label heatmaps are still returned: validation and inference use them).
- propagation, val: labels are kept every `interval` frames (`sparse_labeled_indices`, or the PoseWarper protocol
  with `val_protocol="posewarper"`); every other labeled frame is a key frame between its nearest kept labels.
- estimation: every labeled frame, with neighbours t-1 and t+1 (clamped); no auxiliary labels.
Randomness (auxiliary distances, augmentation) comes from torch's global generator, one draw per item, so it
follows Lightning's seeding in the main process and in workers.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data._utils.collate import default_collate

from stdpose.data.records import Person, Video
from stdpose.data.sampling import (
    Triplet,
    estimation_triplets,
    posewarper_labeled_frames,
    propagation_triplets,
    sparse_labeled_indices,
    training_propagation_triplets,
    training_triplet_any_aux,
)
from stdpose.data.transforms import (
    AugmentConfig,
    AugmentParams,
    apply_affine,
    box_to_center_size,
    crop_transforms,
    half_body_center_size,
    render_heatmaps,
    sample_augmentation,
    to_tensor_image,
    warp_image,
)
from stdpose.data.video import VideoFrames
from stdpose.errors import ConfigError, DataError
from stdpose.skeleton import NUM_SLOTS, flip_permutation

TASKS = ("propagation", "estimation")
CROPS = ("key", "segment")
VAL_PROTOCOLS = ("sparse", "posewarper")
AUX_INPUTS = ("labels", "predictions")  # what TKS/DAM get for the aux frames in propagation TRAINING


@dataclass(frozen=True)
class Sample:
    """One item: video, key frame, person (indices) and, for deterministic splits, the fixed triplet."""

    video_index: int
    frame_index: int
    person_index: int
    triplet: Triplet | None = None  # None: drawn per item (propagation training)


def person_box(person: Person) -> tuple[float, float, float, float] | None:
    """The annotation bbox when present, else the tight box around the annotated joints (None if < 2 joints)."""
    if person.bbox is not None and person.bbox[2] > 0 and person.bbox[3] > 0:
        return person.bbox
    return person.box_from_keypoints()


def _union(boxes: list[tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    arr = np.asarray(boxes, dtype=np.float64)
    x0, y0 = arr[:, 0].min(), arr[:, 1].min()
    x1, y1 = (arr[:, 0] + arr[:, 2]).max(), (arr[:, 1] + arr[:, 3]).max()
    return (x0, y0, x1 - x0, y1 - y0)


class TripletDataset(Dataset):
    """Person-centred (left, key, right) crops with heatmap targets; see the module docstring for the sampling.

    Item dict: `frames` (3, 3, H, W) float32 RGB ImageNet-normalised [left, key, right]; `aux_heatmaps` (2, J, h, w)
    and `aux_weights` (2, J) (labels of the track in the left/right frames; zeros for estimation); `target`
    (J, h, w); `target_weight` (J,); `meta`: dict of tensors center (2,), size (2,), rotation (), flip (),
    video_index, frame_index, left_index, right_index, person_index, track_id (-1 if none), score (1.0 for GT).
    `skipped` counts persons left out (no annotated joint, no usable box) by reason.
    """

    def __init__(
        self,
        videos: list[Video],
        image_root: str | Path,
        task: str = "propagation",
        input_size_hw: tuple[int, int] = (256, 192),
        interval: int = 7,
        train: bool = True,
        augment: AugmentConfig | None = None,
        sigma: float = 2.0,
        crop: str = "key",
        enlarge: float = 1.25,
        val_protocol: str = "sparse",
        stride: int = 4,
        aux_inputs: str = "labels",
    ):
        if task not in TASKS:
            raise ConfigError(f"task must be one of {TASKS}, got {task!r}")
        if crop not in CROPS:
            raise ConfigError(f"crop must be one of {CROPS}, got {crop!r}")
        if val_protocol not in VAL_PROTOCOLS:
            raise ConfigError(f"val_protocol must be one of {VAL_PROTOCOLS}, got {val_protocol!r}")
        if aux_inputs not in AUX_INPUTS:
            raise ConfigError(f"aux_inputs must be one of {AUX_INPUTS}, got {aux_inputs!r}")
        self.aux_inputs = aux_inputs
        h, w = (int(v) for v in input_size_hw)
        if h % stride or w % stride:
            raise ConfigError(f"input_size {[h, w]} must be multiples of {stride} (the heatmap stride)")
        if task == "propagation" and interval < 2:
            raise ConfigError(f"interval must be >= 2 for propagation, got {interval}")
        self.videos = list(videos)
        self.image_root = Path(image_root)
        self.task, self.interval, self.train, self.crop = task, int(interval), bool(train), crop
        self.augment = augment if train else None
        self.sigma, self.enlarge, self.val_protocol = float(sigma), float(enlarge), val_protocol
        self.input_size_hw = (h, w)
        self.heatmap_size_hw = (h // stride, w // stride)
        self.skipped: Counter = Counter()
        self._readers: dict[int, VideoFrames] = {}
        # per video: the frames whose labels the model may see as auxiliary inputs
        self._label_frames: list[list[int]] = []
        self._keys: list[tuple[int, int]] = []
        self.samples: list[Sample] = self._build_samples()

    # -------------------------------------------------------------------------------------------- index

    def _build_samples(self) -> list[Sample]:
        samples = []
        for vi, video in enumerate(self.videos):
            labeled = video.labeled_indices()
            triplets: dict[int, Triplet | None]
            if self.task == "estimation":
                all_triplets = estimation_triplets(video.num_frames)
                triplets = {k: all_triplets[k] for k in labeled}
                self._label_frames.append([])
            elif self.train and self.aux_inputs == "predictions":
                triplets = {k: None for k in labeled if video.num_frames > 1}
                self._label_frames.append(labeled)
            elif self.train:
                drawable = {t.key for t in training_propagation_triplets(labeled, self.interval, rng=0)}
                triplets = {k: None for k in labeled if k in drawable}
                lonely = sum(len(video.frames[k].persons) for k in labeled if k not in drawable)
                if lonely:
                    self.skipped["isolated_label"] += lonely
                self._label_frames.append(labeled)
            else:
                if self.val_protocol == "posewarper":
                    given = posewarper_labeled_frames(labeled, self.interval)
                else:
                    given = sparse_labeled_indices(labeled, self.interval)
                self._label_frames.append(given)
                if not given:
                    continue
                lab = set(labeled)
                triplets = {t.key: t for t in propagation_triplets(video.num_frames, given) if t.key in lab}
            for k, triplet in triplets.items():
                self._keys.append((vi, k))
                for pi, person in enumerate(video.frames[k].persons):
                    if not person.annotated.any():
                        self.skipped["no_annotated_joint"] += 1
                        continue
                    if person_box(person) is None:
                        self.skipped["no_box"] += 1
                        continue
                    samples.append(Sample(vi, k, pi, triplet))
        return samples

    def key_frames(self) -> list[tuple[int, int]]:
        """(video_index, frame_index) of every key frame this dataset predicts (with or without samples)."""
        return list(self._keys)

    def __len__(self) -> int:
        return len(self.samples)

    # -------------------------------------------------------------------------------------------- items

    def _reader(self, vi: int) -> VideoFrames:
        reader = self._readers.get(vi)
        if reader is None:
            reader = self._readers[vi] = VideoFrames(self.videos[vi], self.image_root, cache_size=4)
        return reader

    def _triplet(self, sample: Sample, rng: np.random.Generator) -> Triplet:
        if sample.triplet is not None:
            return sample.triplet
        if self.aux_inputs == "predictions":
            num_frames = self.videos[sample.video_index].num_frames
            triplet = training_triplet_any_aux(sample.frame_index, num_frames, self.interval, rng)
            assert triplet is not None  # single-frame videos get no sample
            return triplet
        candidates = training_propagation_triplets(self._label_frames[sample.video_index], self.interval, rng)
        for t in candidates:  # one draw per key frame; the others are discarded
            if t.key == sample.frame_index:
                return t
        raise RuntimeError("no training triplet for a sampled key frame")  # pragma: no cover - filtered at init

    def _aux_person(self, vi: int, frame_index: int, track_id: int | None, key: int) -> Person | None:
        """The labeled person of `track_id` in `frame_index`, else in the nearest label-given frame holding it
        (never the key frame itself; on a tie, the frame on the auxiliary's side of the key)."""
        if track_id is None:
            return None
        video = self.videos[vi]
        allowed = [f for f in self._label_frames[vi] if f != key]
        side = -1 if frame_index <= key else 1

        def order(f: int) -> tuple[int, int]:
            return abs(f - frame_index), 0 if (f - key) * side > 0 else 1

        for f in sorted(allowed, key=order):
            for p in video.frames[f].persons:
                if p.track_id == track_id and p.annotated.any():
                    return p
        return None

    def _crop_box(self, vi: int, triplet: Triplet, person: Person) -> tuple[float, float, float, float]:
        box = person_box(person)
        assert box is not None
        if self.crop == "key" or person.track_id is None:
            return box
        # "segment": the union of the track's boxes in the two auxiliary (labeled) frames, exactly the crop a
        # propagator can compute before seeing the key frame (stdpose.propagation.tracks.segment_crop_box); the key
        # frame's own box is used only when the track is labeled in neither auxiliary frame.
        video = self.videos[vi]
        boxes = []
        if self.train and self.aux_inputs == "predictions":
            # unlabeled auxiliaries: the track's boxes in the nearest labeled frames on the aux sides, the labels a
            # propagator would crop this segment from
            for f in {triplet.left, triplet.right}:
                p = self._aux_person(vi, f, person.track_id, triplet.key)
                b = person_box(p) if p is not None else None
                if b is not None:
                    boxes.append(b)
            return _union(boxes) if boxes else box
        for f in {triplet.left, triplet.right}:
            for p in video.frames[f].persons:
                if p.track_id == person.track_id and p is not person:
                    b = person_box(p)
                    if b is not None:
                        boxes.append(b)
        return _union(boxes) if boxes else box

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        vi, k = sample.video_index, sample.frame_index
        video = self.videos[vi]
        person = video.frames[k].persons[sample.person_index]
        triplet = self._triplet(sample, rng)
        h, w = self.input_size_hw
        hh, hw = self.heatmap_size_hw
        box = self._crop_box(vi, triplet, person)
        try:
            center, size = box_to_center_size(box, w / h, self.enlarge)
        except ValueError as exc:
            raise DataError(video.source or video.name, f"frame {k}, person {sample.person_index}: {exc}") from None
        params = sample_augmentation(self.augment, rng) if self.train else AugmentParams()
        if params.half_body and self.augment is not None:
            half = half_body_center_size(person.keypoints, w / h, rng, self.augment.half_body_min_joints,
                                         self.augment.half_body_enlarge)
            if half is not None:
                center, size = half
        size = size * params.scale
        to_input, to_heatmap = crop_transforms(center, size, params.rotation, params.flip, (w, h), (hw, hh))
        perm = flip_permutation(NUM_SLOTS) if params.flip else np.arange(NUM_SLOTS)

        reader = self._reader(vi)
        frames = np.stack([to_tensor_image(warp_image(reader[f], to_input, (w, h))) for f in triplet.frames])

        def render(p: Person | None) -> tuple[np.ndarray, np.ndarray]:
            if p is None:
                return np.zeros((NUM_SLOTS, hh, hw), np.float32), np.zeros(NUM_SLOTS, np.float32)
            kps = p.keypoints.copy()
            kps[:, :2] = apply_affine(kps[:, :2], to_heatmap)
            return render_heatmaps(kps[perm], (hh, hw), self.sigma)

        target, target_weight = render(person)
        if self.task == "propagation":
            aux = [render(self._aux_person(vi, f, person.track_id, k)) for f in (triplet.left, triplet.right)]
        else:
            aux = [render(None), render(None)]
        meta = {
            "center": torch.as_tensor(center, dtype=torch.float32),
            "size": torch.as_tensor(size, dtype=torch.float32),
            "rotation": torch.tensor(params.rotation, dtype=torch.float32),
            "flip": torch.tensor(bool(params.flip)),
            "video_index": torch.tensor(vi),
            "frame_index": torch.tensor(k),
            "left_index": torch.tensor(triplet.left),
            "right_index": torch.tensor(triplet.right),
            "person_index": torch.tensor(sample.person_index),
            "track_id": torch.tensor(-1 if person.track_id is None else int(person.track_id)),
            "score": torch.tensor(1.0 if person.score is None else float(person.score), dtype=torch.float32),
        }
        return {
            "frames": torch.from_numpy(frames),  # (3, 3, H, W)
            "aux_heatmaps": torch.from_numpy(np.stack([a[0] for a in aux])),  # (2, J, h, w)
            "aux_weights": torch.from_numpy(np.stack([a[1] for a in aux])),  # (2, J)
            "target": torch.from_numpy(target),  # (J, h, w)
            "target_weight": torch.from_numpy(target_weight),  # (J,)
            "meta": meta,
        }

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_readers"] = {}  # each worker opens its own readers
        return state


def collate_triplets(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack items into a batch; `meta` stays a dict of stacked tensors (B, ...)."""
    return default_collate(batch)


# ------------------------------------------------------------------------------------------------ DataModule

DATA_KEYS: dict[str, Any] = {
    "train": None,
    "val": None,
    "task": "propagation",
    "interval": 7,
    "input_size": [256, 192],
    "sigma": 2.0,
    "batch_size": 32,
    "val_batch_size": None,
    "num_workers": 2,
    "crop": "key",
    "augment": None,
    "enlarge": 1.25,
    "val_protocol": "sparse",
    "pin_memory": False,
    "aux_inputs": "labels",  # propagation training: the aux frames' labels, or the model's own predictions (paper)
}
SPLIT_KEYS = ("annotations", "image_root")


def _check_keys(cfg: dict, allowed, where: str) -> None:
    unknown = sorted(set(cfg) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown {where} keys {unknown}; allowed: {sorted(allowed)}")


class PoseDataModule(pl.LightningDataModule):
    """Train/val TripletDatasets from a config mapping (the `data:` section of an experiment YAML).

    Keys (defaults in DATA_KEYS): train / val: {annotations: file or folder, image_root: folder}, task, interval,
    input_size [H, W], sigma, batch_size, val_batch_size, num_workers, crop, augment (AugmentConfig fields),
    enlarge, val_protocol, pin_memory, aux_inputs. Unknown keys raise ConfigError listing the allowed ones.
    """

    def __init__(self, cfg: dict):
        super().__init__()
        if not isinstance(cfg, dict):
            raise ConfigError(f"data config must be a mapping, got {type(cfg).__name__}")
        _check_keys(cfg, DATA_KEYS, "data")
        self.cfg = {**DATA_KEYS, **{k: v for k, v in cfg.items() if v is not None}}
        for split in ("train", "val"):
            value = self.cfg[split]
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"data.{split} must be a mapping with keys {list(SPLIT_KEYS)}")
            _check_keys(value, SPLIT_KEYS, f"data.{split}")
            missing = [k for k in SPLIT_KEYS if not value.get(k)]
            if missing:
                raise ConfigError(f"data.{split} needs {missing}")
        size = self.cfg["input_size"]
        if not isinstance(size, list | tuple) or len(size) != 2:
            raise ConfigError(f"data.input_size must be [height, width], got {size!r}")
        self.augment = AugmentConfig.from_dict(self.cfg["augment"])
        self.train_dataset: TripletDataset | None = None
        self.val_dataset: TripletDataset | None = None

    @classmethod
    def from_yaml(cls, path: str | Path, section: str | None = "data") -> PoseDataModule:
        """Build from a YAML file: its `section` mapping when present, else the whole file."""
        from stdpose.yaml_io import read_yaml_mapping

        cfg = read_yaml_mapping(path)
        if section and isinstance(cfg, dict) and section in cfg:
            cfg = cfg[section]
        return cls(cfg)

    def _dataset(self, split: str, train: bool) -> TripletDataset:
        from stdpose.data.formats import read_annotations

        spec = self.cfg[split]
        c = self.cfg
        read_skips: Counter = Counter()
        dataset = TripletDataset(
            read_annotations(spec["annotations"], read_skips),
            spec["image_root"],
            task=c["task"],
            input_size_hw=tuple(c["input_size"]),
            interval=int(c["interval"]),
            train=train,
            augment=self.augment if train else None,
            sigma=float(c["sigma"]),
            crop=c["crop"],
            enlarge=float(c["enlarge"]),
            val_protocol=c["val_protocol"],
            aux_inputs=c["aux_inputs"],
        )
        dataset.skipped.update(read_skips)  # e.g. degenerate boxes replaced by the keypoints' box
        return dataset

    def setup(self, stage: str | None = None) -> None:
        if self.cfg["train"] is not None and self.train_dataset is None and stage in (None, "fit"):
            self.train_dataset = self._dataset("train", train=True)
        if self.cfg["val"] is not None and self.val_dataset is None and stage in (None, "fit", "validate", "test"):
            self.val_dataset = self._dataset("val", train=False)

    def _loader(self, dataset: TripletDataset | None, batch_size: int, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise ConfigError("this split is not configured (data.train / data.val) or setup() was not called")
        workers = int(self.cfg["num_workers"])
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                          collate_fn=collate_triplets, pin_memory=bool(self.cfg["pin_memory"]),
                          drop_last=False, persistent_workers=workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, int(self.cfg["batch_size"]), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        bs = self.cfg["val_batch_size"] or self.cfg["batch_size"]
        return self._loader(self.val_dataset, int(bs), shuffle=False)
