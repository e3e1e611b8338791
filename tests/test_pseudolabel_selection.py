"""Pseudo-label pipeline (issue 10): the propagation model trains the way it is used (gaps o, T-o) and its
checkpoint is picked on held-out TRAINING videos, never on the validation split Table 3 reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from stdpose.data.formats import read_annotations
from stdpose.engine.pseudolabel import (
    PseudoLabelPipeline,
    load_pseudolabel_config,
    propagation_interval,
    selection_names,
)
from stdpose.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "pseudolabel_synthetic.yaml"



def test_propagation_interval_follows_the_aux_inputs():
    assert propagation_interval(4, "predictions") == 4  # unlabeled aux frames: the gaps (o, 4 - o) of inference
    assert propagation_interval(4, "labels") == 8  # labeled neighbours are T apart on each side
    labels = load_pseudolabel_config(CONFIG, ["pseudolabel.interval=3", "propagation.data.aux_inputs=labels"])
    assert labels["propagation"]["data"]["interval"] == 6
    preds = load_pseudolabel_config(CONFIG, ["pseudolabel.interval=3"])
    assert preds["propagation"]["data"]["aux_inputs"] == "predictions"
    assert preds["propagation"]["data"]["interval"] == 3


def test_selection_names_are_spread_and_never_everything():
    names = [f"v{i:02d}" for i in range(20)]
    picked = selection_names(names, 0.1)
    assert picked == ["v00", "v10"]
    assert selection_names(names[:1], 0.5) == [] and selection_names(names, 0.0) == []
    assert len(selection_names(names[:2], 0.9)) == 1


def test_selection_config_errors():
    with pytest.raises(ConfigError, match="selection_videos must be a fraction"):
        load_pseudolabel_config(CONFIG, ["pseudolabel.selection_videos=1.5"])
    with pytest.raises(ConfigError, match="checkpoint: best needs held-out training videos"):
        load_pseudolabel_config(CONFIG, ["pseudolabel.selection_videos=0"])
    load_pseudolabel_config(CONFIG, ["pseudolabel.selection_videos=0", "pseudolabel.checkpoint=last"])


def test_checkpoint_selection_uses_no_validation_data(tiny_synthetic, tmp_path, monkeypatch):
    """The propagation stage is validated (and its best checkpoint picked) on held-out training videos; the
    validation split is not read by it at all."""
    import stdpose.engine.trainer as trainer

    data = tiny_synthetic
    cfg = load_pseudolabel_config(CONFIG, [
        f"data.train={{annotations: {data}/annotations/train, image_root: {data}}}",
        f"data.val={{annotations: {data}/annotations/val, image_root: {data}}}",
        "pseudolabel.middle_frames=14", "pseudolabel.selection_videos=0.3"], output_dir=tmp_path / "pl")
    pipe = PseudoLabelPipeline(cfg, say=lambda _: None)
    results = {"sparse": pipe._run_sparse({})}
    seen: dict = {}

    def fake_train(stage_cfg, resume=None, output_dir=None):
        seen["cfg"] = stage_cfg
        raise RuntimeError("stop after capturing the config")

    monkeypatch.setattr(trainer, "train", fake_train)
    with pytest.raises(RuntimeError, match="stop after"):
        pipe._run_propagation(results)
    used = seen["cfg"]["data"]
    val_names = {v.name for v in read_annotations(data / "annotations" / "val")}
    train_names = {v.name for v in read_annotations(data / "annotations" / "train")}
    selection = {v.name for v in read_annotations(used["val"]["annotations"])}
    trained_on = {v.name for v in read_annotations(used["train"]["annotations"])}
    assert Path(used["val"]["annotations"]).resolve() != (data / "annotations" / "val").resolve()
    assert Path(used["val"]["annotations"]).is_relative_to(tmp_path / "pl" / "sparse")
    assert selection and selection <= train_names and not selection & val_names
    assert trained_on and not trained_on & selection  # held out of the propagation training
    assert trained_on | selection == train_names
    # the selection videos keep their labels inside the window (the mAP needs frames to score)
    for video in read_annotations(used["val"]["annotations"]):
        assert len(video.labeled_indices()) == 14
    # the estimation stage still reports on the validation split (and selects nothing there)
    assert cfg["estimation"]["data"]["val"]["annotations"] == str(data / "annotations" / "val")
