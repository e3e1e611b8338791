"""ONNX export: the exported graph must reproduce PyTorch on a batch size it was not traced with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from stdpose.cli import main
from stdpose.engine.config import load_config
from stdpose.engine.lit import StdposeModule

REPO = Path(__file__).resolve().parents[1]


def _checkpoint(tmp_path: Path, task: str) -> Path:
    cfg = load_config(REPO / "configs" / "synthetic_demo.yaml", [f"data.task={task}", "model.backbone=nano"])
    module = StdposeModule(cfg)
    path = tmp_path / f"{task}.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": {"config": cfg}}, path)
    return path


@pytest.mark.parametrize("task", ["propagation", "estimation"])
def test_export_cli_writes_verified_onnx(tmp_path, task, capsys):
    ort = pytest.importorskip("onnxruntime")
    ckpt = _checkpoint(tmp_path, task)
    out = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    assert "max abs difference" in capsys.readouterr().out
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert names == (["frames", "aux_heatmaps"] if task == "propagation" else ["frames"])

    from stdpose.engine.checkpoints import load_model_from_checkpoint

    model, cfg = load_model_from_checkpoint(ckpt)
    h, w = cfg["data"]["input_size"]
    frames = torch.randn(4, 3, 3, h, w)
    aux = torch.rand(4, 2, 17, h // 4, w // 4)
    feeds = {"frames": frames.numpy()}
    if task == "propagation":
        feeds["aux_heatmaps"] = aux.numpy()
    got = session.run(["heatmaps"], feeds)[0]
    with torch.no_grad():
        want = model(frames, aux if task == "propagation" else None)["heatmaps"].numpy()
    assert got.shape == (4, 17, h // 4, w // 4)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_export_bad_checkpoint_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "broken.ckpt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["export", "--checkpoint", str(bad), "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "broken.ckpt" in err and "cannot read checkpoint" in err
    assert not (tmp_path / "m.onnx").exists()
