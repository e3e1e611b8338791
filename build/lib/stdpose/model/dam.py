"""Dynamic-Aware Mask (paper Sec. 3.2, Eq. 3).

    R_f = H_t - H_l,  R_b = H_r - H_t                                 forward / backward pose residuals
    Sig_m(x, k, theta) = 1 / (1 + exp(-k (|x| - theta)))              Eq. 3, elementwise, k = 1.5, theta = 0.5
    M = h*w * softmax_{h*w}( w_f * Conv1x1(Sig_m(R_f)) + w_b * Conv1x1(Sig_m(R_b)) )

The J -> 1 channel compression is one shared 1x1 conv (no bias: a constant shift is removed by the softmax anyway)
initialised to the channel mean, and w_f, w_b are learnable scalars (init 1). The paper only says "softmax"; we take
it over the h*w positions and multiply by h*w so that the mask averages exactly 1: at initialisation H~ * M keeps the
scale of H~, and regions that moved get weights above 1 (docs/model.md).
"""

from __future__ import annotations

import torch
from torch import nn


def modified_sigmoid(x: torch.Tensor, k: float = 1.5, theta: float = 0.5) -> torch.Tensor:
    """Sig_m(x, k, theta) = 1 / (1 + exp(-k (|x| - theta))) (paper Eq. 3): symmetric in x, small but non-zero at 0."""
    return torch.sigmoid(k * (x.abs() - theta))


class DynamicAwareMask(nn.Module):
    """Heatmaps H_l, H_t, H_r (B, J, h, w) -> mask M (B, 1, h, w) with mean 1 over the h*w positions."""

    def __init__(self, num_joints: int, k: float = 1.5, theta: float = 0.5):
        super().__init__()
        self.k = float(k)
        self.theta = float(theta)
        self.compress = nn.Conv2d(num_joints, 1, kernel_size=1, bias=False)
        nn.init.constant_(self.compress.weight, 1.0 / num_joints)
        self.w_f = nn.Parameter(torch.ones(()))
        self.w_b = nn.Parameter(torch.ones(()))

    def logits(self, left: torch.Tensor, key: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """The weighted motion map before the softmax, (B, 1, h, w)."""
        forward = modified_sigmoid(key - left, self.k, self.theta)
        backward = modified_sigmoid(right - key, self.k, self.theta)
        return self.w_f * self.compress(forward) + self.w_b * self.compress(backward)

    def forward(self, left: torch.Tensor, key: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        logits = self.logits(left, key, right)
        b, _, h, w = logits.shape
        mask = torch.softmax(logits.reshape(b, h * w).float(), dim=1) * (h * w)  # float32 even under autocast
        return mask.reshape(b, 1, h, w)
