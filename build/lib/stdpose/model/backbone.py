"""Plain ViT backbone in the ViTPose layout (paper Sec. 3.1: "we choose ViT as the backbone").

Patch embedding (conv, patch 16, padding configurable: ViTPose uses 2), learned absolute position embedding, no class
token, pre-norm transformer blocks (LN -> MHSA -> residual, LN -> MLP -> residual), a final LayerNorm. Module names
mirror the official ViTPose code (`patch_embed.proj`, `blocks.i.norm1/attn.qkv/attn.proj/norm2/mlp.fc1/mlp.fc2`,
`last_norm`) so checkpoints map one-to-one (see checkpoint.py). Attention runs through
`torch.nn.functional.scaled_dot_product_attention` (flash / memory-efficient kernels on GPU).
The transformer pieces here (Attention, Mlp, Block, DropPath) are reused by TFF and STDA.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LN_EPS = 1e-6  # ViTPose and mmpretrain both build their LayerNorms with eps 1e-6


class DropPath(nn.Module):
    """Stochastic depth: during training drop the whole residual branch of a sample with probability `p`."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class Mlp(nn.Module):
    """Two linear layers with GELU in between (the transformer FFN)."""

    def __init__(self, dim: int, hidden: int, out_dim: int | None = None):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, out_dim or dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (scale 1/sqrt(head_dim), as in ViTPose)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (B, heads, N, C/heads)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    """Pre-norm transformer block: x + MHSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Image -> tokens by a strided conv. ViTPose pads by 2, which for 256x192 still gives a 16x12 grid."""

    def __init__(self, in_chans: int, dim: int, patch_size: int, padding: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)  # (B, C, H', W')


def patch_grid(input_size: tuple[int, int], patch_size: int, padding: int) -> tuple[int, int]:
    """Token grid (H', W') produced by the patch conv for an (H, W) input."""
    h, w = input_size
    return (h + 2 * padding - patch_size) // patch_size + 1, (w + 2 * padding - patch_size) // patch_size + 1


def resize_pos_embed(pos: torch.Tensor, src_grid: tuple[int, int], dst_grid: tuple[int, int]) -> torch.Tensor:
    """Bicubically resample a (1, Hs*Ws, C) grid of position embeddings to (1, Hd*Wd, C)."""
    if tuple(src_grid) == tuple(dst_grid):
        return pos
    c = pos.shape[-1]
    grid = pos.reshape(1, src_grid[0], src_grid[1], c).permute(0, 3, 1, 2)  # (1, C, Hs, Ws)
    grid = F.interpolate(grid.float(), size=dst_grid, mode="bicubic", align_corners=False).to(pos.dtype)
    return grid.permute(0, 2, 3, 1).reshape(1, dst_grid[0] * dst_grid[1], c)


class VisionTransformer(nn.Module):
    """Plain ViT: (N, 3, H, W) images -> (N, C, H', W') feature maps (H' = H/16 for the usual sizes)."""

    def __init__(
        self,
        input_size: tuple[int, int] = (256, 192),
        patch_size: int = 16,
        patch_padding: int = 2,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.input_size = tuple(input_size)
        self.embed_dim = embed_dim
        self.grid = patch_grid(self.input_size, patch_size, patch_padding)
        self.patch_embed = PatchEmbed(3, embed_dim, patch_size, patch_padding)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1], embed_dim))
        rates = [drop_path * i / (depth - 1) for i in range(depth)] if depth > 1 else [drop_path]  # linear rule
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, qkv_bias, r) for r in rates)
        self.last_norm = nn.LayerNorm(embed_dim, eps=LN_EPS)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for m in self.blocks.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> normalised tokens (N, H'*W', C) in row-major grid order."""
        x = self.patch_embed(images).flatten(2).transpose(1, 2)  # (N, H'*W', C)
        x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.last_norm(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.forward_tokens(images)
        n, _, c = tokens.shape
        return tokens.transpose(1, 2).reshape(n, c, self.grid[0], self.grid[1])  # (N, C, H', W')
