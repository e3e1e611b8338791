"""`stdpose train`: help a new user can follow, one-line errors for user mistakes, a real short run and resume."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from conftest_engine import REPO, data_overrides, tiny_overrides

from stdpose.cli import main

DEMO = REPO / "configs" / "synthetic_demo.yaml"



def test_help_explains_config_overrides_resume_and_outputs(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for phrase in ("CONFIG", "--set KEY=VALUE", "--resume", "--output-dir", "--print-config", "last.ckpt",
                   "best", "tensorboard --logdir", "stdpose synth", "trainer.devices", "docs/training.md"):
        assert phrase in text, phrase


def test_top_level_help_lists_train(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "train" in capsys.readouterr().out


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["train", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_unknown_key_is_one_line_naming_key_and_allowed(capsys):
    code, _, err = _run(capsys, str(DEMO), "--set", "trainer.max_epoch=2")
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "'trainer.max_epoch'" in err and "max_epochs" in err and "allowed keys" in err


def test_missing_config_file(capsys, tmp_path):
    code, _, err = _run(capsys, str(tmp_path / "nope.yaml"))
    assert code == 2 and "nope.yaml" in err and "config file not found" in err


def test_bad_value_and_bad_override_syntax(capsys):
    code, _, err = _run(capsys, str(DEMO), "--set", "data.task=tracking")
    assert code == 2 and "data.task must be one of propagation, estimation" in err
    code, _, err = _run(capsys, str(DEMO), "--set", "trainer.max_epochs")
    assert code == 2 and "section.key=value" in err


def test_missing_annotations_are_reported_without_traceback(capsys, tmp_path):
    code, _, err = _run(capsys, str(DEMO), "--output-dir", str(tmp_path / "out"), "--set",
                        f"data.train={{annotations: {tmp_path}/missing, image_root: {tmp_path}}}",
                        "trainer.enable_progress_bar=false")
    assert code == 2
    assert "missing" in err and "Traceback" not in err


def test_unusable_trainer_settings_are_a_config_error(capsys, tiny_synthetic, tmp_path):
    data = data_overrides(tiny_synthetic)
    code, _, err = _run(capsys, str(DEMO), "--output-dir", str(tmp_path), "--set", *data,
                        "trainer.accelerator=gpu", "trainer.devices=8")
    assert code == 2 and "trainer settings are not usable here" in err and "Traceback" not in err
    code, _, err = _run(capsys, str(DEMO), "--output-dir", str(tmp_path), "--set", *data, "trainer.strategy=fancy")
    assert code == 2 and "fancy" in err


def test_resume_from_a_missing_checkpoint(capsys, tmp_path):
    code, _, err = _run(capsys, str(DEMO), "--resume", str(tmp_path / "gone.ckpt"))
    assert code == 2 and "gone.ckpt" in err and "not found" in err


def test_print_config_shows_the_resolved_config(capsys, tmp_path):
    code, out, _ = _run(capsys, str(DEMO), "--print-config", "--set", "trainer.max_epochs=3",
                        "--output-dir", str(tmp_path))
    assert code == 0
    cfg = yaml.safe_load(out)
    assert cfg["trainer"]["max_epochs"] == 3
    assert cfg["output_dir"] == str(tmp_path)
    assert cfg["optim"]["gamma"] == pytest.approx(0.1)  # defaults are filled in


def test_entry_point_prints_no_traceback_for_a_bad_key(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "stdpose.cli", "train", str(DEMO), "--set", "model.backbon=nano"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "unknown config key 'model.backbon' (did you mean 'backbone'?)" in proc.stderr


def test_train_then_resume_through_the_cli(capsys, tiny_synthetic, tmp_path):
    out = tmp_path / "run"
    sets = tiny_overrides(tiny_synthetic, {"trainer.max_epochs": 1, "trainer.limit_train_batches": 2,
                                           "trainer.limit_val_batches": 1})
    code, stdout, _ = _run(capsys, str(DEMO), "--output-dir", str(out), "--set", *sets)
    assert code == 0
    assert "finished at epoch 1, global step 2" in stdout
    assert f"last checkpoint: {out / 'checkpoints' / 'last.ckpt'}" in stdout
    assert "best checkpoint:" in stdout and "TensorBoard logs:" in stdout
    assert (out / "checkpoints" / "last.ckpt").is_file() and (out / "config.yaml").is_file()

    more = [s if not s.startswith("trainer.max_epochs") else "trainer.max_epochs=2" for s in sets]
    code, stdout, _ = _run(capsys, str(DEMO), "--output-dir", str(out), "--resume", "--set", *more)
    assert code == 0
    assert f"resuming from {out / 'checkpoints' / 'last.ckpt'}" in stdout
    assert "finished at epoch 2, global step 4" in stdout
