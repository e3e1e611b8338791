"""The propagation training protocol (paper Sec. 4.2, issue 10): `data.aux_inputs: predictions` trains with
unlabeled auxiliary frames (the model's own predictions there) and is validated and used with the aux labels
given; `labels` feeds the labels in training too. Both train, validate and propagate through `stdpose propagate`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import REPO  # noqa: I001
from conftest_engine import tiny_overrides

from stdpose.data.dataset import TripletDataset
from stdpose.data.formats import read_annotations
from stdpose.data.sampling import training_triplet_any_aux
from stdpose.engine.config import load_config
from stdpose.engine.lit import StdposeModule
from stdpose.errors import ConfigError

DEMO = REPO / "configs" / "synthetic_demo.yaml"



def test_any_aux_triplets_have_the_inference_gaps():
    rng = np.random.default_rng(0)
    for _ in range(50):
        t = training_triplet_any_aux(20, 40, 7, rng)
        assert t.left < 20 < t.right and t.right - t.left == 7  # gaps (o, T - o)
    assert training_triplet_any_aux(0, 3, 7, rng).left in (1, 2)  # short video: one frame serves as both
    assert training_triplet_any_aux(0, 1, 7, rng) is None


def test_predictions_mode_uses_every_labeled_frame_even_without_labeled_neighbours(tiny_synthetic):
    videos = read_annotations(tiny_synthetic / "annotations" / "train")
    for video in videos:  # labels every 7th frame only: no labeled aux frame at the inference gaps
        for f in video.frames:
            if f.index % 7:
                f.persons, f.is_labeled = [], False
    labels = TripletDataset(videos, tiny_synthetic, input_size_hw=(64, 48), interval=7, aux_inputs="labels")
    preds = TripletDataset(videos, tiny_synthetic, input_size_hw=(64, 48), interval=7, aux_inputs="predictions")
    assert len(preds) > len(labels)  # labels mode can only use (rare) key frames with labeled neighbours
    torch.manual_seed(0)
    index = next(i for i, smp in enumerate(preds.samples) if 7 <= smp.frame_index
                 < videos[smp.video_index].num_frames - 7)
    item = preds[index]
    left, key, right = (int(item["meta"][k]) for k in ("left_index", "frame_index", "right_index"))
    assert left < key < right and right - left == 7
    with pytest.raises(ConfigError, match="aux_inputs must be one of"):
        TripletDataset(videos, tiny_synthetic, aux_inputs="gt")


def test_training_forward_gets_labels_only_in_labels_mode_and_validation_always(tiny_synthetic):
    seen = []
    for mode in ("labels", "predictions"):
        cfg = load_config(DEMO, tiny_overrides(tiny_synthetic, {"data.aux_inputs": mode}))
        module = StdposeModule(cfg)
        module.model.forward = lambda frames, aux=None: seen.append(aux is not None) or {}
        batch = {"frames": torch.zeros(1), "aux_heatmaps": torch.zeros(1)}
        module.train()
        module(batch)
        module.eval()
        module(batch)
    assert seen == [True, True, False, True]  # (labels: train, val), (predictions: train, val)


@pytest.mark.parametrize("mode", ["labels", "predictions"])
def test_both_aux_modes_train_one_step_validate_and_propagate(mode, tiny_synthetic, tmp_path, capsys):
    from stdpose.cli import main
    from stdpose.engine.trainer import train

    cfg = load_config(DEMO, tiny_overrides(tiny_synthetic, {
        "data.aux_inputs": mode, "trainer.max_epochs": 1, "trainer.limit_train_batches": 1,
        "trainer.limit_val_batches": 1}))
    result = train(cfg, output_dir=tmp_path / "run")
    assert result.global_step == 1
    for term in ("heatmap", "mi", "mi_feat_label", "mi_feat_key", "mi_hm_label", "mi_hm_key"):
        assert np.isfinite(result.metrics[f"val/{term}"])
    assert np.isfinite(result.metrics["train/grad_ratio_backbone"])
    assert np.isfinite(result.metrics["train/grad_ratio_temporal"])
    labels = sorted((tiny_synthetic / "annotations" / "val").glob("*.json"))[0]
    video = read_annotations(labels)[0]
    out = tmp_path / f"propagated_{mode}.json"
    rc = main(["propagate", "--no-progress", "--video", str(tiny_synthetic / "images" / "val" / video.name),
               "--labels", str(labels), "--checkpoint", str(result.last_checkpoint), "--interval", "7",
               "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    propagated = read_annotations(out)[0]
    assert any(p.propagated for f in propagated.frames for p in f.persons)
