"""Issue 14: the cost option of STDA's head, bounded frame memory of propagation and estimation, batching across
gaps, and the CPU-side logic of the cost and GPU benchmark scripts (no timing is asserted anywhere)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stdpose.data.records import Frame, Person, Video
from stdpose.data.video import BoundedFrameCache
from stdpose.engine.predict import Estimator, boxes_from_labels
from stdpose.errors import ConfigError
from stdpose.model import ModelConfig, build_model
from stdpose.propagation.learned import STDPosePropagator

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
INPUT = [64, 48]


def _bench(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _model(**fields):
    torch.manual_seed(0)
    return build_model({"backbone": "nano", "tff_depth": 1, "stda_depth": 1, "input_size": INPUT, **fields}).eval()


# ------------------------------------------------------------------------------------------------ cost option


def test_stda_head_option_is_validated_and_round_trips():
    with pytest.raises(ConfigError, match="stda_head"):
        ModelConfig(stda_head="bilinear")
    cfg = ModelConfig(backbone="nano", stda_head="shuffle")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert ModelConfig().stda_head == "deconv"  # the paper's head stays the default


def test_shuffle_head_gives_full_resolution_heatmaps_and_learns():
    model = _model(stda_head="shuffle").train()
    frames = torch.randn(2, 3, 3, *INPUT)
    aux = torch.rand(2, 2, 17, 16, 12)
    out = model(frames, aux)["heatmaps"]
    assert out.shape == (2, 17, 16, 12)
    out.square().mean().backward()
    grad = model.stda.head.expand.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_shuffle_head_cuts_the_stda_head_macs_at_paper_size():
    cost = _bench("cost")
    deconv = cost.count_macs(ModelConfig(backbone="base", input_size=(256, 192)))
    shuffle = cost.count_macs(ModelConfig(backbone="base", input_size=(256, 192), stda_head="shuffle"))
    assert shuffle["stda head"] * 20 < deconv["stda head"]
    assert shuffle["backbone"] == deconv["backbone"] and shuffle["tff"] == deconv["tff"]
    assert shuffle["aggregate"] < deconv["aggregate"] - 0.9 * deconv["stda head"]


def test_cost_ratios_follow_the_schedule_formulas():
    cost = _bench("cost")
    c = cost.ModelCost("x", "base", (256, 192))
    c.modules = {"backbone": cost.Cost(ms=80.0), "head": cost.Cost(ms=20.0)}
    c.aggregate = cost.Cost(ms=25.0)
    r = c.ratios("ms", interval=7)
    assert r["reuse_key"] == pytest.approx(1.25)
    assert r["reuse_schedule"] == pytest.approx((8 + 6 * 0.25) / 6)  # T + 1 crops encoded for T - 1 key frames
    assert r["naive"] == pytest.approx(3.25)


def test_cost_script_runs_default_and_option_in_one_run(tmp_path):
    out = tmp_path / "cost.md"
    rc = _bench("cost").main(["--sizes", "nano", "--time-sizes", "nano", "--input-sizes", "64x48", "--repeats", "1",
                              "--batch", "1", "--device", "cpu", "--set", "stda_head=shuffle", "--out", str(out)])
    text = out.read_text()
    assert rc == 0
    assert "nano 64x48 default" in text and "nano 64x48 stda_head=shuffle" in text
    assert "torch thread" in text and "UTC" in text  # machine, threads and date
    assert "reuse at T=7, labeled frames counted" in text


# ------------------------------------------------------------------------------------------------ bounded memory


def test_bounded_frame_cache_keeps_at_most_capacity_frames():
    reads = []

    class Source:
        def __len__(self):
            return 100

        def __getitem__(self, i):
            reads.append(i)
            return np.full((2, 2, 3), i, np.uint8)

    cache = BoundedFrameCache(Source(), 3)
    for i in [0, 1, 2, 0, 3, 4, 0]:
        assert cache[i][0, 0, 0] == i
    assert cache.peak == 3 and len(cache) == 3
    assert reads == [0, 1, 2, 3, 4]  # 0 was used again before 3 and 4 arrived, so it stayed
    cache.drop_before(4)
    assert len(cache) == 1
    with pytest.raises(ValueError):
        BoundedFrameCache(Source(), 0)


class _CountingFrames:
    """An in-memory video that counts reads (a stand-in for a decoder)."""

    def __init__(self, n: int):
        rng = np.random.default_rng(0)
        self.base = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
        self.n = n
        self.reads = 0

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        self.reads += 1
        return np.roll(self.base, int(i), axis=1)


def _walkers(n: int, every: int = 7, tracks: int = 2) -> tuple[Video, list[int]]:
    """n frames, `tracks` persons walking right, labeled every `every` frames (and the last frame)."""
    labeled = sorted(set(range(0, n, every)) | {n - 1})
    frames = []
    for i in range(n):
        persons = []
        for t in range(tracks):
            kps = np.zeros((17, 3))
            kps[:, 0] = 20 + 40 * t + 0.3 * i + np.linspace(0, 20, 17)
            kps[:, 1] = np.linspace(20, 100, 17)
            kps[:, 2] = 1
            kps[[3, 4]] = 0
            persons.append(Person(kps, track_id=t + 1, bbox=(15 + 40 * t + 0.3 * i, 15, 30, 90)))
        frames.append(Frame(index=i, file_name=f"walk/{i:06d}.jpg", persons=persons if i in labeled else [],
                            is_labeled=i in labeled, width=160, height=120))
    return Video(name="walk", frames=frames), labeled


PROP_CONFIG = {"model": {"backbone": "nano"},
               "data": {"task": "propagation", "crop": "segment", "input_size": INPUT, "sigma": 1.0}}


@pytest.mark.parametrize("reuse", [True, False])
def test_propagation_frame_memory_does_not_grow_with_the_video(reuse):
    model = _model()
    peaks = {}
    for n in (30, 150):
        video, labeled = _walkers(n)
        frames = _CountingFrames(n)
        prop = STDPosePropagator(model, PROP_CONFIG, progress=False, batch_size=8, reuse_backbone=reuse)
        out = prop.propagate(video, frames, labeled)
        stats = prop.last_stats
        assert stats.key_frames == 2 * (n - len(labeled))
        assert sum(len(f.persons) for f in out.frames) == 2 * n
        assert stats.max_cached_frames <= 8 + 8  # the cache bound: batch_size + 8 frames
        assert stats.frames_decoded == frames.reads
        if reuse:
            assert frames.reads <= 1.5 * n  # video order: about one decode per frame
        peaks[n] = stats.max_cached_frames
    assert peaks[150] <= peaks[30] + 2  # 5x the frames, the same bound


def test_batching_across_gaps_gives_the_same_poses_in_fewer_calls():
    model = _model()
    video, labeled = _walkers(40, every=4, tracks=1)  # short gaps, one person: tiny batches one gap at a time
    frames = _CountingFrames(40)
    grouped = STDPosePropagator(model, PROP_CONFIG, progress=False, batch_size=16)
    per_gap = STDPosePropagator(model, PROP_CONFIG, progress=False, batch_size=16, batch_across_gaps=False)
    a, b = grouped.propagate(video, frames, labeled), per_gap.propagate(video, frames, labeled)
    assert grouped.last_stats.backbone_images == per_gap.last_stats.backbone_images
    assert grouped.last_stats.backbone_calls < per_gap.last_stats.backbone_calls / 2
    for fa, fb in zip(a.frames, b.frames):
        for pa, pb in zip(fa.persons, fb.persons):
            np.testing.assert_allclose(pa.keypoints, pb.keypoints, atol=1e-3)


def test_estimation_frame_memory_is_bounded_by_the_batch():
    model = _model()
    config = {"model": {"backbone": "nano"}, "data": {"task": "estimation", "input_size": INPUT}}
    video, _ = _walkers(60, every=1)
    est = Estimator(model, config, batch_size=4, progress=False)
    out = est.predict_video(video, _CountingFrames(60), boxes_from_labels(video))
    assert est.last_stats.persons == 120 == sum(len(f.persons) for f in out.frames)
    assert est.last_stats.max_cached_frames <= 4 + 2


# ------------------------------------------------------------------------------------------------ GPU script


def test_gpu_check_cpu_self_test_writes_every_section(tmp_path):
    out = tmp_path / "gpu.md"
    rc = _bench("gpu_check").main(["--device", "cpu", "--tiny", "--steps", "1", "--batches", "2", "--out", str(out)])
    text = out.read_text()
    assert rc == 0
    for needed in ("| 2 |", "reuse (each crop encoded once)", "naive (three encodings per key frame)",
                   "largest absolute heatmap difference", "argmax keypoint difference", "UTC", "torch thread"):
        assert needed in text
    assert not re.search(r"\bnan\b", text)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA refusal")
def test_gpu_check_refuses_clearly_without_cuda(tmp_path, capsys):
    out = tmp_path / "gpu.md"
    assert _bench("gpu_check").main(["--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "CUDA is not available" in err and len(err.splitlines()) == 1
    assert not out.exists()
