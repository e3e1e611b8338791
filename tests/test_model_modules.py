"""Unit tests of the building blocks: backbone, head, modified sigmoid, DAM, TKS, TFF, STDA."""

from __future__ import annotations

import math

import pytest
import torch

from stdpose.model import (
    DynamicAwareMask,
    HeatmapHead,
    ModelConfig,
    SpatioTemporalDynamicsAggregation,
    STDPose,
    TemporalFeatureFusion,
    TemporalKeypointsSynthesis,
    VisionTransformer,
    modified_sigmoid,
)
from stdpose.model.backbone import Attention
from stdpose.model.stda import CrossAttention


def gaussian(h: int, w: int, cy: float, cx: float, sigma: float = 1.5) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    return torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * sigma**2))


# ------------------------------------------------------------------------------------------- backbone
@pytest.mark.parametrize(("size", "grid"), [((224, 168), (14, 10)), ((256, 192), (16, 12)), ((384, 288), (24, 18))])
def test_backbone_grid_and_head_size_for_paper_input_sizes(size, grid):
    cfg = ModelConfig(backbone="nano", input_size=list(size), depth=1)
    assert cfg.grid_size == grid
    vit = VisionTransformer(size, embed_dim=32, depth=1, num_heads=2)
    assert vit.grid == grid and vit.patch_embed.proj.padding == (2, 2)
    feats = vit(torch.randn(1, 3, *size))
    assert feats.shape == (1, 32, *grid)
    head = HeatmapHead(32, 16, 17, out_size=cfg.heatmap_size)
    assert head(feats).shape == (1, 17, size[0] // 4, size[1] // 4)


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [("tiny", 5.3e6, 5.8e6), ("small", 21e6, 22.5e6), ("base", 85e6, 87e6), ("large", 300e6, 306e6)],
)
def test_backbone_parameter_counts_match_standard_vits(name, low, high):
    cfg = ModelConfig(backbone=name)
    with torch.device("meta"):
        vit = VisionTransformer(cfg.input_size, embed_dim=cfg.width, depth=cfg.vit_depth, num_heads=cfg.vit_heads)
    assert low < sum(p.numel() for p in vit.parameters()) < high


def test_attention_matches_explicit_softmax_formula():
    torch.manual_seed(0)
    attn = Attention(16, 4)
    x = torch.randn(2, 7, 16)
    qkv = attn.qkv(x).reshape(2, 7, 3, 4, 4).permute(2, 0, 3, 1, 4)
    weights = torch.softmax(qkv[0] @ qkv[1].transpose(-1, -2) / 2.0, dim=-1)  # sqrt(head_dim = 4) = 2
    expected = attn.proj((weights @ qkv[2]).transpose(1, 2).reshape(2, 7, 16))
    torch.testing.assert_close(attn(x), expected, atol=1e-5, rtol=1e-5)


def test_cross_attention_takes_queries_from_x_and_keys_values_from_context():
    """Eq. 12: Atten(Q, K, V) = softmax(Q K^T / sqrt(D)) V with Q = Z W_Q, K = F~ W_K, V = F~ W_V."""
    torch.manual_seed(1)
    ca = CrossAttention(8, 1)
    z, ctx = torch.randn(2, 5, 8), torch.randn(2, 9, 8)
    q = ca.q(z)
    k, v = ca.kv(ctx).split(8, dim=-1)
    expected = ca.proj(torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), dim=-1) @ v)
    torch.testing.assert_close(ca(z, ctx), expected, atol=1e-5, rtol=1e-5)
    assert ca(z, ctx).shape == (2, 5, 8)  # as many outputs as queries, whatever the context length


# ------------------------------------------------------------------------------------------- DAM
@pytest.mark.parametrize(("k", "theta"), [(1.5, 0.5), (0.5, 0.0), (5.0, 0.2), (2.0, 0.7)])
def test_modified_sigmoid_matches_eq3_at_known_points(k, theta):
    xs = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.25, 0.5, 1.0, 3.0])
    expected = torch.tensor([1.0 / (1.0 + math.exp(-k * (abs(float(x)) - theta))) for x in xs])
    torch.testing.assert_close(modified_sigmoid(xs, k, theta), expected)


def test_modified_sigmoid_paper_values():
    # k = 1.5, theta = 0.5: small but non-zero at 0, exactly 1/2 at |x| = theta, symmetric in x
    assert modified_sigmoid(torch.tensor(0.0)).item() == pytest.approx(1 / (1 + math.exp(0.75)))
    assert modified_sigmoid(torch.tensor(0.5)).item() == pytest.approx(0.5)
    assert modified_sigmoid(torch.tensor(-0.5)).item() == pytest.approx(0.5)
    assert modified_sigmoid(torch.tensor(-0.9)).item() == pytest.approx(modified_sigmoid(torch.tensor(0.9)).item())
    assert 0.3 < modified_sigmoid(torch.tensor(0.0)).item() < 0.33


def test_dam_mask_averages_one_and_is_flat_without_motion():
    dam = DynamicAwareMask(17)
    torch.manual_seed(2)
    with torch.no_grad():  # arbitrary learned state
        dam.compress.weight.normal_()
        dam.w_f.fill_(2.0)
        dam.w_b.fill_(-0.5)
    left, key, right = torch.rand(3, 2, 17, 16, 12).unbind(0)
    mask = dam(left, key, right)
    assert mask.shape == (2, 1, 16, 12)
    assert (mask > 0).all()
    torch.testing.assert_close(mask.sum(dim=(1, 2, 3)), torch.full((2,), 16.0 * 12))
    torch.testing.assert_close(mask.mean(dim=(1, 2, 3)), torch.ones(2))
    static = torch.rand(2, 17, 16, 12)
    torch.testing.assert_close(dam(static, static, static), torch.ones(2, 1, 16, 12))


