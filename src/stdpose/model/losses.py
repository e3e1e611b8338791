"""Losses (paper Sec. 3.3 Eq. 4-5 and the MI objective Eq. 2 / Appendix Eq. 11).

L_H: target-weighted squared error between the final heatmaps and the Gaussian targets (joints with weight 0, e.g.
unannotated ears or invisible joints, contribute nothing). `ModelConfig.heatmap_reduction` says how it is reduced:
"sum" is Eq. 4 as written (the squared L2 norm of the heatmap difference: a sum over joints and pixels per sample,
averaged over the batch); "mean" also averages over joints and pixels (ViTPose/mmpose's MSE), J*h*w times smaller,
which makes the fixed MI weights below act on a different scale (docs/model.md, "Loss balance").

L_MI = -alpha [I(y; F~) - I(F~; F_t)] - beta [I(y; H~) - I(H~; H_t)]      (Eq. 11; alpha = 0.1, beta = 0.01)

I is estimated by `ModelConfig.mi_estimator` (stdpose.model.mi_estimators): the FAMI-Pose-style "proxy", or a
critic-based lower bound "jsd" (Deep InfoMax) / "infonce" (CMC) with one small learned critic per term, held here.
Label terms compare y with F~ (through the model's 1x1 projection `mi_proj`, J channels; y pooled to the feature
grid) and y with H~; y is weighted by the target weights. Redundancy terms compare F~ with F_t (TFF's projection to
width d) and H~ with H_t.

Gradient flow (our choice; the paper does not say): the redundancy terms shape the temporal modules only. The key
side F_t / H_t is held fixed (detached) and the temporal side is F~ / H~ recomputed by TFF / TKS from detached
inputs (`mi_fused_features`, `mi_merged_heatmaps` from the model), so no redundancy gradient reaches the backbone or
the head: lowering I(F~;F_t) cannot be done by degrading the per-frame features the key frame also relies on. The
label terms reach everything upstream of F~ / H~, like an auxiliary supervised loss. Critics are trained on detached
inputs to maximise their bound (the "mi_critic" term, which touches only critic weights) and the network sees the
bound through frozen critic weights.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from stdpose.model.checks import ModelInputError, check_tensor
from stdpose.model.config import ModelConfig
from stdpose.model.mi_estimators import CriticEstimator, js_divergence, mi_proxy, spatial_distribution

__all__ = ["StdposeLoss", "heatmap_mse", "heatmap_loss", "mi_proxy", "js_divergence", "spatial_distribution",
           "gradient_norm_ratio", "MI_TERMS"]

MI_TERMS = ("mi_feat_label", "mi_feat_key", "mi_hm_label", "mi_hm_key")


def heatmap_mse(pred: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
    """mean over (B, J, h, w) of w_j * (pred - target)^2 (ViTPose's target-weighted MSE)."""
    return heatmap_loss(pred, target, target_weight, "mean")


def heatmap_loss(pred: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor,
                 reduction: str = "sum") -> torch.Tensor:
    """w_j * (pred - target)^2 summed over (J, h, w) and averaged over B ("sum", paper Eq. 4) or averaged over
    (B, J, h, w) ("mean"); float32 even under bf16/fp16 autocast."""
    weight = target_weight.float()[:, :, None, None]  # (B, J, 1, 1)
    err = (pred.float() - target.float()) ** 2 * weight
    if reduction == "mean":
        return err.mean()
    if reduction == "sum":
        return err.flatten(1).sum(1).mean()
    raise ModelInputError(f"heatmap reduction must be 'mean' or 'sum', got {reduction!r}")


def gradient_norm_ratio(numerator: torch.Tensor, denominator: torch.Tensor,
                        params: Iterable[torch.nn.Parameter]) -> float:
    """||d numerator / d params|| / ||d denominator / d params|| (L2 over all `params`; graph kept). NaN when
    `denominator` has no gradient there; 0 when `numerator` has none (e.g. the MI term on the backbone)."""
    params = [p for p in params if p.requires_grad]
    if not params:
        return float("nan")

    def norm(value: torch.Tensor) -> float:
        if not value.requires_grad:
            return 0.0
        grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
        return float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None) + 0.0))

    den = norm(denominator)
    return norm(numerator) / den if den > 0 else float("nan")


