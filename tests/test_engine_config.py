"""Experiment configs: every shipped YAML loads, unknown keys are named, overrides and values are checked."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stdpose.engine.config import (
    apply_override,
    dump_config,
    load_config,
    parse_override,
    validate_config,
)
from stdpose.errors import ConfigError, DataError

# The training experiments (configs/ also holds other commands' configs, e.g. pseudolabel_*.yaml).
TRAIN_CONFIGS = [f"{ds}_{task}" for ds in ("posetrack17", "posetrack18", "posetrack21")
                 for task in ("propagation", "estimation")] + ["synthetic_demo", "synthetic_estimation"]
CONFIGS = [Path(__file__).resolve().parents[1] / "configs" / f"{name}.yaml" for name in TRAIN_CONFIGS]
PAPER = [p for p in CONFIGS if p.stem.startswith("posetrack")]


def test_all_expected_configs_exist():
    missing = [p.name for p in CONFIGS if not p.is_file()]
    assert not missing


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads_with_task_matching_its_name(path):
    cfg = load_config(path)
    expected = "estimation" if "estimation" in path.stem else "propagation"
    assert cfg["data"]["task"] == expected
    assert cfg["model"]["input_size"] == cfg["data"]["input_size"]
    assert cfg["output_dir"].endswith(path.stem)


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_paper_configs_use_the_paper_hyper_parameters(path):
    cfg = load_config(path)
    assert cfg["model"]["backbone"] == "base"
    assert cfg["data"]["input_size"] == [256, 192]
    assert cfg["optim"]["lr"] == pytest.approx(2e-4)
    assert cfg["optim"]["milestones"] == [12, 16]
    assert cfg["optim"]["gamma"] == pytest.approx(0.1)
    assert cfg["trainer"]["max_epochs"] == 20
    assert cfg["model"]["mi_alpha"] == pytest.approx(0.1) and cfg["model"]["mi_beta"] == pytest.approx(0.01)
    if cfg["data"]["task"] == "propagation":
        assert cfg["data"]["interval"] == 7


@pytest.mark.parametrize(
    "override, key",
    [
        ("trainer.max_epoch=3", "trainer.max_epoch"),
        ("model.backbon=nano", "model.backbon"),
        ("data.train.annotation=x", "data.train.annotation"),
        ("optim.learning_rate=0.1", "optim.learning_rate"),
        ("data.augment.rotatoin=10", "data.augment.rotatoin"),
        ("checkpoint.keep=true", "checkpoint.keep"),
        ("outputdir=x", "outputdir"),
    ],
)
def test_unknown_key_is_named_with_the_allowed_keys(override, key):
    with pytest.raises(ConfigError) as err:
        load_config(CONFIGS[0], [override])
    text = str(err.value)
    assert f"'{key}'" in text
    assert "allowed keys" in text


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(ConfigError, match="did you mean 'max_epochs'"):
        load_config(CONFIGS[0], ["trainer.max_epoch=3"])


def test_unknown_key_inside_the_yaml_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("trainer:\n  max_epochs: 2\n  gpus: 4\n")
    with pytest.raises(ConfigError, match=r"'trainer\.gpus'.*allowed keys in trainer: max_epochs"):
        load_config(path)


def test_overrides_are_parsed_as_yaml_and_applied():
    cfg = load_config(
        CONFIGS[0],
        ["trainer.max_epochs=3", "data.input_size=[128, 96]", "optim.lr=1e-3", "model.backbone=nano",
         "trainer.devices=2", "trainer.precision=bf16-mixed", "data.augment.flip=false"],
    )
    assert cfg["trainer"]["max_epochs"] == 3
    assert cfg["data"]["input_size"] == [128, 96] and cfg["model"]["input_size"] == [128, 96]
    assert cfg["optim"]["lr"] == pytest.approx(1e-3)  # '1e-3' is a string to YAML 1.1; we read it as a number
    assert cfg["model"]["backbone"] == "nano"
    assert cfg["trainer"]["devices"] == 2
    assert cfg["trainer"]["precision"] == "bf16-mixed"
    assert cfg["data"]["augment"] == {"flip": False}


def test_parse_override_forms():
    assert parse_override("a.b=1") == (["a", "b"], 1)
    assert parse_override("a=[1, 2]") == (["a"], [1, 2])
    assert parse_override("a=null") == (["a"], None)
    assert parse_override("a.b={x: 1}") == (["a", "b"], {"x": 1})
    for bad in ("novalue", "=3", "a..b=1"):
        with pytest.raises(ConfigError):
            parse_override(bad)


def test_override_into_a_value_is_refused():
    cfg = {"trainer": {"max_epochs": 2}}
    with pytest.raises(ConfigError, match="trainer.max_epochs is a value"):
        apply_override(cfg, "trainer.max_epochs.x=1")


@pytest.mark.parametrize(
    "override, pattern",
    [
        ("data.task=tracking", "data.task must be one of propagation, estimation"),
        ("data.input_size=[256]", r"data.input_size must be \[height, width\]"),
        ("data.input_size=[250, 190]", "multiples of 4"),
        ("data.batch_size=0", "data.batch_size must be a whole number >= 1"),
        ("optim.lr=-1", "optim.lr must be a number > 0"),
        ("optim.milestones=[16, 12]", "optim.milestones must be increasing"),
        ("optim.betas=[0.9]", "optim.betas"),
        ("trainer.precision=8-bit", "trainer.precision must be one of"),
        ("trainer.devices=two", "trainer.devices"),
        ("trainer.num_nodes=0", "trainer.num_nodes"),
        ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches"),
        ("checkpoint.mode=best", "checkpoint.mode"),
        ("model.input_size=[64, 48]", "differs from data.input_size"),
        ("model.num_joints=15", "model.num_joints must be 17"),
        ("data.val_protocol=dense", "data.val_protocol"),
    ],
)
def test_bad_values_are_refused_with_the_key_named(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(CONFIGS[0], [override])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(DataError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(DataError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(DataError, match="mapping of sections"):
        load_config(listy)


def test_defaults_are_filled_and_the_dump_reloads_identically(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    cfg = load_config(empty)
    assert cfg["optim"]["lr"] == pytest.approx(2e-4) and cfg["trainer"]["max_epochs"] == 20
    assert cfg["data"]["task"] == "propagation" and cfg["data"]["interval"] == 7
    full = load_config(CONFIGS[-1], ["trainer.max_epochs=5"])
    dumped = tmp_path / "dumped.yaml"
    dumped.write_text(dump_config(full))
    assert load_config(dumped) == full
    assert validate_config(yaml.safe_load(dump_config(full))) == full
