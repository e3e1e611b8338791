"""Training end to end on the tiny synthetic data: every config trains a step, validation gives an mAP table,
--resume continues exactly, Ctrl-C leaves a checkpoint to resume from."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from conftest_engine import CtrlC, tiny_overrides

from stdpose.engine.config import load_config
from stdpose.engine.trainer import INTERRUPTED, LAST, find_resume_checkpoint, resolve_resume, train
from stdpose.errors import DataError
from stdpose.skeleton import GROUP_NAMES

# The training experiments (configs/ also holds other commands' configs, e.g. pseudolabel_*.yaml).
TRAIN_CONFIGS = [f"{ds}_{task}" for ds in ("posetrack17", "posetrack18", "posetrack21")
                 for task in ("propagation", "estimation")] + ["synthetic_demo", "synthetic_estimation"]
CONFIGS = [Path(__file__).resolve().parents[1] / "configs" / f"{name}.yaml" for name in TRAIN_CONFIGS]
DEMO = next(p for p in CONFIGS if p.stem == "synthetic_demo")
LOSS_TERMS = ("loss", "heatmap", "mi", "mi_feat_label", "mi_feat_key", "mi_hm_label", "mi_hm_key")



def _config(path: Path, data: Path, **extra: object) -> dict:
    return load_config(path, tiny_overrides(data, {k.replace("__", "."): v for k, v in extra.items()}))


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_trains_one_step_on_cpu(path, tiny_synthetic, tmp_path):
    cfg = _config(path, tiny_synthetic, trainer__max_epochs=1, trainer__limit_train_batches=1,
                  trainer__limit_val_batches=1)
    result = train(cfg, output_dir=tmp_path / "run")
    assert result.global_step == 1 and not result.interrupted
    ckpt = _load(result.last_checkpoint)
    assert ckpt["global_step"] == 1
    assert ckpt["hyper_parameters"]["config"]["data"]["task"] == cfg["data"]["task"]
    for term in LOSS_TERMS:
        assert torch.isfinite(torch.tensor(result.metrics[f"train/{term}"]))
    assert 0.0 <= result.metrics["val/mAP"] <= 100.0
    assert (tmp_path / "run" / "config.yaml").is_file()


@pytest.mark.parametrize(
    "extra, steps",
    [
        ({"trainer__precision": "bf16-mixed"}, 4),  # the autocast path (on GPU: 16-mixed / bf16-mixed)
        ({"trainer__accumulate_grad_batches": 2, "optim__warmup_steps": 2}, 2),  # 4 batches, 2 optimizer steps
    ],
    ids=["bf16-mixed", "accumulate2"],
)
def test_precision_and_gradient_accumulation(extra, steps, tiny_synthetic, tmp_path):
    cfg = _config(DEMO, tiny_synthetic, trainer__max_epochs=1, trainer__limit_train_batches=4,
                  trainer__limit_val_batches=1, **extra)
    result = train(cfg, output_dir=tmp_path / "run")
    assert result.global_step == steps
    assert torch.isfinite(torch.tensor(result.metrics["train/loss"]))
    ckpt = _load(result.last_checkpoint)
    if "optim__warmup_steps" in extra:  # warmup counts optimizer steps, not batches: done after 2 steps
        assert ckpt["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(cfg["optim"]["lr"])


@pytest.fixture(scope="module")
def validated_run(tiny_synthetic, tmp_path_factory):
    """Two short epochs of the demo config with the full validation set."""
    out = tmp_path_factory.mktemp("validated")
    cfg = _config(DEMO, tiny_synthetic, trainer__max_epochs=2, trainer__limit_train_batches=3)
    return cfg, train(cfg, output_dir=out)


def test_validation_writes_the_map_table_per_epoch(validated_run):
    from stdpose.data.dataset import PoseDataModule
    from stdpose.engine.trainer import datamodule_config

    cfg, result = validated_run
    tables = sorted((result.output_dir / "val").glob("epoch*.json"))
    assert [json.loads(t.read_text())["epoch"] for t in tables] == [0, 1]
    last = json.loads(tables[-1].read_text())
    assert set(last["groups"]) == set(GROUP_NAMES)
    assert all(v is None or 0.0 <= v <= 100.0 for v in last["groups"].values())
    assert last["groups"]["Mean"] == pytest.approx(result.metrics["val/mAP"], abs=1e-4)
    # every key frame of the validation set was evaluated (none of the aux frames)
    dm = PoseDataModule(datamodule_config(cfg["data"]))
    dm.setup("validate")
    evaluated = {key for key in dm.val_dataset.key_frames()
                 if dm.val_dataset.videos[key[0]].frames[key[1]].persons}
    assert last["num_images"] == len(evaluated)
    assert result.best_checkpoint is not None and result.best_checkpoint.is_file()
    assert result.best_score == pytest.approx(max(json.loads(t.read_text())["groups"]["Mean"] for t in tables))


def test_tensorboard_has_every_loss_term_and_each_joint_group(validated_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, result = validated_run
    acc = EventAccumulator(str(result.log_dir))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for term in LOSS_TERMS:
        assert f"train/{term}" in tags or f"train/{term}_step" in tags
        assert f"val/{term}" in tags
    for group in GROUP_NAMES:
        assert f"val/{group}" in tags
    assert {"val/mAP", "train/lr"} <= tags
    steps = [e.step for e in acc.Scalars("train/heatmap")]
    assert steps == sorted(steps) and len(steps) == 6


RESUME_EXTRA = dict(trainer__limit_train_batches=3, trainer__limit_val_batches=2, optim__warmup_steps=4,
                    optim__milestones="[1]", optim__gamma=0.5)


@pytest.fixture(scope="module")
def straight_run(tiny_synthetic, tmp_path_factory):
    """Two epochs of three batches without a stop: what every resumed run must reproduce."""
    out = tmp_path_factory.mktemp("straight")
    return train(_config(DEMO, tiny_synthetic, trainer__max_epochs=2, **RESUME_EXTRA), output_dir=out)


def _assert_same_training_state(a: dict, b: dict) -> None:
    assert a["global_step"] == b["global_step"] and a["epoch"] == b["epoch"]
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    opt_a, opt_b = a["optimizer_states"][0], b["optimizer_states"][0]
    assert opt_a["param_groups"] == opt_b["param_groups"]
    for pid, state in opt_a["state"].items():
        for name, tensor in state.items():
            assert torch.equal(tensor, opt_b["state"][pid][name]), (pid, name)
    assert a["lr_schedulers"] == b["lr_schedulers"]


def test_resume_continues_exactly(straight_run, tiny_synthetic, tmp_path):
    out = tmp_path / "split"
    first = train(_config(DEMO, tiny_synthetic, trainer__max_epochs=1, **RESUME_EXTRA), output_dir=out)
    assert first.global_step == 3
    resumed = train(_config(DEMO, tiny_synthetic, trainer__max_epochs=2, **RESUME_EXTRA), resume="auto",
                    output_dir=out)
    assert straight_run.global_step == resumed.global_step == 6

    a, b = _load(straight_run.last_checkpoint), _load(resumed.last_checkpoint)
    _assert_same_training_state(a, b)
    assert a["lr_schedulers"][-1]["last_epoch"] == 2  # the epoch schedule stepped twice in both runs
    assert a["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(5e-4)  # 1e-3 x 0.5 after epoch 1
    # the validation of the second epoch agrees too
    val_a = json.loads(next((straight_run.output_dir / "val").glob("epoch001*.json")).read_text())
    val_b = json.loads(next((out / "val").glob("epoch001*.json")).read_text())
    assert val_a["groups"] == val_b["groups"]


@pytest.mark.parametrize("at", [2, 4], ids=["epoch0", "epoch1"])
def test_ctrl_c_saves_a_checkpoint_and_resume_finishes_the_epoch_exactly(at, straight_run, tiny_synthetic,
                                                                          tmp_path):
    cfg = _config(DEMO, tiny_synthetic, trainer__max_epochs=2, **RESUME_EXTRA)
    out = tmp_path / "run"
    stopped = train(cfg, output_dir=out, extra_callbacks=[CtrlC(at)])
    assert stopped.interrupted
    interrupted = out / "checkpoints" / INTERRUPTED
    assert _load(interrupted)["global_step"] == at
    assert find_resume_checkpoint(out) == interrupted  # newer than any last.ckpt
    done = train(cfg, output_dir=out, resume="auto")
    assert not done.interrupted and done.global_step == 6
    assert not interrupted.exists()  # superseded by the newer last.ckpt
    # the interrupted epoch continued with its remaining batches: same weights as never stopping
    _assert_same_training_state(_load(straight_run.last_checkpoint), _load(out / "checkpoints" / LAST))


def test_resume_arguments(tmp_path):
    assert resolve_resume(None, tmp_path) is None
    assert resolve_resume("auto", tmp_path) is None  # nothing to resume: a fresh start
    with pytest.raises(DataError, match="checkpoint to resume from not found"):
        resolve_resume(str(tmp_path / "missing.ckpt"), tmp_path)
    with pytest.raises(DataError, match="no last.ckpt"):
        resolve_resume(str(tmp_path), tmp_path)
    ckpt = tmp_path / "checkpoints" / LAST
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"x")
    assert resolve_resume("auto", tmp_path) == ckpt
    assert resolve_resume(str(tmp_path), tmp_path / "elsewhere") == ckpt
    hpc = tmp_path / "hpc_ckpt_1.ckpt"  # Lightning's SLURM requeue checkpoint, newer than last.ckpt
    hpc.write_bytes(b"x")
    os.utime(ckpt, (1000, 1000))
    assert find_resume_checkpoint(tmp_path) == hpc