class StdposeLoss(nn.Module):
    """Total loss L_H + L_MI (+ the critics' own objective); returns every term separately for logging.

    Keys: "loss" (what is minimised), "heatmap" (L_H), "mi" (L_MI, 0 for variants without MI), the four MI estimates
    "mi_feat_label" I(y;F~), "mi_feat_key" I(F~;F_t), "mi_hm_label" I(y;H~), "mi_hm_key" I(H~;H_t), and
    "mi_critic" (minus the sum of the critics' bounds on detached inputs; 0 for the proxy). "loss" = "heatmap" +
    "mi" + "mi_critic"; "mi_critic" only moves critic weights.
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
        self.reduction = cfg.heatmap_reduction
        self.estimator = cfg.mi_estimator
        self.critics: nn.ModuleDict | None = None
        if self.use_mi and self.estimator != "proxy":
            j, d = cfg.num_joints, cfg.d_temporal
            self.critics = nn.ModuleDict({
                "mi_feat_label": CriticEstimator(self.estimator, j, j),
                "mi_feat_key": CriticEstimator(self.estimator, d, d),
                "mi_hm_label": CriticEstimator(self.estimator, j, j),
                "mi_hm_key": CriticEstimator(self.estimator, j, j),
            })

    def _estimate(self, name: str, a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor | None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """(estimate the network sees, critic objective to maximise) for one MI term."""
        if self.critics is None:
            return mi_proxy(a, b, self.temperature, weight), a.new_zeros(())
        if weight is not None:  # unannotated joints carry no label: zero maps
            a = a * weight.to(a.dtype)[:, :, None, None]
        critic = self.critics[name]
        return critic.estimate(a, b, frozen=True), critic.critic_objective(a, b)

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
        terms = {"heatmap": heatmap_loss(pred, target, target_weight, self.reduction)}
        zero = pred.new_zeros(())
        if not self.use_mi:
            terms.update(mi=zero, mi_critic=zero, **{k: zero for k in MI_TERMS})
        else:
            needed = ("mi_feature_logits", "fused_features", "key_features_proj", "merged_heatmaps", "key_heatmaps")
            missing = [k for k in needed if k not in outputs]
            if missing:
                raise ModelInputError(f"the MI loss needs model outputs {missing}; build the model with variant 'f'")
            logits = outputs["mi_feature_logits"]  # (B, J, H', W')
            pooled = F.adaptive_avg_pool2d(target, logits.shape[-2:])  # y on the feature grid
            fused_fixed = outputs.get("mi_fused_features", outputs["fused_features"])  # F~ from detached inputs
            merged_fixed = outputs.get("mi_merged_heatmaps", outputs["merged_heatmaps"])  # H~ likewise
            pairs = {
                "mi_feat_label": (pooled, logits, target_weight),
                "mi_feat_key": (fused_fixed, outputs["key_features_proj"].detach(), None),
                "mi_hm_label": (target, outputs["merged_heatmaps"], target_weight),
                "mi_hm_key": (merged_fixed, outputs["key_heatmaps"].detach(), None),
            }
            critic_total = zero
            for name, (a, b_, weight) in pairs.items():
                terms[name], objective = self._estimate(name, a, b_, weight)
                critic_total = critic_total - objective
            mi = -self.alpha * (terms["mi_feat_label"] - terms["mi_feat_key"]) - self.beta * (
                terms["mi_hm_label"] - terms["mi_hm_key"])
            terms.update(mi=mi, mi_critic=critic_total)
        terms["loss"] = terms["heatmap"] + terms["mi"] + terms["mi_critic"]
        return terms