def test_dam_mask_is_larger_where_the_heatmaps_moved():
    dam = DynamicAwareMask(17)
    h, w = 32, 24
    left = torch.zeros(1, 17, h, w)
    key = torch.zeros(1, 17, h, w)
    left[0, 9] = gaussian(h, w, 8, 6)  # the left wrist moves from (8, 6) to (20, 16)
    key[0, 9] = gaussian(h, w, 20, 16)
    right = key.clone()
    for j in (0, 5, 6):  # joints that do not move
        left[0, j] = key[0, j] = right[0, j] = gaussian(h, w, 4, 12)
    mask = dam(left, key, right)[0, 0]
    background = mask[h - 2, 1]
    assert mask[8, 6].item() > background.item() * 1.02 and mask[20, 16].item() > background.item() * 1.02
    assert mask[4, 12].item() == pytest.approx(background.item(), rel=1e-5)  # static joints do not light up
    # a stronger slope k sharpens the contrast between moving and still regions
    sharp = DynamicAwareMask(17, k=5.0)(left, key, right)[0, 0]
    assert sharp[8, 6] / sharp[h - 2, 1] > mask[8, 6] / background


# ------------------------------------------------------------------------------------------- TKS / TFF
def test_tks_merges_each_joint_independently_before_mixing():
    torch.manual_seed(3)
    tks = TemporalKeypointsSynthesis(17, per_joint_channels=4)
    heatmaps = torch.rand(2, 3, 17, 16, 12)
    assert tks(heatmaps).shape == (2, 17, 16, 12)

    def per_joint(x):
        return tks.temporal(x.transpose(1, 2).reshape(2, 51, 16, 12))

    changed = heatmaps.clone()
    changed[:, 0, 7] += 1.0  # only joint 7's left heatmap changes
    delta = (per_joint(changed) - per_joint(heatmaps)).abs().amax(dim=(0, 2, 3))
    assert delta[7] > 0
    assert torch.all(delta[torch.arange(17) != 7] == 0)
    # ... while the full module mixes joints spatially (Eq. 7)
    full_delta = (tks(changed) - tks(heatmaps)).abs().amax(dim=(0, 2, 3))
    assert (full_delta[torch.arange(17) != 7] > 0).any()


def test_tff_fuses_all_three_frames():
    torch.manual_seed(4)
    tff = TemporalFeatureFusion(in_dim=32, dim=16, num_tokens=12, depth=2, num_heads=2)
    feats = torch.randn(2, 3, 32, 4, 3)
    fused, key_tokens = tff(feats)
    assert fused.shape == (2, 12, 16) and key_tokens.shape == (2, 12, 16)
    torch.testing.assert_close(key_tokens, tff.proj(feats[:, 1].flatten(2).transpose(1, 2)))
    for frame in (0, 2):  # the auxiliary frames reach F~
        other = feats.clone()
        other[:, frame] += 1.0
        assert not torch.allclose(tff(other)[0], fused)


# ------------------------------------------------------------------------------------------- STDA
@pytest.mark.parametrize(("size", "grid"), [((256, 192), (16, 12)), ((224, 168), (14, 10))])
def test_stda_token_grid_matches_backbone_grid(size, grid):
    cfg = ModelConfig(backbone="nano", input_size=list(size))
    stda = SpatioTemporalDynamicsAggregation(17, 16, 1, 2, cfg.heatmap_size, head_channels=8)
    assert stda.grid == grid == cfg.grid_size
    merged = torch.rand(1, 17, *cfg.heatmap_size)
    out = stda(merged, None, torch.randn(1, grid[0] * grid[1], 16))
    assert out.shape == (1, 17, *cfg.heatmap_size)


def test_stda_without_mask_equals_mask_of_ones_and_uses_the_mask():
    torch.manual_seed(5)
    stda = SpatioTemporalDynamicsAggregation(17, 16, 2, 2, (16, 12), head_channels=8).eval()
    with torch.no_grad():
        stda.head.final_layer.weight.normal_()  # make the output sensitive
    merged, fused = torch.rand(2, 17, 16, 12), torch.randn(2, 12, 16)
    ones = torch.ones(2, 1, 16, 12)
    torch.testing.assert_close(stda(merged, None, fused), stda(merged, ones, fused))
    mask = torch.rand(2, 1, 16, 12) * 2
    assert not torch.allclose(stda(merged, mask, fused), stda(merged, None, fused))
    other = torch.randn(2, 12, 16)  # (a constant shift would be removed by the context LayerNorm)
    assert not torch.allclose(stda(merged, None, other), stda(merged, None, fused))  # cross-attention to F~


def test_full_model_module_inventory_per_variant():
    expected = {
        "a": set(),
        "b": {"tff", "fusion_head"},
        "c": {"tks", "fusion_head"},
        "d": {"tff", "tks", "stda"},
        "e": {"tff", "tks", "dam", "stda"},
        "f": {"tff", "tks", "dam", "stda", "mi_proj"},
    }
    for variant, modules in expected.items():
        model = STDPose(ModelConfig(backbone="nano", input_size=[64, 48], variant=variant))
        present = {n for n in ("tff", "tks", "dam", "stda", "fusion_head", "mi_proj") if getattr(model, n) is not None}
        assert present == modules, variant
