"""Checkpoint lifecycle of `stdpose train`: which files exist after each epoch, step checkpoint, interrupt, resume
and real kill (SIGKILL / SIGTERM of a training subprocess), which one `--resume` picks, and that every resumed run
ends with the weights of an uninterrupted one. Also: checkpoints are loaded weights-only on every path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from conftest_engine import REPO, CtrlC
from lifecycle_common import lifecycle_config

from stdpose.engine.trainer import INTERRUPTED, LAST, STEP_LAST, AtomicCheckpointIO, find_resume_checkpoint, train
from stdpose.errors import DataError

WORKER = Path(__file__).resolve().parent / "lifecycle_worker.py"



@pytest.fixture(scope="module")
def straight(tiny_synthetic, tmp_path_factory):
    """The uninterrupted run (2 epochs x 3 batches): its final checkpoint is what every resumed run must equal."""
    result = train(lifecycle_config(REPO, tiny_synthetic), output_dir=tmp_path_factory.mktemp("straight"))
    assert result.global_step == 6
    return _load(result.last_checkpoint)


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _files(run: Path) -> dict[str, int]:
    """{resume checkpoint name: its global step} in run/checkpoints (best-*.ckpt left out)."""
    folder = run / "checkpoints"
    return {p.name: _load(p)["global_step"] for p in sorted(folder.glob("*.ckpt")) if not p.name.startswith("best")}


def _picked(run: Path) -> str | None:
    found = find_resume_checkpoint(run)
    return found.name if found else None


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a["global_step"] == b["global_step"] and a["epoch"] == b["epoch"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    for pid, state in a["optimizer_states"][0]["state"].items():
        for name, tensor in state.items():
            assert torch.equal(tensor, b["optimizer_states"][0]["state"][pid][name]), (pid, name)
    assert a["lr_schedulers"] == b["lr_schedulers"]


class _Snapshots(pl.Callback):
    """Before every training batch: the resume files on disk and what --resume would pick (keyed by global step)."""

    def __init__(self, run: Path):
        self.run, self.seen = run, {}

    def on_train_batch_start(self, trainer, *args) -> None:
        self.seen[trainer.global_step] = (_files(self.run), _picked(self.run))


def test_files_after_each_step_and_epoch(tiny_synthetic, tmp_path, straight):
    run = tmp_path / "run"
    snap = _Snapshots(run)
    result = train(lifecycle_config(REPO, tiny_synthetic), output_dir=run, extra_callbacks=[snap])
    assert snap.seen == {
        0: ({}, None),
        1: ({}, None),
        2: ({STEP_LAST: 2}, STEP_LAST),  # every 2 steps, mid-epoch 0
        3: ({LAST: 3}, LAST),  # end of epoch 0: last.ckpt is real now; the older step checkpoint is gone
        4: ({LAST: 3, STEP_LAST: 4}, STEP_LAST),
        5: ({LAST: 3, STEP_LAST: 4}, STEP_LAST),
    }
    assert _files(run) == {LAST: 6} and _picked(run) == LAST
    assert len(list((run / "checkpoints").glob("best-*.ckpt"))) == 1
    _assert_same_weights(straight, _load(result.last_checkpoint))


def test_keep_every_epoch_keeps_one_file_per_epoch(tiny_synthetic, tmp_path):
    run = tmp_path / "run"
    train(lifecycle_config(REPO, tiny_synthetic, checkpoint__keep_every_epoch="true"), output_dir=run)
    assert _files(run) == {LAST: 6, "epoch000.ckpt": 3, "epoch001.ckpt": 6}


def test_interrupt_resume_interrupt_resume(tiny_synthetic, tmp_path, straight):
    run = tmp_path / "run"
    first = train(lifecycle_config(REPO, tiny_synthetic), output_dir=run, extra_callbacks=[CtrlC(2)])
    assert first.interrupted and _files(run) == {INTERRUPTED: 2} and _picked(run) == INTERRUPTED

    snap = _Snapshots(run)
    second = train(lifecycle_config(REPO, tiny_synthetic), output_dir=run, resume="auto",
                   extra_callbacks=[snap, CtrlC(5)])
    assert second.interrupted
    assert snap.seen == {
        2: ({INTERRUPTED: 2}, INTERRUPTED),  # the resumed run continues with batch 3 of epoch 0
        3: ({LAST: 3}, LAST),  # interrupted.ckpt removed only now that a newer last.ckpt replaced it
        4: ({LAST: 3, STEP_LAST: 4}, STEP_LAST),
    }
    assert _files(run) == {LAST: 3, STEP_LAST: 4, INTERRUPTED: 5} and _picked(run) == INTERRUPTED

    third = train(lifecycle_config(REPO, tiny_synthetic), output_dir=run, resume="auto")
    assert not third.interrupted and third.global_step == 6
    assert _files(run) == {LAST: 6}
    _assert_same_weights(straight, _load(run / "checkpoints" / LAST))


def _start_held_worker(data: Path, out: Path, at: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO / "src"),
                                                                                  os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(WORKER), str(data), str(out), str(at)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not (out / "held").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"worker did not reach step {at}: {proc.communicate()[0][-3000:]}")
        time.sleep(0.05)
    return proc


def test_kill_9_mid_epoch_then_resume_ends_with_the_uninterrupted_weights(tiny_synthetic, tmp_path, straight):
    proc = _start_held_worker(tiny_synthetic, tmp_path, at=4)  # epoch 1, one batch done
    run = tmp_path / "run"
    try:
        assert _files(run) == {LAST: 3, STEP_LAST: 4}
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _files(run) == {LAST: 3, STEP_LAST: 4} and _picked(run) == STEP_LAST
    resumed = train(lifecycle_config(REPO, tiny_synthetic), output_dir=run, resume="auto")
    assert resumed.global_step == 6 and not resumed.interrupted
    _assert_same_weights(straight, _load(run / "checkpoints" / LAST))


def test_sigterm_saves_and_stops_like_ctrl_c(tiny_synthetic, tmp_path, straight):
    proc = _start_held_worker(tiny_synthetic, tmp_path, at=4)
    try:
        os.kill(proc.pid, signal.SIGTERM)
        (tmp_path / "release").write_text("go")
        output = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output[-3000:]
    run = tmp_path / "run"
    assert _files(run) == {LAST: 3, STEP_LAST: 4, INTERRUPTED: 5}  # the running batch finished, then it stopped
    assert _picked(run) == INTERRUPTED
    train(lifecycle_config(REPO, tiny_synthetic), output_dir=run, resume="auto")
    _assert_same_weights(straight, _load(run / "checkpoints" / LAST))


class _Payload:
    """Unpickling this runs `touch MARKER` (what a hostile checkpoint does on a weights_only=False load)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _plant_pickle(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {}, "global_step": 1, "payload": _Payload(marker)}, path)


