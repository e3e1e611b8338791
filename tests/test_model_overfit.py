"""A nano STDPose memorises a handful of synthetic triplets: the heatmap loss drops at least 10x on CPU."""

from __future__ import annotations

import pytest
import torch

from stdpose.model import StdposeLoss, build_model


def _samples(n: int = 4, h: int = 16, w: int = 12, sigma: float = 1.5):
    g = torch.Generator().manual_seed(1)
    frames = torch.randn(n, 3, 3, 4 * h, 4 * w, generator=g)
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    centres = torch.rand(n, 17, 2, generator=g) * torch.tensor([h - 1.0, w - 1.0])
    cy, cx = centres[..., 0, None, None], centres[..., 1, None, None]
    target = torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * sigma**2))  # (n, 17, h, w)
    weight = torch.ones(n, 17)
    weight[:, 3:5] = 0  # ears unannotated, as in PoseTrack
    aux = torch.rand(n, 2, 17, h, w, generator=g)
    return frames, target, weight, aux


@pytest.mark.slow
@pytest.mark.parametrize("propagation", [False, True])
def test_nano_model_overfits_a_few_samples(propagation):
    torch.manual_seed(0)
    model = build_model({"backbone": "nano", "input_size": [64, 48], "variant": "f"}).train()
    loss_fn = StdposeLoss(model.cfg)
    frames, target, weight, aux = _samples()
    aux = aux if propagation else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    first = None
    for _ in range(150):
        terms = loss_fn(model(frames, aux), target, weight)
        first = terms["heatmap"].item() if first is None else first
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        final = loss_fn(model(frames, aux), target, weight)
    assert final["heatmap"].item() < first / 10, (first, final["heatmap"].item())
    assert final["mi_feat_label"].item() > 0.9  # F~ projected to J channels now locates the labelled joints
