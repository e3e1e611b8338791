"""LightningModule pieces without a Trainer: the optimizer and its schedule, parameter groups, validation decoding
and the frames that count in the validation mAP."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stdpose.data.records import Frame, Person, Video
from stdpose.data.transforms import apply_affine, crop_affine, render_heatmaps
from stdpose.engine import validation
from stdpose.engine.config import validate_config
from stdpose.engine.lit import StdposeModule, parameter_groups
from stdpose.eval.posetrack_map import evaluate_posetrack


def _cfg(**optim) -> dict:
    return validate_config(
        {
            "model": {"backbone": "nano", "tff_depth": 1, "stda_depth": 1},
            "data": {"input_size": [64, 48]},
            "optim": optim,
        }
    )


def _lrs(module: StdposeModule, epochs: int, steps_per_epoch: int) -> list[float]:
    """Drive the schedulers as Lightning does: step-interval ones after each step, epoch ones after each epoch."""
    optimizers, schedulers = module.configure_optimizers()
    opt = optimizers[0]
    seen = []
    for _ in range(epochs):
        for _ in range(steps_per_epoch):
            seen.append(opt.param_groups[0]["lr"])
            opt.step()
            for s in schedulers:
                if s["interval"] == "step":
                    s["scheduler"].step()
        for s in schedulers:
            if s["interval"] == "epoch":
                s["scheduler"].step()
    return seen


def test_paper_step_schedule():
    module = StdposeModule(_cfg(lr=2e-4, milestones=[12, 16], gamma=0.1))
    lrs = _lrs(module, epochs=20, steps_per_epoch=2)
    per_epoch = lrs[::2]
    assert per_epoch[0] == pytest.approx(2e-4) and per_epoch[11] == pytest.approx(2e-4)
    assert per_epoch[12] == pytest.approx(2e-5) and per_epoch[15] == pytest.approx(2e-5)
    assert per_epoch[16] == pytest.approx(2e-6) and per_epoch[19] == pytest.approx(2e-6)


def test_linear_warmup_then_steps():
    module = StdposeModule(_cfg(lr=1e-3, milestones=[2], gamma=0.5, warmup_steps=4, warmup_factor=0.1))
    lrs = _lrs(module, epochs=3, steps_per_epoch=3)
    assert lrs[0] == pytest.approx(1e-4)
    assert lrs[0] < lrs[1] < lrs[2] < lrs[3] < lrs[4]
    assert lrs[4] == pytest.approx(1e-3) and lrs[5] == pytest.approx(1e-3)
    assert lrs[6] == pytest.approx(5e-4)


def test_adamw_settings_and_parameter_groups():
    module = StdposeModule(_cfg(lr=3e-4, weight_decay=0.05, betas=[0.8, 0.99]))
    optimizers, _ = module.configure_optimizers()
    opt = optimizers[0]
    assert isinstance(opt, torch.optim.AdamW)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == pytest.approx(0.05) and no_decay["weight_decay"] == 0.0
    assert decay["betas"] == (0.8, 0.99)
    assert all(p.ndim > 1 for p in decay["params"])
    assert all(p.ndim <= 1 or p.shape[0] == 1 for p in no_decay["params"])
    n_params = sum(1 for p in module.model.parameters() if p.requires_grad)
    n_critic = sum(1 for p in module.criterion.parameters() if p.requires_grad)  # MI critics (jsd / infonce)
    assert len(decay["params"]) + len(no_decay["params"]) == n_params + n_critic
    assert len(parameter_groups(module.model, 0.1)) == 2


def test_training_step_returns_a_loss_with_gradients():
    module = StdposeModule(_cfg())
    b, j = 2, 17
    batch = {
        "frames": torch.randn(b, 3, 3, 64, 48),
        "aux_heatmaps": torch.rand(b, 2, j, 16, 12),
        "target": torch.rand(b, j, 16, 12),
        "target_weight": torch.ones(b, j),
    }
    module.log = lambda *a, **k: None  # no Trainer attached
    module.optimizers = lambda: type("O", (), {"param_groups": [{"lr": 1.0}]})()
    loss = module.training_step(batch, 0)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert module.model.backbone.patch_embed.proj.weight.grad is not None


def _person(x: float, y: float, track: int = 0) -> Person:
    kps = np.zeros((17, 3))
    kps[:, 0] = x + np.arange(17)
    kps[:, 1] = y + 2 * np.arange(17)
    kps[:, 2] = 1
    kps[3:5] = 0  # ears never annotated
    return Person(keypoints=kps, track_id=track, bbox=(x - 5, y - 5, 40, 50), bbox_head=(x, y, 10, 10))


def _video(name: str, n: int = 4) -> Video:
    frames = [Frame(index=i, file_name=f"images/{name}/{i:06d}.jpg", is_labeled=True,
                    persons=[_person(20 + i, 30), _person(100, 40 + i, track=1)]) for i in range(n)]
    return Video(name=name, frames=frames)


def _records(videos: list[Video], frames: list[tuple[int, int]], shift: float = 0.0) -> dict[str, np.ndarray]:
    rows = []
    for vi, fi in frames:
        for pi, p in enumerate(videos[vi].frames[fi].persons):
            rows.append({
                "xy": p.keypoints[None, :, :2] + shift, "scores": np.full((1, 17), 0.9),
                "video_index": np.array([vi]), "frame_index": np.array([fi]), "person_index": np.array([pi]),
                "track_id": np.array([p.track_id]),
            })
    return validation.concat(rows)


def test_only_key_frames_are_evaluated_and_duplicates_count_once():
    videos = [_video("a"), _video("b")]
    keys = {(0, 1), (0, 2), (1, 3)}
    recs = _records(videos, sorted(keys))
    dup = validation.concat([recs, recs])  # DDP padding repeats samples
    gt, pred = validation.build_videos(videos, dup, keys)
    result = evaluate_posetrack(gt, pred, strict=False)
    assert result.groups["Mean"] == pytest.approx(100.0)
    assert result.num_images == 3  # frames 0 and 3 of video a etc. (aux frames) do not count as misses
    assert sum(len(f.persons) for v in pred for f in v.frames) == 6
    assert all(p.scores is not None and p.track_id is not None for v in pred for f in v.frames for p in f.persons)


def test_key_frame_without_predictions_counts_as_missed():
    videos = [_video("a")]
    keys = {(0, 1), (0, 2)}
    recs = _records(videos, [(0, 1)])
    gt, pred = validation.build_videos(videos, recs, keys)
    result = evaluate_posetrack(gt, pred, strict=False)
    assert result.num_images == 2
    assert result.groups["Mean"] == pytest.approx(50.0, abs=1.0)
    far = _records(videos, sorted(keys), shift=50.0)
    gt, pred = validation.build_videos(videos, far, keys)
    assert evaluate_posetrack(gt, pred, strict=False).groups["Mean"] == pytest.approx(0.0)


def test_decode_batch_maps_heatmap_peaks_back_to_image_pixels():
    # two persons' crops; render Gaussians at the crop positions of known image points and decode them back
    hm_hw = (16, 12)
    centers = np.array([[100.0, 80.0], [40.0, 60.0]])
    sizes = np.array([[60.0, 80.0], [30.0, 40.0]])
    points = np.stack([c + (np.random.default_rng(0).random((17, 2)) - 0.5) * s * 0.6 for c, s in zip(centers, sizes)])
    heatmaps = []
    for c, s, pts in zip(centers, sizes, points):
        to_hm = crop_affine(c, s, 0.0, (hm_hw[1], hm_hw[0]))
        kps = np.concatenate([apply_affine(pts, to_hm), np.ones((17, 1))], axis=1)
        heatmaps.append(render_heatmaps(kps, hm_hw, 1.5)[0])
    meta = {
        "center": torch.tensor(centers, dtype=torch.float32),
        "size": torch.tensor(sizes, dtype=torch.float32),
        "rotation": torch.zeros(2),
        **{k: torch.tensor([3, 4]) for k in ("video_index", "frame_index", "person_index", "track_id")},
    }
    out = validation.decode_batch(torch.tensor(np.stack(heatmaps)), meta)
    assert out["xy"].shape == (2, 17, 2) and out["scores"].shape == (2, 17)
    err = np.abs(out["xy"] - points) / sizes[:, None, :]
    assert err.max() < 0.02  # within 2% of the crop size (sub-pixel decoding)
    assert out["video_index"].tolist() == [3, 4]
