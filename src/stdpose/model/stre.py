"""SpatioTemporal Representation Encoder (paper Sec. 3.1): Temporal Feature Fusion and Temporal Keypoints Synthesis.

TFF (Sec. 3.1, "Temporal Feature Fusion"): project each frame's tokens from the backbone width C to the temporal
width d, add a learnable position embedding PE (one per frame and token position), concatenate the three frames
(B, 3N, d), run cascaded transformer blocks, then an MLP over each position's three frame tokens -> F~ (B, N, d).

TKS (Appendix A, Eq. 6-7):
    H^ = concat_j Conv(H_l^j (+) H_t^j (+) H_r^j)            (per joint: grouped conv, groups = J)
    H~ = Conv( Conv(H^) (+) H_l (+) H_t (+) H_r )            (inner Conv merges all joints spatially)
"""

from __future__ import annotations

import torch
from torch import nn

from stdpose.model.backbone import LN_EPS, Block, Mlp


class TemporalFeatureFusion(nn.Module):
    """(B, 3, C, H', W') frame features [left, key, right] -> fused F~ (B, N, d) and the key tokens projected to d."""

    def __init__(self, in_dim: int, dim: int, num_tokens: int, depth: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.proj = nn.Linear(in_dim, dim)
        self.frame_pos = nn.Parameter(torch.zeros(1, 3, num_tokens, dim))  # PE, one per frame and position
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.fuse = Mlp(3 * dim, dim, dim)  # the "Multilayer Perceptron ... to aggregate all the encoded features"
        nn.init.trunc_normal_(self.frame_pos, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, c, gh, gw = features.shape
        n = gh * gw
        tokens = self.proj(features.flatten(3).transpose(2, 3))  # (B, 3, N, d)
        key_tokens = tokens[:, 1]  # (B, N, d): F_t in the temporal width, used by the MI loss
        x = (tokens + self.frame_pos).reshape(b, t * n, -1)  # (B, 3N, d)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x).reshape(b, t, n, -1).permute(0, 2, 1, 3).reshape(b, n, -1)  # (B, N, 3d)
        return self.fuse(x), key_tokens


class TemporalKeypointsSynthesis(nn.Module):
    """(B, 3, J, h, w) heatmaps [left, key, right] -> merged heatmaps H~ (B, J, h, w) (Appendix A Eq. 6-7)."""

    def __init__(self, num_joints: int, per_joint_channels: int = 8):
        super().__init__()
        j, c = num_joints, per_joint_channels
        # Eq. 6: each joint's three temporal heatmaps are merged on their own (groups=J keeps joints independent).
        self.temporal = nn.Sequential(
            nn.Conv2d(3 * j, j * c, 3, padding=1, groups=j),
            nn.ReLU(inplace=True),
            nn.Conv2d(j * c, j, 3, padding=1, groups=j),
        )
        # Eq. 7 inner Conv: merge all joints spatially.
        self.spatial = nn.Sequential(nn.Conv2d(j, j, 3, padding=1), nn.ReLU(inplace=True))
        # Eq. 7 outer Conv: final synthesis from Conv(H^) and the three input heatmaps.
        self.synthesis = nn.Sequential(
            nn.Conv2d(4 * j, 4 * j, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(4 * j, j, 1)
        )

    def forward(self, heatmaps: torch.Tensor) -> torch.Tensor:
        b, t, j, h, w = heatmaps.shape
        per_joint = heatmaps.transpose(1, 2).reshape(b, j * t, h, w)  # (B, 3J, h, w) as [l^1, t^1, r^1, l^2, ...]
        # channels-last: the same convolutions, 1.7x faster on CPU (benchmarks/tks_layout.py)
        merged = self.temporal(per_joint.contiguous(memory_format=torch.channels_last))  # H^ (B, J, h, w)
        stacked = torch.cat([self.spatial(merged), heatmaps.reshape(b, t * j, h, w)], dim=1)  # (B, 4J, h, w)
        return self.synthesis(stacked).contiguous()
