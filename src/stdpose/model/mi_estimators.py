"""Mutual-information estimators for the MI objective (paper Eq. 2 / Appendix Eq. 11), selected by
`ModelConfig.mi_estimator`.

- "proxy": the FAMI-Pose-style bounded divergence proxy: each map is standardised per channel, softmaxed over its
  positions, and I(A; B) := 1 - JS(P_A, P_B) / ln 2, averaged over same-index channels (in [0, 1]). It is cheap and
  has no parameters, but it is not an MI estimate: a channel-permuted or negated copy of A scores like noise.
- "jsd": Deep InfoMax's Jensen-Shannon lower bound (Hjelm et al. 2018), I_JSD = E_pos[-sp(-T)] - E_neg[sp(T)],
  shifted by ln 4 so that independent inputs score 0 and a perfect critic ln 4 (sp = softplus).
- "infonce": the InfoNCE lower bound as in CMC (Tian et al.), I_NCE = log B + mean_i [T_ii - logsumexp_j T_ij],
  in [0, log B].
The two bounds use a small learned critic T(a, b) = <phi(a), psi(b)> / tau + c per MI term: each side is a 1x1 conv,
pooled to a 4x4 grid (keeps coarse location, which is what heatmaps carry), flattened and mapped by a linear layer
to a unit vector. Negatives are the other samples of the batch (pairs (a_i, b_j), j != i).

A critic is trained to MAXIMISE its bound on detached inputs (`critic_objective`), while the network sees the bound
through a frozen copy of the critic's weights (`estimate(..., frozen=True)`), so a term the network minimises (the
redundancy terms) never trains the critic to be worse: the usual adversarial use of a lower bound (note that
minimising a lower bound does not bound the true MI from above).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from stdpose.model.checks import ModelInputError

ESTIMATORS = ("proxy", "jsd", "infonce")
_LN2 = math.log(2.0)
_LN4 = math.log(4.0)


# ------------------------------------------------------------------------------------------------ proxy


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
    """Bounded MI proxy in [0, 1] between two (B, C, h, w) stacks with the same C and grid.

    `weight` (B, C) averages channels (e.g. target weights); channels of weight 0 are ignored; all-zero -> 0.
    """
    if a.shape != b.shape:
        raise ModelInputError(f"MI terms need maps of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    info = 1.0 - js_divergence(spatial_distribution(a, temperature), spatial_distribution(b, temperature)) / _LN2
    if weight is None:
        return info.mean()
    weight = weight.to(info.dtype)
    return (info * weight).sum() / weight.sum().clamp_min(1.0)


# ------------------------------------------------------------------------------------------------ critics


class _Embed(nn.Module):
    """(B, C, h, w) -> (B, dim) unit vectors: per-channel standardisation over positions (scale-free, zero-mean:
    all-positive heatmaps would otherwise embed to one direction and stall the JSD bound), 1x1 conv, ReLU,
    adaptive pool to `grid`, flatten, linear."""

    def __init__(self, channels: int, hidden: int, dim: int, grid: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, hidden, kernel_size=1)
        self.grid = grid
        self.fc = nn.Linear(hidden * grid * grid, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        x = (x - x.mean(dim=(2, 3), keepdim=True)) / (x.std(dim=(2, 3), keepdim=True, unbiased=False) + 1e-6)
        z = F.adaptive_avg_pool2d(F.relu(self.conv(x)), self.grid)  # (B, hidden, g, g)
        return F.normalize(self.fc(z.flatten(1)), dim=1)  # (B, dim)


class BilinearCritic(nn.Module):
    """Separable critic T(a_i, b_j) = <phi(a_i), psi(b_j)> / tau + c for every pair of a batch: (B, B) scores.
    The learned offset c lets the JSD bound push negatives (cosines near 0) below zero; InfoNCE ignores it."""

    def __init__(self, channels_a: int, channels_b: int, hidden: int = 16, dim: int = 32, grid: int = 4,
                 temperature: float = 0.1):
        super().__init__()
        self.phi = _Embed(channels_a, hidden, dim, grid)
        self.psi = _Embed(channels_b, hidden, dim, grid)
        self.temperature = float(temperature)
        self.offset = nn.Parameter(torch.zeros(()))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.phi(a) @ self.psi(b).t() / self.temperature + self.offset  # (B, B); diagonal = positives


def infonce_bound(scores: torch.Tensor) -> torch.Tensor:
    """InfoNCE lower bound from (B, B) critic scores with the positives on the diagonal; in [0, log B]."""
    b = scores.shape[0]
    return math.log(b) + (scores.diagonal() - torch.logsumexp(scores, dim=1)).mean()


def jsd_bound(scores: torch.Tensor) -> torch.Tensor:
    """Deep InfoMax JSD bound from (B, B) critic scores (diagonal = positives, rest = negatives), + ln 4 so that
    an uninformative critic (all scores 0) gives 0."""
    b = scores.shape[0]
    positive = -F.softplus(-scores.diagonal()).mean()
    off = ~torch.eye(b, dtype=torch.bool, device=scores.device)
    negative = F.softplus(scores[off]).mean()
    return positive - negative + _LN4


class CriticEstimator(nn.Module):
    """A critic-based MI lower bound between two map stacks ("jsd" or "infonce")."""

    def __init__(self, kind: str, channels_a: int, channels_b: int, **critic_kwargs):
        super().__init__()
        if kind not in ("jsd", "infonce"):
            raise ModelInputError(f"critic estimators are 'jsd' or 'infonce', got {kind!r}")
        self.kind = kind
        self.critic = BilinearCritic(channels_a, channels_b, **critic_kwargs)

    def bound(self, scores: torch.Tensor) -> torch.Tensor:
        return infonce_bound(scores) if self.kind == "infonce" else jsd_bound(scores)

    def estimate(self, a: torch.Tensor, b: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        """The bound on a batch (needs B >= 2: the negatives come from the batch). `frozen`: the critic's weights
        take no gradient (the network's view of the term); the inputs keep theirs."""
        if a.shape[0] != b.shape[0] or a.shape[-2:] != b.shape[-2:]:
            raise ModelInputError(f"MI terms need maps of one batch and grid, got {tuple(a.shape)} and "
                                  f"{tuple(b.shape)}")
        if a.shape[0] < 2:
            return a.new_zeros(())  # no negatives: no estimate
        if frozen:
            params = {k: v.detach() for k, v in self.critic.named_parameters()}
            scores = functional_call(self.critic, params, (a, b))
        else:
            scores = self.critic(a, b)
        return self.bound(scores)

    def critic_objective(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The bound on detached inputs: maximising it trains only the critic."""
        return self.estimate(a.detach(), b.detach())
