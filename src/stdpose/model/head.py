"""Heatmap heads.

`HeatmapHead` is the "classical pose detection head ... two layers dedicated to the upsampling process" of paper
Eq. 13 (and ViTPose's / SimpleBaseline's head): two stride-2 deconvolutions (kernel 4) each followed by BatchNorm
and ReLU, then a 1x1 conv to J heatmaps. It is used per frame (H_l, H_t, H_r) and again at the end of STDA.
Module names (`deconv_layers.{0,1,3,4}`, `final_layer`) match ViTPose/mmpose so their weights load directly.

`SimpleFusionHead` stands in for STDA in ablation variants (b) and (c) (paper Table 4): the paper does not say how
those variants turn their fused representation into heatmaps, so we fuse features and heatmaps by convolution and
addition instead of cross-attention (docs/model.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _deconv_stack(in_channels: int, channels: int, num_layers: int = 2) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(num_layers):
        layers += [
            nn.ConvTranspose2d(in_channels if i == 0 else channels, channels, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        ]
    for m in layers:
        if isinstance(m, nn.ConvTranspose2d):
            nn.init.normal_(m.weight, std=0.001)
    return nn.Sequential(*layers)


def match_size(x: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    """Resize (B, C, h', w') maps to `size` (bilinear) when the 4x upsampled grid is not exactly H/4 x W/4.

    Only happens for input sizes that are not multiples of 16 (e.g. 224x168: grid 14x10 -> 56x40, heatmaps 56x42).
    """
    if size is None or tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class HeatmapHead(nn.Module):
    """(B, C, H', W') features -> (B, J, 4H', 4W') heatmaps, resized to `out_size` if that differs."""

    def __init__(self, in_channels: int, channels: int, num_joints: int, out_size: tuple[int, int] | None = None):
        super().__init__()
        self.out_size = None if out_size is None else tuple(out_size)
        self.deconv_layers = _deconv_stack(in_channels, channels)
        self.final_layer = nn.Conv2d(channels, num_joints, kernel_size=1)
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.zeros_(self.final_layer.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # channels-last: the same deconvolutions, faster on CPU (docs/performance.md); the output is made contiguous
        up = self.deconv_layers(features.contiguous(memory_format=torch.channels_last))
        return match_size(self.final_layer(up).contiguous(), self.out_size)


class SimpleFusionHead(nn.Module):
    """Convolutional fusion of a feature map and a heatmap stack, used by ablations (b) and (c) in place of STDA.

    heatmaps = Conv1x1( Deconv(features) + ConvBNReLU(heatmaps) ):
    (b) features = fused F~, heatmaps = key-frame H_t; (c) features = key-frame F_t, heatmaps = merged H~.
    """

    def __init__(self, feat_channels: int, num_joints: int, channels: int, out_size: tuple[int, int]):
        super().__init__()
        self.out_size = tuple(out_size)
        self.deconv_layers = _deconv_stack(feat_channels, channels)
        self.heatmap_branch = nn.Sequential(
            nn.Conv2d(num_joints, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)
        )
        self.final_layer = nn.Conv2d(channels, num_joints, kernel_size=1)
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.zeros_(self.final_layer.bias)

    def forward(self, features: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        up = match_size(self.deconv_layers(features), self.out_size)  # (B, channels, h, w)
        return self.final_layer(up + self.heatmap_branch(heatmaps))


class PixelShuffleHead(nn.Module):
    """(B, C, H', W') features -> (B, J, 4H', 4W') heatmaps at a small fraction of `HeatmapHead`'s cost.

    heatmaps = Conv3x3( ReLU(BN( PixelShuffle_4( Conv1x1(features) ) )) ): the 1x1 conv gives each token the 4x4
    heatmap pixels under it (16J values), the pixel shuffle puts them in place and the 3x3 conv smooths across the
    token borders. A cost option for STDA's final head (ModelConfig.stda_head = "shuffle"; docs/performance.md).
    """

    def __init__(self, in_channels: int, num_joints: int, out_size: tuple[int, int] | None = None,
                 upscale: int = 4):
        super().__init__()
        self.out_size = None if out_size is None else tuple(out_size)
        self.expand = nn.Conv2d(in_channels, num_joints * upscale * upscale, kernel_size=1)
        self.shuffle = nn.PixelShuffle(upscale)
        self.norm = nn.BatchNorm2d(num_joints)
        self.final_layer = nn.Conv2d(num_joints, num_joints, kernel_size=3, padding=1)
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.zeros_(self.final_layer.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        up = self.shuffle(self.expand(features))  # (B, 16J, H', W') -> (B, J, 4H', 4W')
        return match_size(self.final_layer(torch.relu(self.norm(up))), self.out_size)
