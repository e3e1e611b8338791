"""The learned propagator (reuse vs naive, backbone counts, output contract) and the sparse-label protocol."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from stdpose.data.formats import read_annotations
from stdpose.data.records import Frame, Person, Video
from stdpose.data.video import VideoFrames
from stdpose.errors import ConfigError, DataError
from stdpose.model import build_model
from stdpose.propagation.alignment import align_labels, frame_number
from stdpose.propagation.learned import STDPosePropagator
from stdpose.propagation.protocol import evaluate_propagators, kept_and_scored, sparsify
from stdpose.propagation.tracks import segment_plan

CONFIG = {
    "model": {"backbone": "nano", "tff_depth": 1, "stda_depth": 1},
    "data": {"task": "propagation", "crop": "segment", "input_size": [64, 48], "sigma": 1.0, "enlarge": 1.25},
}


@pytest.fixture(scope="module")
def val_video(tiny_synthetic):
    return read_annotations(tiny_synthetic / "annotations" / "val")[0]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model({**CONFIG["model"], "input_size": CONFIG["data"]["input_size"]}).eval()


def _config(crop: str = "segment", task: str = "propagation") -> dict:
    return {"model": dict(CONFIG["model"]), "data": {**CONFIG["data"], "crop": crop, "task": task}}


# ------------------------------------------------------------------------------------------------ protocol


def _labeled_video(n: int, labeled: list[int] | None = None) -> Video:
    labeled = list(range(n)) if labeled is None else labeled
    frames = []
    for i in range(n):
        persons = []
        if i in labeled:
            kps = np.zeros((17, 3))
            kps[[0, 1, 2, 5, 6], :] = [[10 + i, 20, 1]] * 5
            persons = [Person(kps, track_id=1, bbox=(0, 0, 50, 50), bbox_head=(5, 5, 10, 10))]
        frames.append(Frame(index=i, file_name=f"v/{i:06d}.jpg", persons=persons, is_labeled=i in labeled))
    return Video(name="v", frames=frames)


def test_posewarper_protocol_keeps_frame_3_then_every_t_and_the_far_last_frame():
    video = _labeled_video(30)
    sparse, gt, kept = sparsify(video, 7, "posewarper")
    assert kept == [3, 10, 17, 24, 29]  # 29 is 5 > 3 frames after 24
    assert sparse.labeled_indices() == kept
    assert all(not f.persons for f in sparse.frames if f.index not in kept)
    assert gt.labeled_indices() == [i for i in range(30) if i not in kept]
    assert all(f.persons for f in gt.frames if f.is_labeled)
    # the last frame only when more than 3 frames away: a 28-frame run ends at 27 = 24 + 3
    assert sparsify(_labeled_video(28), 7, "posewarper")[2] == [3, 10, 17, 24]
    # the input is left untouched
    assert video.labeled_indices() == list(range(30))


def test_every_protocol_and_labeled_frames_outside_the_run():
    kept, scored = kept_and_scored(range(20), 5, "every")
    assert kept == [0, 5, 10, 15] and scored == [i for i in range(20) if i % 5]
    # posewarper uses the longest labeled run only: 0..1 lie outside the run 5..19 and are neither kept nor scored
    kept, scored = kept_and_scored([0, 1, *range(5, 20)], 7, "posewarper")
    assert kept == [8, 15, 19] and 0 not in scored and 1 not in scored and len(scored) == 15 - 3


def test_interval_longer_than_the_video_keeps_one_or_two_labels():
    assert kept_and_scored(range(22), 50, "every")[0] == [0]
    assert kept_and_scored(range(22), 50, "posewarper")[0] == [3, 21]
    with pytest.raises(ConfigError):
        kept_and_scored(range(5), 3, "random")
    with pytest.raises(ConfigError):
        kept_and_scored(range(5), 0, "every")


class _Oracle:
    """Returns the full ground truth as its 'propagation' (with scores): must score 100 under the protocol."""

    name = "oracle"
    needs_frames = False

    def __init__(self, full: dict[str, Video]):
        self.full = full

    def propagate(self, video, frames, labeled):
        out = self.full[video.name]
        frames_out = []
        for f in out.frames:
            persons = [dataclasses.replace(p, scores=np.ones(17), propagated=f.index not in labeled) for p in f.persons]
            frames_out.append(dataclasses.replace(f, persons=persons))
        return dataclasses.replace(out, frames=frames_out)


class _Nothing:
    name = "nothing"
    needs_frames = False

    def propagate(self, video, frames, labeled):
        return video


def test_evaluate_propagators_scores_only_the_dropped_frames(tiny_synthetic):
    videos = read_annotations(tiny_synthetic / "annotations" / "val")
    from stdpose.propagation.methods import get_propagator

    outputs: dict = {}
    res = evaluate_propagators(videos, None, {"oracle": _Oracle({v.name: v for v in videos}), "nothing": _Nothing(),
                                              "linear": get_propagator("linear")}, 7, outputs=outputs)
    assert res["oracle"].mean == pytest.approx(100.0)
    assert res["nothing"].mean == pytest.approx(0.0)
    assert 0.0 < res["linear"].mean < 100.0
    assert len(outputs["linear"]) == len(videos)
    with pytest.raises(ConfigError):
        evaluate_propagators(videos, None, {}, 7)


# ------------------------------------------------------------------------------------------------ propagator


def _expected_counts(video: Video, labeled: list[int]) -> tuple[int, int]:
    """(backbone crops with reuse, propagated poses) from the segment plan."""
    plan = segment_plan(video, labeled)
    reuse = poses = 0
    for s in plan.segments:
        if len(s.frames):
            reuse += len({s.left, s.right}) + len(s.frames)
            poses += len(s.frames)
    return reuse, poses


def test_reuse_and_naive_give_the_same_poses_with_fewer_backbone_passes(val_video, tiny_synthetic, model):
    sparse, _, kept = sparsify(val_video, 7)
    frames = VideoFrames(val_video, tiny_synthetic)
    reuse = STDPosePropagator(model, _config(), progress=False, batch_size=5)
    naive = STDPosePropagator(model, _config(), progress=False, batch_size=4, reuse_backbone=False)
    a, b = reuse.propagate(sparse, frames, kept), naive.propagate(sparse, frames, kept)
    expected_reuse, poses = _expected_counts(sparse, kept)
    assert reuse.last_stats.key_frames == naive.last_stats.key_frames == poses > 0
    assert reuse.last_stats.backbone_images == expected_reuse
    assert naive.last_stats.backbone_images == 3 * poses
    assert naive.last_stats.backbone_images > 1.5 * reuse.last_stats.backbone_images
    assert reuse.last_stats.backbone_calls > 1  # batch_size 5 forces several batches
    n = 0
    for fa, fb in zip(a.frames, b.frames):
        assert [p.track_id for p in fa.persons] == [p.track_id for p in fb.persons]
        for pa, pb in zip(fa.persons, fb.persons):
            np.testing.assert_allclose(pa.keypoints, pb.keypoints, atol=1e-3)
            if pa.propagated:
                np.testing.assert_allclose(pa.scores, pb.scores, atol=1e-4)
            n += 1
    assert n > poses  # propagated persons plus the copied labels


def test_output_contract(val_video, tiny_synthetic, model):
    sparse, _, kept = sparsify(val_video, 7)
    prop = STDPosePropagator(model, _config(), progress=False)
    out = prop.propagate(sparse, VideoFrames(val_video, tiny_synthetic), kept)
    assert out.num_frames == val_video.num_frames
    assert [f.file_name for f in out.frames] == [f.file_name for f in val_video.frames]
    label_ids = {p.track_id for i in kept for p in sparse.frames[i].persons}
    plan = segment_plan(sparse, kept)
    covered = {(s.track_id, i) for s in plan.segments for i in s.frames}
    for frame in out.frames:
        if frame.index in kept:
            assert frame.is_labeled
            assert all(not p.propagated for p in frame.persons)
            np.testing.assert_array_equal(frame.persons[0].keypoints, sparse.frames[frame.index].persons[0].keypoints)
            continue
        assert not frame.is_labeled
        assert {(p.track_id, frame.index) for p in frame.persons} == {c for c in covered if c[1] == frame.index}
        for p in frame.persons:
            assert p.propagated and p.track_id in label_ids
            assert p.scores.shape == (17,) and np.all((p.scores >= 0) & (p.scores <= 1))
            assert np.all(p.scores[p.annotated] > 0)
            assert not p.annotated[[3, 4]].any()  # ears: annotated in no label, so never predicted
            assert p.extra["method"] == "stdpose"
    assert out.extra["propagation"]["stats"]["backbone_images"] == prop.last_stats.backbone_images


def test_key_crop_models_run_per_key_frame(val_video, tiny_synthetic, model):
    sparse, _, kept = sparsify(val_video, 7)
    prop = STDPosePropagator(model, _config(crop="key"), progress=False)
    out = prop.propagate(sparse, VideoFrames(val_video, tiny_synthetic), kept)
    assert prop.last_stats.backbone_images == 3 * prop.last_stats.key_frames
    assert sum(len(f.persons) for f in out.frames if not f.is_labeled) == prop.last_stats.key_frames


def test_config_checks(model):
    with pytest.raises(ConfigError, match="trained with data.crop"):
        STDPosePropagator(model, _config(crop="key"), crop="segment")
    with pytest.raises(ConfigError, match="estimation"):
        STDPosePropagator(model, _config(task="estimation"))
    with pytest.raises(ConfigError):
        STDPosePropagator(model, _config(), batch_size=0)


def test_frames_shorter_than_the_labels_is_a_data_error(val_video, tiny_synthetic, model):
    sparse, _, kept = sparsify(val_video, 7)
    frames = VideoFrames(val_video, tiny_synthetic)
    with pytest.raises(DataError, match="only"):
        STDPosePropagator(model, _config(), progress=False).propagate(sparse, [frames[i] for i in range(5)], kept)


def test_missing_and_corrupt_checkpoints(tmp_path):
    with pytest.raises(DataError, match="not found"):
        STDPosePropagator.from_checkpoint(tmp_path / "none.ckpt")
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="cannot read"):
        STDPosePropagator.from_checkpoint(bad)


# ------------------------------------------------------------------------------------------------ alignment


def test_frame_numbers_and_alignment():
    assert frame_number("images/val/000342_mpii_test/000017.jpg") == 17
    assert frame_number("a/frame_12.png") == 12 and frame_number("a/b.jpg") is None
    # a file listing only its labeled frames 3 and 10 is expanded to every frame of a 15-frame video
    video = _labeled_video(2)
    video.frames = [dataclasses.replace(f, index=k, file_name=name)
                    for k, (f, name) in enumerate(zip(video.frames, ["c/000003.jpg", "c/000010.jpg"]))]
    al = align_labels(video, 15)
    assert al.video.num_frames == 15 and al.added == 13 and not al.missing
    assert al.video.labeled_indices() == [3, 10] and al.video_index == list(range(15))
    assert al.video.frames[4].file_name == "c/000004.jpg"
    # labels longer than the video: the frames beyond it are missing
    al = align_labels(_labeled_video(12, labeled=[0, 6, 11]), 8)
    assert al.video.num_frames == 8 and len(al.missing) == 4 and any("lacks" in n for n in al.notes)
    with pytest.raises(DataError, match="none of its"):
        align_labels(dataclasses.replace(video, frames=video.frames[1:]), 5)
