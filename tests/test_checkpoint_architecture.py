"""Checkpoints store the resolved layer sizes, so a later change of a size default (BACKBONE_SIZES) does not break
them: loading rebuilds the trained network, resuming names the field that differs, and an older checkpoint without
the sizes fails with a one-line hint instead of a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stdpose.engine.checkpoints import check_resume_checkpoint, load_model_from_checkpoint
from stdpose.engine.config import load_config
from stdpose.engine.lit import StdposeModule
from stdpose.errors import DataError
from stdpose.model import BACKBONE_SIZES

REPO = Path(__file__).resolve().parents[1]


def _config() -> dict:
    return load_config(REPO / "configs" / "synthetic_demo.yaml", ["model.backbone=nano"])


def _save(tmp_path: Path, with_architecture: bool) -> Path:
    module = StdposeModule(_config())
    hparams = dict(module.hparams)
    assert hparams["architecture"]["temporal_mlp_ratio"] == BACKBONE_SIZES["nano"][6]
    if not with_architecture:
        del hparams["architecture"]
    path = tmp_path / "model.ckpt"
    import pytorch_lightning as pl

    torch.save({"state_dict": module.state_dict(), "hyper_parameters": hparams,
                "pytorch-lightning_version": pl.__version__}, path)
    return path


@pytest.fixture
def change_default(monkeypatch):
    """Call it to become a later stdpose whose nano size has another temporal FFN width (checkpoints: 4)."""
    def change() -> None:
        sizes = list(BACKBONE_SIZES["nano"])
        assert sizes[6] == 4.0
        sizes[6] = 2.0
        monkeypatch.setitem(BACKBONE_SIZES, "nano", tuple(sizes))
    return change


def test_checkpoint_builds_its_own_network_after_a_default_changed(tmp_path, change_default):
    path = _save(tmp_path, with_architecture=True)
    change_default()
    model, _ = load_model_from_checkpoint(path)
    assert model.tff.blocks[0].mlp.fc1.out_features == 4 * 64


def test_checkpoint_without_sizes_after_a_default_changed_is_one_clear_error(tmp_path, change_default):
    path = _save(tmp_path, with_architecture=False)
    change_default()
    with pytest.raises(DataError, match="weights do not fit.*older stdpose.*temporal_mlp_ratio") as err:
        load_model_from_checkpoint(path)
    assert "\n" not in str(err.value)


def test_resume_names_the_size_that_changed(tmp_path, change_default):
    path = _save(tmp_path, with_architecture=True)
    change_default()
    with pytest.raises(DataError, match=r"model\.temporal_mlp_ratio: 4\.0 in the checkpoint, 2\.0 here"):
        check_resume_checkpoint(path, _config())


def test_resume_with_the_same_config_is_accepted(tmp_path):
    check_resume_checkpoint(_save(tmp_path, with_architecture=True), _config())


def test_lightning_load_from_checkpoint_rebuilds_the_trained_network(tmp_path, change_default):
    path = _save(tmp_path, with_architecture=True)
    change_default()
    module = StdposeModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    assert module.model.tff.blocks[0].mlp.fc1.out_features == 4 * 64
