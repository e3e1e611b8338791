"""Losses (paper Sec. 3.3 Eq. 4-5 and the MI objective Eq. 2 / Appendix Eq. 11).

L_H: target-weighted MSE between the final heatmaps and the Gaussian targets (joints with weight 0, e.g. unannotated
ears or invisible joints, contribute nothing).

L_MI = -alpha [I(y; F~) - I(F~; F_t)] - beta [I(y; H~) - I(H~; H_t)]      (Eq. 11; alpha = 0.1, beta = 0.01)

The paper does not give its estimator of I. We use a bounded divergence proxy in the FAMI-Pose spirit: each map is
standardised per channel over its spatial positions, divided by a temperature and softmaxed over the positions into
a spatial distribution; I(A; B) := 1 - JS(P_A, P_B) / ln 2, averaged over channels. The Jensen-Shannon divergence is
bounded by ln 2, so every I lies in [0, 1] and L_MI in [-(alpha + beta), alpha + beta]: no term can run away.
Label terms compare J channels: y pooled to the feature grid vs F~ projected to J channels by a 1x1 conv (the model's
`mi_proj`), and y vs H~, both weighted by the target weights. Redundancy terms compare F~ with F_t projected to the
same width d by TFF's input projection, and H~ with H_t; the key-frame side (F_t, H_t) is detached so the term shapes
the temporal modules and does not push the backbone away from its own key-frame evidence.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from stdpose.model.checks import ModelInputError, check_tensor
from stdpose.model.config import ModelConfig

_LN2 = math.log(2.0)


def heatmap_mse(pred: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
    """mean over (B, J, h, w) of w_j * (pred - target)^2 (paper Eq. 4 with ViTPose's target weighting)."""
    weight = target_weight.float()[:, :, None, None]  # (B, J, 1, 1)
    return ((pred.float() - target.float()) ** 2 * weight).mean()  # float32 even under bf16/fp16 autocast


def spatial_distribution(x: torch.Tensor, temperature: float = 1.0, eps: float = 1e-6) -> torch.Tensor:
    """(B, C, h, w) maps -> (B, C, h*w) probabilities: per-channel standardisation, / temperature, softmax."""
    flat = x.float().flatten(2)  # (B, C, h*w)
    mean = flat.mean(dim=2, keepdim=True)
    std = flat.std(dim=2, keepdim=True, unbiased=False)
    return torch.softmax((flat - mean) / (std + eps) / temperature, dim=2)


def js_divergence(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Jensen-Shannon divergence (natural log) along the last axis, in [0, ln 2]."""
    m = 0.5 * (p + q)
    kl_pm = (p * (torch.log(p.clamp_min(eps)) - torch.log(m.clamp_min(eps)))).sum(-1)
    kl_qm = (q * (torch.log(q.clamp_min(eps)) - torch.log(m.clamp_min(eps)))).sum(-1)
    return (0.5 * (kl_pm + kl_qm)).clamp(0.0, _LN2)


def mi_proxy(
    a: torch.Tensor, b: torch.Tensor, temperature: float = 1.0, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Bounded MI estimate in [0, 1] between two (B, C, h, w) stacks with the same C and grid.

    `weight` (B, C) averages channels (e.g. target weights); channels of weight 0 are ignored; all-zero -> 0.
    """
    if a.shape != b.shape:
        raise ModelInputError(f"MI terms need maps of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    info = 1.0 - js_divergence(spatial_distribution(a, temperature), spatial_distribution(b, temperature)) / _LN2
    if weight is None:
        return info.mean()
    weight = weight.to(info.dtype)
    return (info * weight).sum() / weight.sum().clamp_min(1.0)


class StdposeLoss(nn.Module):
    """Total loss L_H + L_MI; returns every term separately for logging.

    Keys: "loss" (total), "heatmap" (L_H), "mi" (L_MI, 0 for variants without MI), and the four MI estimates
    "mi_feat_label" I(y;F~), "mi_feat_key" I(F~;F_t), "mi_hm_label" I(y;H~), "mi_hm_key" I(H~;H_t) (each in [0, 1]).
    """

    def __init__(self, cfg: ModelConfig | dict | None = None):
        super().__init__()
        if cfg is None:
            cfg = ModelConfig()
        elif isinstance(cfg, dict):
            cfg = ModelConfig.from_dict(cfg)
        self.use_mi = cfg.switches.mi
        self.alpha = float(cfg.mi_alpha)
        self.beta = float(cfg.mi_beta)
        self.temperature = float(cfg.mi_temperature)
        self.num_joints = cfg.num_joints

    def forward(
        self, outputs: dict[str, torch.Tensor], target: torch.Tensor, target_weight: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        if "heatmaps" not in outputs:
            raise ModelInputError("loss outputs need a 'heatmaps' entry (the model's final prediction)")
        pred = outputs["heatmaps"]
        b, j, h, w = pred.shape
        check_tensor("target", target, (b, j, h, w))
        check_tensor("target_weight", target_weight, (b, j), floating=False)
        target = target.to(pred.dtype)
        terms = {"heatmap": heatmap_mse(pred, target, target_weight)}
        zero = pred.new_zeros(())
        if not self.use_mi:
            terms.update(mi=zero, mi_feat_label=zero, mi_feat_key=zero, mi_hm_label=zero, mi_hm_key=zero)
        else:
            needed = ("mi_feature_logits", "fused_features", "key_features_proj", "merged_heatmaps", "key_heatmaps")
            missing = [k for k in needed if k not in outputs]
            if missing:
                raise ModelInputError(f"the MI loss needs model outputs {missing}; build the model with variant 'f'")
            tau = self.temperature
            logits = outputs["mi_feature_logits"]  # (B, J, H', W')
            pooled = F.adaptive_avg_pool2d(target, logits.shape[-2:])  # y on the feature grid
            feat_label = mi_proxy(pooled, logits, tau, target_weight)
            feat_key = mi_proxy(outputs["fused_features"], outputs["key_features_proj"].detach(), tau)
            hm_label = mi_proxy(target, outputs["merged_heatmaps"], tau, target_weight)
            hm_key = mi_proxy(outputs["merged_heatmaps"], outputs["key_heatmaps"].detach(), tau)
            mi = -self.alpha * (feat_label - feat_key) - self.beta * (hm_label - hm_key)
            terms.update(mi=mi, mi_feat_label=feat_label, mi_feat_key=feat_key, mi_hm_label=hm_label, mi_hm_key=hm_key)
        terms["loss"] = terms["heatmap"] + terms["mi"]
        return terms
