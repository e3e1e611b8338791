"""SpatioTemporal Dynamics Aggregation (paper Sec. 3.2 and Appendix A Eq. 12-13).

    H^ = E_patch((H~ * M) (+) H~) + E_pos                       (B, 2J, h, w) -> tokens (B, N', d)
    H^_N = PA_N( ... PA_1(H^, F~) )                              Pose Aggregation blocks
    H_bar = Head(H^_N)                                           deconvolution head -> (B, J, h, w)

Each Pose Aggregation block is pre-LN: self-attention over the heatmap tokens, cross-attention whose queries come
from the heatmap tokens Z and whose keys/values come from the fused features F~ (Eq. 12: Q = Z W_Q, K = F~ W_K,
V = F~ W_V), then an FFN, each with a residual connection. The heatmap patch size is 4, so a (H/4, W/4) heatmap
becomes the same (H/16, W/16) token grid as the backbone's features (docs/model.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stdpose.model.backbone import LN_EPS, Attention, Mlp
from stdpose.model.head import HeatmapHead, PixelShuffleHead


class CrossAttention(nn.Module):
    """Multi-head attention with queries from `x` (B, N, d) and keys/values from `context` (B, M, d) (Eq. 12)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        m = context.shape[1]
        hd = d // self.num_heads
        q = self.q(x).reshape(b, n, self.num_heads, hd).transpose(1, 2)  # (B, heads, N, hd)
        kv = self.kv(context).reshape(b, m, 2, self.num_heads, hd).permute(2, 0, 3, 1, 4)  # (2, B, heads, M, hd)
        out = F.scaled_dot_product_attention(q, kv[0], kv[1])  # softmax(QK^T / sqrt(hd)) V
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class PoseAggregationBlock(nn.Module):
    """Pre-LN self-attention, cross-attention to F~, FFN; each added back residually."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.self_attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.norm_context = nn.LayerNorm(dim, eps=LN_EPS)
        self.cross_attn = CrossAttention(dim, num_heads)
        self.norm3 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, z: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        z = z + self.self_attn(self.norm1(z))
        z = z + self.cross_attn(self.norm2(z), self.norm_context(context))
        return z + self.mlp(self.norm3(z))


class SpatioTemporalDynamicsAggregation(nn.Module):
    """Merged heatmaps H~ (B, J, h, w), mask M (B, 1, h, w) or None, fused features F~ (B, N, d) -> (B, J, h, w).

    With mask None (ablation (d), no DAM) the mask is taken as all ones, so the input keeps its 2J channels and (d)
    differs from (e) only by the DAM.
    """

    def __init__(
        self,
        num_joints: int,
        dim: int,
        depth: int,
        num_heads: int,
        heatmap_size: tuple[int, int],
        head_channels: int,
        patch_size: int = 4,
        mlp_ratio: float = 4.0,
        skip: bool = False,
        head: str = "deconv",
    ):
        super().__init__()
        self.grid = (heatmap_size[0] // patch_size, heatmap_size[1] // patch_size)
        self.patch_embed = nn.Conv2d(2 * num_joints, dim, kernel_size=patch_size, stride=patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1], dim))
        self.blocks = nn.ModuleList(PoseAggregationBlock(dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        # Eq. 13's "classical" deconvolution head, or the cheaper pixel-shuffle head (config stda_head)
        self.head: nn.Module = (
            HeatmapHead(dim, head_channels, num_joints, out_size=heatmap_size)
            if head == "deconv"
            else PixelShuffleHead(dim, num_joints, out_size=heatmap_size, upscale=patch_size)
        )
        # Optional (config stda_skip): a 3x3 conv from the full-resolution STDA input straight to the output.
        self.skip = nn.Conv2d(2 * num_joints, num_joints, 3, padding=1) if skip else None
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for m in self.blocks.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def aggregate_tokens(self, merged: torch.Tensor, mask: torch.Tensor | None, fused: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """The Pose Aggregation part: (H^_N as a (B, d, h/4, w/4) map, the stacked (B, 2J, h, w) input)."""
        masked = merged if mask is None else merged * mask
        stacked = torch.cat([masked, merged], dim=1)  # (B, 2J, h, w)
        x = self.patch_embed(stacked)  # (B, d, h/4, w/4)
        b, d, gh, gw = x.shape
        z = x.flatten(2).transpose(1, 2) + self.pos_embed  # (B, N', d)
        for block in self.blocks:
            z = block(z, fused)
        return self.norm(z).transpose(1, 2).reshape(b, d, gh, gw), stacked

    def forward(self, merged: torch.Tensor, mask: torch.Tensor | None, fused: torch.Tensor) -> torch.Tensor:
        z, stacked = self.aggregate_tokens(merged, mask, fused)
        out = self.head(z)  # (B, J, h, w), Eq. 13
        return out if self.skip is None else out + self.skip(stacked)
