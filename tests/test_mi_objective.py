"""The STDPose objective (issue 10): MI estimators that measure information, where the MI gradients go, the L_H
reduction of Eq. 4, and the config switches' errors."""

from __future__ import annotations

import pytest
import torch

from stdpose.errors import ConfigError
from stdpose.model import ModelConfig, StdposeLoss, build_model
from stdpose.model.losses import gradient_norm_ratio, heatmap_loss
from stdpose.model.mi_estimators import CriticEstimator, mi_proxy

C, S = 6, 12  # channels and grid of the toy heatmap stacks


def _blobs(n: int, gen: torch.Generator) -> torch.Tensor:
    """(n, C, S, S) heatmap-like maps: one Gaussian blob per channel at a random place."""
    ys, xs = torch.meshgrid(torch.arange(S).float(), torch.arange(S).float(), indexing="ij")
    cy, cx = torch.rand(n, C, 1, 1, generator=gen) * S, torch.rand(n, C, 1, 1, generator=gen) * S
    return torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / 4.0)


def _trained_estimate(kind: str, pair: str, steps: int = 120) -> float:
    """Train a fresh critic on (A, f(A)) batches for `steps`, then the mean bound on new batches."""
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(C, generator=gen)

    def partner(a: torch.Tensor) -> torch.Tensor:
        if pair == "identical":
            return a
        if pair == "permuted":  # channels shuffled, negated and mirrored: the same information, rearranged
            return -a[:, perm].flip(-1)
        return _blobs(a.shape[0], gen)  # independent noise

    torch.manual_seed(1)
    est = CriticEstimator(kind, C, C)
    opt = torch.optim.Adam(est.parameters(), lr=3e-3)
    for _ in range(steps):
        a = _blobs(16, gen)
        loss = -est.critic_objective(a, partner(a))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        values = [est.estimate(a, partner(a)).item() for a in (_blobs(32, gen) for _ in range(3))]
    return sum(values) / len(values)


@pytest.mark.parametrize("kind", ["infonce", "jsd"])
def test_critic_estimators_rank_identical_permuted_noise(kind):
    identical = _trained_estimate(kind, "identical")
    permuted = _trained_estimate(kind, "permuted")
    noise = _trained_estimate(kind, "noise")
    ceiling = torch.log(torch.tensor(32.0)).item() if kind == "infonce" else torch.log(torch.tensor(4.0)).item()
    assert identical > 0.6 * ceiling  # a trained critic recognises its positives
    assert identical >= permuted - 0.05 * ceiling  # an invertible rearrangement keeps (nearly) all information
    assert permuted > 0.6 * ceiling  # ... and so must score high, unlike the proxy
    assert noise < 0.05 * ceiling < permuted  # independent inputs share nothing


def test_proxy_misses_rearranged_information():
    """Why the proxy is not the default: a channel-permuted copy scores far below an identical one."""
    gen = torch.Generator().manual_seed(0)
    a = _blobs(16, gen)
    perm = torch.randperm(C, generator=gen)
    assert mi_proxy(a, a).item() == pytest.approx(1.0, abs=1e-5)
    assert mi_proxy(a, -a[:, perm].flip(-1)).item() < 0.7


def test_critic_estimate_needs_a_batch_and_matching_grids():
    est = CriticEstimator("infonce", C, C)
    one = torch.rand(1, C, S, S)
    assert est.estimate(one, one).item() == 0.0  # no negatives: no estimate
    with pytest.raises(Exception, match="one batch and grid"):
        est.estimate(torch.rand(2, C, S, S), torch.rand(2, C, S - 1, S))


# ------------------------------------------------------------------------------------------------ gradients

J = 17


def _model_and_terms(estimator: str):
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="nano", input_size=[64, 48], variant="f", tff_depth=1, stda_depth=1,
                      mi_estimator=estimator)
    model = build_model(cfg).train()
    loss = StdposeLoss(cfg)
    frames = torch.randn(4, 3, 3, 64, 48)
    aux = torch.rand(4, 2, J, 16, 12)
    out = model(frames, aux)
    terms = loss(out, torch.rand(4, J, 16, 12), torch.ones(4, J))
    return model, loss, terms


