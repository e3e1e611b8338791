"""Export a trained STDPose to ONNX, checked against PyTorch with onnxruntime.

The exported graph takes the cropped triplet `frames` (B, 3, 3, H, W) [left, key, right], RGB ImageNet-normalised,
plus for propagation models `aux_heatmaps` (B, 2, J, H/4, W/4), the label heatmaps of the two labeled frames; it
returns `heatmaps` (B, J, H/4, W/4). The batch dimension is dynamic. Cropping and decoding stay outside the graph
(`stdpose.data.transforms`), as in every top-down pose exporter.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stdpose.atomic import atomic_path
from stdpose.errors import StdposeError


class _HeatmapsOnly(nn.Module):
    """Wraps STDPose so the graph has plain tensor inputs and a single output."""

    def __init__(self, model: nn.Module, propagation: bool):
        super().__init__()
        self.model = model
        self.propagation = propagation

    def forward(self, frames: torch.Tensor, aux_heatmaps: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(frames, aux_heatmaps if self.propagation else None)["heatmaps"]


@dataclass
class ExportReport:
    path: Path
    inputs: list[str]
    max_abs_diff: float
    max_heatmap: float
    seconds: float


def example_inputs(config: dict, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random inputs of the shapes the model expects (the aux heatmaps only for propagation models)."""
    h, w = config["data"]["input_size"]
    j = config["model"].get("num_joints", 17)
    gen = torch.Generator().manual_seed(seed)
    frames = torch.randn(batch, 3, 3, h, w, generator=gen)
    if config["data"]["task"] != "propagation":
        return (frames,)
    aux = torch.rand(batch, 2, j, h // 4, w // 4, generator=gen)
    return frames, aux


def export_onnx(model: nn.Module, config: dict, out_path: str | Path, opset: int = 18) -> ExportReport:
    """Write `out_path` (atomically) and verify it: onnxruntime and PyTorch must agree on random inputs."""
    try:
        import onnxruntime as ort
    except ImportError as err:  # pragma: no cover - optional dependency
        raise StdposeError("ONNX export needs onnx, onnxscript and onnxruntime: pip install 'stdpose[export]'") from err
    propagation = config["data"]["task"] == "propagation"
    wrapper = _HeatmapsOnly(model.eval().cpu(), propagation).eval()
    inputs = example_inputs(config)
    names = ["frames", "aux_heatmaps"][: len(inputs)]
    batch = torch.export.Dim("batch", min=1, max=1024)
    dynamic = {name: {0: batch} for name in names}
    start = time.perf_counter()
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        with torch.no_grad():
            program = torch.onnx.export(
                wrapper, inputs, dynamo=True, input_names=names, output_names=["heatmaps"],
                dynamic_shapes=dynamic, opset_version=opset, verbose=False,
            )
        program.save(str(tmp))
        # Verify on a batch size other than the example's, so a frozen batch dimension is caught too.
        check = example_inputs(config, batch=3, seed=1)
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        got = session.run(["heatmaps"], {n: t.numpy() for n, t in zip(names, check)})[0]
        with torch.no_grad():
            want = wrapper(*check).numpy()
        diff = float(np.abs(got - want).max())
        if got.shape != want.shape or not diff < 1e-3 * max(1.0, float(np.abs(want).max())):
            raise StdposeError(f"ONNX export does not reproduce PyTorch (shape {got.shape} vs {want.shape}, "
                               f"max abs diff {diff:.3g}); not written")
    return ExportReport(out_path, names, diff, float(np.abs(want).max()), time.perf_counter() - start)
