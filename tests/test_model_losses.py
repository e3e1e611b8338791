"""Heatmap loss and the bounded MI loss: hand-computed values, bounds, variants, and errors."""

from __future__ import annotations

import math

import pytest
import torch

from stdpose.model import ModelConfig, ModelInputError, StdposeLoss, build_model, heatmap_mse, mi_proxy
from stdpose.model.losses import js_divergence, spatial_distribution

J, h, w = 17, 16, 12


def _fake_outputs(b: int = 2, d: int = 8, scale: float = 1.0, seed: int = 0, grad: bool = False):
    g = torch.Generator().manual_seed(seed)
    out = {
        "heatmaps": torch.rand(b, J, h, w, generator=g),
        "mi_feature_logits": torch.randn(b, J, 4, 3, generator=g) * scale,
        "fused_features": torch.randn(b, d, 4, 3, generator=g) * scale,
        "key_features_proj": torch.randn(b, d, 4, 3, generator=g) * scale,
        "merged_heatmaps": torch.randn(b, J, h, w, generator=g) * scale,
        "key_heatmaps": torch.randn(b, J, h, w, generator=g) * scale,
    }
    if grad:
        for v in out.values():
            v.requires_grad_(True)
    return out


def test_heatmap_mse_by_hand():
    pred = torch.zeros(2, J, h, w)
    target = torch.zeros(2, J, h, w)
    target[:, 0] = 1.0  # error 1 everywhere on joint 0
    target[:, 3] = 5.0  # huge error on joint 3, whose weight is 0 (an unannotated ear)
    weight = torch.ones(2, J)
    weight[:, 3] = 0
    assert heatmap_mse(pred, target, weight).item() == pytest.approx(1.0 / J)
    weight[1, 0] = 0  # second sample's joint 0 invisible
    assert heatmap_mse(pred, target, weight).item() == pytest.approx(0.5 / J)
    assert heatmap_mse(target, target, torch.ones(2, J)).item() == 0.0


def test_js_divergence_and_mi_proxy_limits():
    p = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    q = torch.tensor([[0.0, 0.0, 0.0, 1.0]])
    assert js_divergence(p, p).item() == pytest.approx(0.0, abs=1e-7)
    assert js_divergence(p, q).item() == pytest.approx(math.log(2), rel=1e-5)
    a = torch.zeros(1, 2, 8, 8)
    a[0, :, 1, 1] = 1.0
    b = torch.zeros(1, 2, 8, 8)
    b[0, :, 6, 6] = 1.0
    assert mi_proxy(a, a).item() == pytest.approx(1.0, abs=1e-5)  # identical maps share everything
    assert mi_proxy(a, b, temperature=0.05).item() < 0.01  # disjoint peaks share (almost) nothing
    near = torch.zeros(1, 2, 8, 8)
    near[0, :, 1, 2] = 1.0
    blurred = torch.nn.functional.avg_pool2d(a, 3, 1, 1)
    assert mi_proxy(blurred, torch.nn.functional.avg_pool2d(near, 3, 1, 1)) > mi_proxy(blurred, b)
    # weights: channels of weight 0 are ignored
    mixed = b.clone()
    mixed[0, 0] = a[0, 0]
    assert mi_proxy(a, mixed, weight=torch.tensor([[1.0, 0.0]])).item() == pytest.approx(1.0, abs=1e-5)
    assert mi_proxy(a, mixed, weight=torch.zeros(1, 2)).item() == 0.0
    assert torch.allclose(spatial_distribution(torch.randn(2, 3, 5, 4)).sum(-1), torch.ones(2, 3))


@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e6])
def test_every_mi_term_is_bounded(scale):
    cfg = ModelConfig(backbone="nano", input_size=[64, 48], variant="f", mi_estimator="proxy")
    loss = StdposeLoss(cfg)
    out = _fake_outputs(scale=scale, grad=True)
    target = torch.rand(2, J, h, w) * scale
    terms = loss(out, target, torch.ones(2, J))
    for key in ("mi_feat_label", "mi_feat_key", "mi_hm_label", "mi_hm_key"):
        assert 0.0 <= terms[key].item() <= 1.0, key
    assert abs(terms["mi"].item()) <= cfg.mi_alpha + cfg.mi_beta + 1e-6
    terms["loss"].backward()
    assert all(torch.isfinite(v.grad).all() for v in out.values() if v.grad is not None)


def test_total_is_heatmap_plus_mi_with_paper_weights():
    loss = StdposeLoss({"backbone": "nano", "input_size": [64, 48], "variant": "f", "mi_estimator": "proxy"})
    assert (loss.alpha, loss.beta) == (0.1, 0.01)
    terms = loss(_fake_outputs(), torch.rand(2, J, h, w), torch.ones(2, J))
    expected_mi = -0.1 * (terms["mi_feat_label"] - terms["mi_feat_key"]) - 0.01 * (
        terms["mi_hm_label"] - terms["mi_hm_key"]
    )
    torch.testing.assert_close(terms["mi"], expected_mi)
    torch.testing.assert_close(terms["loss"], terms["heatmap"] + terms["mi"])
    assert terms["mi_critic"].item() == 0.0  # the proxy has no critic to train
    assert set(terms) == {"loss", "heatmap", "mi", "mi_critic", "mi_feat_label", "mi_feat_key", "mi_hm_label",
                          "mi_hm_key"}


def test_key_frame_side_of_redundancy_terms_is_detached():
    loss = StdposeLoss(ModelConfig(backbone="nano", input_size=[64, 48], variant="f", mi_estimator="proxy"))
    out = _fake_outputs(grad=True)
    terms = loss(out, torch.rand(2, J, h, w), torch.ones(2, J))
    (terms["mi_feat_key"] + terms["mi_hm_key"]).backward()
    assert out["key_features_proj"].grad is None and out["key_heatmaps"].grad is None
    assert out["fused_features"].grad.abs().sum() > 0 and out["merged_heatmaps"].grad.abs().sum() > 0


@pytest.mark.parametrize("variant", list("abcde"))
def test_variants_without_mi_report_zero_mi(variant):
    model = build_model({"backbone": "nano", "input_size": [64, 48], "variant": variant})
    out = model(torch.randn(2, 3, 3, 64, 48))
    terms = StdposeLoss(model.cfg)(out, torch.rand(2, J, h, w), torch.ones(2, J))
    assert terms["mi"].item() == 0.0 and terms["mi_feat_label"].item() == 0.0
    torch.testing.assert_close(terms["loss"], terms["heatmap"])


def test_loss_input_errors():
    loss = StdposeLoss(ModelConfig(backbone="nano", input_size=[64, 48], variant="f", mi_estimator="proxy"))
    out = _fake_outputs()
    with pytest.raises(ModelInputError, match="target must have shape"):
        loss(out, torch.rand(2, 15, h, w), torch.ones(2, J))
    with pytest.raises(ModelInputError, match="target_weight"):
        loss(out, torch.rand(2, J, h, w), torch.ones(2, 15))
    del out["mi_feature_logits"]
    with pytest.raises(ModelInputError, match="mi_feature_logits"):
        loss(out, torch.rand(2, J, h, w), torch.ones(2, J))
    with pytest.raises(ModelInputError, match="heatmaps"):
        loss({}, torch.rand(2, J, h, w), torch.ones(2, J))