def _grad_parts(model, loss, value: torch.Tensor) -> dict[str, float]:
    """Sum of |grad| of `value` per part: single-frame (backbone+head), tff, tks, other temporal, critics."""
    named = {**{f"model.{n}": p for n, p in model.named_parameters()},
             **{f"loss.{n}": p for n, p in loss.named_parameters()}}
    grads = torch.autograd.grad(value, list(named.values()), retain_graph=True, allow_unused=True)
    parts: dict[str, float] = {"single": 0.0, "tff": 0.0, "tks": 0.0, "temporal_rest": 0.0, "critics": 0.0}
    for name, g in zip(named, grads):
        size = 0.0 if g is None else float(g.abs().sum())
        if name.startswith("loss."):
            parts["critics"] += size
        elif name.startswith(("model.backbone.", "model.head.")):
            parts["single"] += size
        elif name.startswith("model.tff."):
            parts["tff"] += size
        elif name.startswith("model.tks."):
            parts["tks"] += size
        else:
            parts["temporal_rest"] += size
    return parts


@pytest.mark.parametrize("estimator", ["proxy", "infonce", "jsd"])
def test_redundancy_terms_train_only_the_temporal_modules(estimator):
    model, loss, terms = _model_and_terms(estimator)
    feat = _grad_parts(model, loss, terms["mi_feat_key"])
    assert feat["single"] == 0.0 and feat["critics"] == 0.0  # backbone/head untouched, critic frozen
    assert feat["tff"] > 0.0 and feat["tks"] == 0.0
    hm = _grad_parts(model, loss, terms["mi_hm_key"])
    assert hm["single"] == 0.0 and hm["critics"] == 0.0 and hm["tff"] == 0.0
    assert hm["tks"] > 0.0


@pytest.mark.parametrize("estimator", ["proxy", "infonce"])
def test_label_terms_reach_the_backbone_and_critics_learn_only_from_their_objective(estimator):
    model, loss, terms = _model_and_terms(estimator)
    label = _grad_parts(model, loss, terms["mi_feat_label"] + terms["mi_hm_label"])
    assert label["single"] > 0.0 and label["tff"] > 0.0 and label["critics"] == 0.0
    if estimator == "proxy":
        assert not terms["mi_critic"].requires_grad and not list(loss.parameters())  # nothing to learn
    else:
        critic = _grad_parts(model, loss, terms["mi_critic"])
        assert critic["single"] == critic["tff"] == critic["tks"] == critic["temporal_rest"] == 0.0
        assert critic["critics"] > 0.0
    torch.testing.assert_close(terms["loss"], terms["heatmap"] + terms["mi"] + terms["mi_critic"])


def test_gradient_norm_ratio_of_mi_to_heatmap():
    model, _, terms = _model_and_terms("infonce")
    single = [p for n, p in model.named_parameters() if n.startswith(("backbone.", "head."))]
    r = gradient_norm_ratio(terms["mi"], terms["heatmap"], single)
    r2 = gradient_norm_ratio(2 * terms["mi"], terms["heatmap"], single)
    assert r > 0 and r2 == pytest.approx(2 * r, rel=1e-5)
    assert gradient_norm_ratio(terms["heatmap"], terms["heatmap"], single) == pytest.approx(1.0)


def test_heatmap_loss_sum_is_eq4_and_mean_divides_by_joints_and_pixels():
    pred, target = torch.rand(3, J, 8, 6), torch.rand(3, J, 8, 6)
    weight = torch.ones(3, J)
    weight[0, :5] = 0
    by_hand = ((pred - target) ** 2 * weight[:, :, None, None]).sum() / 3  # per-sample squared L2 norm, batch mean
    torch.testing.assert_close(heatmap_loss(pred, target, weight, "sum"), by_hand)
    torch.testing.assert_close(heatmap_loss(pred, target, weight, "mean"), by_hand / (J * 8 * 6))
    loss = StdposeLoss(ModelConfig(backbone="nano", input_size=[32, 32], variant="a", heatmap_reduction="mean"))
    out = {"heatmaps": pred}
    torch.testing.assert_close(loss(out, target, weight)["heatmap"], by_hand / (J * 8 * 6))


@pytest.mark.parametrize("key, value, message", [
    ("heatmap_reduction", "avg", "heatmap_reduction must be one of"),
    ("mi_estimator", "mine", "mi_estimator must be one of"),
    ("mi_grad_log_every", -1, "mi_grad_log_every"),
])
def test_bad_switch_values_are_config_errors(key, value, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig(**{key: value})


def test_bad_aux_inputs_is_a_config_error(tmp_path):
    from stdpose.engine.config import validate_config

    with pytest.raises(ConfigError, match="data.aux_inputs must be 'labels' or 'predictions'"):
        validate_config({"data": {"aux_inputs": "gt"}})
