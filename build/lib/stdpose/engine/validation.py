"""Validation during training: heatmaps -> keypoints in image coordinates -> predicted Videos -> PoseTrack mAP.

Which frames count. The validation dataset decides the key frames (propagation: the frames between the labels
kept every `interval`; estimation: every labeled frame). Only those frames are evaluated: the ground truth of every
other frame (the labeled aux frames, whose labels were inputs) is marked unlabeled for the evaluation, so it never
counts as missed. A key frame's ground-truth persons that got no prediction do count as misses. When
`trainer.limit_val_batches` leaves part of the validation set out, only the key frames that were predicted are
evaluated (a partial, quick number).

Under DDP every rank decodes its share; the shares are gathered on all ranks (duplicates that the distributed
sampler adds to even out the ranks are dropped), so every rank computes the same table.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stdpose.atomic import atomic_write_json
from stdpose.data.records import Frame, Person, Video
from stdpose.skeleton import NUM_SLOTS

_META_IDS = ("video_index", "frame_index", "person_index", "track_id")


def decode_batch(heatmaps: torch.Tensor, meta: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Key-frame heatmaps (B, J, h, w) -> numpy record arrays: image xy (B, J, 2), scores (B, J) and the ids."""
    from stdpose.data.transforms import decode_heatmaps, heatmap_to_image

    heatmaps = heatmaps.detach().float()
    coords, maxvals = decode_heatmaps(heatmaps)  # (B, J, 2) heatmap pixels, (B, J)
    xy = heatmap_to_image(coords, meta["center"], meta["size"], tuple(heatmaps.shape[-2:]),
                          meta.get("rotation"))  # (B, J, 2) image pixels
    out = {"xy": _numpy(xy).astype(np.float64), "scores": _numpy(maxvals).astype(np.float64)}
    for key in _META_IDS:
        out[key] = _numpy(meta[key]).astype(np.int64).reshape(-1)
    return out


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)


def concat(records: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One dict of arrays from per-batch dicts (empty arrays when there were no batches)."""
    if not records:
        return {
            "xy": np.zeros((0, NUM_SLOTS, 2)),
            "scores": np.zeros((0, NUM_SLOTS)),
            **{k: np.zeros(0, dtype=np.int64) for k in _META_IDS},
        }
    return {k: np.concatenate([r[k] for r in records]) for k in records[0]}


def gather(records: list[dict[str, np.ndarray]], world_size: int) -> dict[str, np.ndarray]:
    """This rank's records, or every rank's records when running distributed (same result on all ranks)."""
    local = concat(records)
    if world_size <= 1 or not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return local
    parts: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, local)
    return concat([p for p in parts if p is not None])


def val_dataset_of(trainer: Any) -> Any:
    """The validation dataset (it holds the ground-truth Videos and the key frames)."""
    dm = trainer.datamodule
    for holder in (dm, getattr(dm, "inner", None)):
        ds = getattr(holder, "val_dataset", None)
        if ds is not None:
            return ds
    loaders = trainer.val_dataloaders
    loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
    return loader.dataset


def is_partial(trainer: Any) -> bool:
    """True when `limit_val_batches` made this validation run over only part of the validation loader."""
    loaders = trainer.val_dataloaders
    loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
    ran = trainer.num_val_batches
    ran = ran[0] if isinstance(ran, (list, tuple)) else ran
    try:
        return ran < len(loader)
    except TypeError:
        return False


def key_frames(dataset: Any) -> set[tuple[int, int]]:
    """(video_index, frame_index) of every key frame the validation dataset predicts."""
    return {(int(v), int(f)) for v, f in dataset.key_frames()}


def build_videos(
    gt_videos: list[Video], records: dict[str, np.ndarray], evaluated: set[tuple[int, int]]
) -> tuple[list[Video], list[Video]]:
    """(ground truth restricted to `evaluated` frames, predicted Videos) ready for evaluate_posetrack.

    Records with the same (video, frame, person) (DDP padding) are kept once. Every predicted person has all 17
    slots (v = 1) with its heatmap maxima as keypoint scores, the GT track id, and score = mean keypoint score.
    """
    seen: set[tuple[int, int, int]] = set()
    by_frame: dict[tuple[int, int], list[Person]] = {}
    for i in range(len(records["video_index"])):
        v, f, p = int(records["video_index"][i]), int(records["frame_index"][i]), int(records["person_index"][i])
        if (v, f, p) in seen or (v, f) not in evaluated:
            continue
        seen.add((v, f, p))
        kps = np.ones((NUM_SLOTS, 3))
        kps[:, :2] = records["xy"][i]
        scores = records["scores"][i]
        track = int(records["track_id"][i])
        by_frame.setdefault((v, f), []).append(
            Person(keypoints=kps, scores=scores.copy(), score=float(scores.mean()),
                   track_id=track if track >= 0 else None, propagated=True)
        )
    gt_out, pred_out = [], []
    for vi, video in enumerate(gt_videos):
        # frames that are not evaluated become unlabeled and empty (not "labeled frames without predictions")
        frames = [
            fr if (vi, fr.index) in evaluated else dataclasses.replace(fr, is_labeled=False, persons=[])
            for fr in video.frames
        ]
        gt_out.append(dataclasses.replace(video, frames=frames))
        pred_frames = [
            Frame(index=fr.index, file_name=fr.file_name, persons=by_frame.get((vi, fr.index), []), is_labeled=True,
                  image_id=fr.image_id, frame_id=fr.frame_id, width=fr.width, height=fr.height)
            for fr in video.frames
            if (vi, fr.index) in evaluated
        ]
        pred_out.append(Video(name=video.name, frames=pred_frames, vid_id=video.vid_id, source=video.source))
    return gt_out, pred_out


def evaluate(dataset: Any, records: dict[str, np.ndarray], partial: bool = False):
    """PoseTrack mAP of the gathered validation records (see the module docstring for which frames count)."""
    from stdpose.eval.posetrack_map import evaluate_posetrack

    evaluated = key_frames(dataset)
    if partial:
        predicted = set(zip(records["video_index"].tolist(), records["frame_index"].tolist()))
        evaluated &= predicted
    gt, pred = build_videos(dataset.videos, records, evaluated)
    return evaluate_posetrack(gt, pred, strict=False)


def report(result: Any, epoch: int, step: int, output_dir: str | Path) -> None:
    """Log the mAP table and keep it as JSON beside the checkpoints (val/epochNNN.json, atomically)."""
    from pytorch_lightning.utilities import rank_zero_info

    rank_zero_info(result.format_table(title=f"validation mAP, epoch {epoch}, step {step}", label="STDPose"))
    out = Path(output_dir) / "val" / f"epoch{epoch:03d}-step{step}.json"
    atomic_write_json(out, {"epoch": epoch, "step": step, **result.to_dict()}, indent=1)