@pytest.fixture
def old_torch_default(monkeypatch):
    """torch < 2.6 semantics: torch.load without weights_only unpickles anything."""
    real = torch.load

    def load(*args, **kwargs):
        if kwargs.get("weights_only") is None:
            kwargs["weights_only"] = False
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", load)


def test_lightning_checkpoint_io_never_runs_a_pickle(tmp_path, old_torch_default):
    marker = tmp_path / "pwned"
    _plant_pickle(tmp_path / "evil.ckpt", marker)
    with pytest.raises(Exception, match="(?i)weights.only|unsupported global"):
        AtomicCheckpointIO().load_checkpoint(tmp_path / "evil.ckpt")
    assert not marker.exists()


def test_resume_from_a_planted_pickle_is_one_line_and_runs_nothing(tiny_synthetic, tmp_path, old_torch_default,
                                                                    capsys):
    from stdpose.cli import main

    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    _plant_pickle(run / "checkpoints" / LAST, marker)
    with pytest.raises(DataError, match="cannot read checkpoint"):
        train(lifecycle_config(REPO, tiny_synthetic), output_dir=run, resume="auto")
    from conftest_engine import tiny_overrides

    code = main(["train", str(REPO / "configs" / "synthetic_demo.yaml"), "--output-dir", str(run), "--resume",
                 "--set", *tiny_overrides(tiny_synthetic)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "last.ckpt" in err, err
    assert not marker.exists()
