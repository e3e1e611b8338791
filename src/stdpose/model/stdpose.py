"""The assembled STDPose network (paper Fig. 2, Sec. 3) and its Table 4 ablation variants.

    frames (B, 3, 3, H, W) [left, key, right]
      -> backbone + head per frame: F_l, F_t, F_r (B, C, H/16, W/16) and H_l, H_t, H_r (B, J, H/4, W/4)
      -> TFF(F_l, F_t, F_r) = F~ ;  TKS(H_l', H_t, H_r') = H~ ;  DAM(H_l', H_t, H_r') = M
      -> STDA(H~, M, F~) = final heatmaps (B, J, H/4, W/4)

H_l', H_r' are the auxiliary LABEL heatmaps in propagation (`aux_heatmaps` given) and the head's predictions for the
neighbours in estimation (`aux_heatmaps=None`). `forward` is exactly `aggregate(encode_frames(...))`, so propagation
over a video can encode each frame once and reuse it for several key frames.

Variants (ModelConfig.variant): (a) backbone + head on the key frame; (b) TFF + simple fusion head; (c) TKS + simple
fusion head; (d) TFF + TKS + STDA; (e) + DAM; (f) + MI loss (adds the 1x1 projection of F~ to J channels that the
MI label term needs). Variant (a) still encodes all three frames so every variant returns the same tensors.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from stdpose.model.backbone import VisionTransformer
from stdpose.model.checks import ModelInputError, check_tensor
from stdpose.model.config import ModelConfig
from stdpose.model.dam import DynamicAwareMask
from stdpose.model.head import HeatmapHead, SimpleFusionHead
from stdpose.model.stda import SpatioTemporalDynamicsAggregation
from stdpose.model.stre import TemporalFeatureFusion, TemporalKeypointsSynthesis

log = logging.getLogger(__name__)


class STDPose(nn.Module):
    """STDPose; see the module docstring for the data flow and `aggregate` for the returned tensors."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        sw = cfg.switches
        j, c, d = cfg.num_joints, cfg.width, cfg.d_temporal
        hm = cfg.heatmap_size
        self.backbone = VisionTransformer(
            input_size=cfg.input_size,
            patch_size=cfg.patch_size,
            patch_padding=cfg.patch_padding,
            embed_dim=c,
            depth=cfg.vit_depth,
            num_heads=cfg.vit_heads,
            mlp_ratio=cfg.mlp_ratio,
            qkv_bias=cfg.qkv_bias,
            drop_path=cfg.drop_path,
        )
        self.head = HeatmapHead(c, cfg.head_width, j, out_size=hm)
        grid = self.backbone.grid
        self.tff = (
            TemporalFeatureFusion(c, d, grid[0] * grid[1], cfg.tff_depth, cfg.heads_temporal, cfg.mlp_ratio_temporal)
            if sw.tff
            else None
        )
        self.tks = TemporalKeypointsSynthesis(j, cfg.tks_channels) if sw.tks else None
        self.dam = DynamicAwareMask(j, cfg.dam_k, cfg.dam_theta) if sw.dam else None
        self.stda = (
            SpatioTemporalDynamicsAggregation(
                j, d, cfg.stda_depth, cfg.heads_temporal, hm, cfg.stda_head_width, mlp_ratio=cfg.mlp_ratio_temporal,
                skip=cfg.stda_skip, head=cfg.stda_head,
            )
            if sw.stda
            else None
        )
        self.fusion_head = None
        if not sw.stda and (sw.tff or sw.tks):
            self.fusion_head = SimpleFusionHead(d if sw.tff else c, j, cfg.head_width, hm)
        self.mi_proj = nn.Conv2d(d, j, kernel_size=1) if sw.mi else None
        self.load_report: Any = None  # set by build_model when a pretrained checkpoint was loaded

    # ------------------------------------------------------------------ per frame
    def encode_frames(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Backbone + head on independent frames: (N, 3, H, W) -> features (N, C, H', W'), heatmaps (N, J, h, w)."""
        h, w = self.cfg.input_size
        check_tensor("images", images, ("N", 3, h, w))
        features = self.backbone(images)
        return {"features": features, "heatmaps": self.head(features)}

    # ------------------------------------------------------------------ temporal part
    def aggregate(
        self,
        features: torch.Tensor,
        heatmaps: torch.Tensor,
        aux_heatmaps: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Temporal modules on encoded triplets [left, key, right].

        features (B, 3, C, H', W'), heatmaps (B, 3, J, h, w) from `encode_frames`; aux_heatmaps (B, 2, J, h, w)
        [left, right] label heatmaps for propagation or None for estimation. Returns a dict with
        "heatmaps" (B, J, h, w) final prediction, "frame_heatmaps" (B, 3, J, h, w), "key_features" F_t (B, C, H', W'),
        "key_heatmaps" H_t (B, J, h, w), "temporal_heatmaps" (B, 3, J, h, w) the triplet fed to TKS/DAM, and when the
        variant has them "fused_features" F~ and "key_features_proj" F_t in width d (B, d, H', W'),
        "merged_heatmaps" H~ (B, J, h, w), "mask" M (B, 1, h, w), "mi_feature_logits" (B, J, H', W'); in training
        with MI also "mi_fused_features" / "mi_merged_heatmaps": F~ / H~ recomputed from detached inputs (for the
        redundancy terms).
        """
        cfg = self.cfg
        j, (h, w), (gh, gw) = cfg.num_joints, cfg.heatmap_size, self.backbone.grid
        check_tensor("features", features, ("B", 3, cfg.width, gh, gw))
        b = features.shape[0]
        check_tensor("heatmaps", heatmaps, (b, 3, j, h, w))
        if aux_heatmaps is not None:
            check_tensor("aux_heatmaps", aux_heatmaps, (b, 2, j, h, w))
            aux_heatmaps = aux_heatmaps.to(heatmaps.dtype)
            temporal = torch.stack([aux_heatmaps[:, 0], heatmaps[:, 1], aux_heatmaps[:, 1]], dim=1)
        else:
            temporal = heatmaps
        out: dict[str, torch.Tensor] = {
            "frame_heatmaps": heatmaps,
            "key_features": features[:, 1],
            "key_heatmaps": heatmaps[:, 1],
            "temporal_heatmaps": temporal,
        }
        fused = None
        if self.tff is not None:
            fused, key_tokens = self.tff(features)  # (B, N, d) each
            out["fused_features"] = _tokens_to_map(fused, gh, gw)
            out["key_features_proj"] = _tokens_to_map(key_tokens, gh, gw)
        merged = self.tks(temporal) if self.tks is not None else None
        if merged is not None:
            out["merged_heatmaps"] = merged
        mask = None
        if self.dam is not None:
            mask = self.dam(temporal[:, 0], temporal[:, 1], temporal[:, 2])
            out["mask"] = mask
        if self.stda is not None:
            out["heatmaps"] = self.stda(merged, mask, fused)
        elif self.fusion_head is not None:
            if fused is not None:  # (b): F~ with the key heatmaps
                out["heatmaps"] = self.fusion_head(out["fused_features"], heatmaps[:, 1])
            else:  # (c): the key features with H~
                out["heatmaps"] = self.fusion_head(features[:, 1], merged)
        else:  # (a)
            out["heatmaps"] = heatmaps[:, 1]
        if self.mi_proj is not None:
            out["mi_feature_logits"] = self.mi_proj(out["fused_features"])
            if self.training and torch.is_grad_enabled():
                # The redundancy MI terms train TFF / TKS only (stdpose.model.losses): the same modules on detached
                # inputs, so none of their gradient reaches the backbone or head. Same values as F~ / H~.
                out["mi_fused_features"] = _tokens_to_map(self.tff(features.detach())[0], gh, gw)
                out["mi_merged_heatmaps"] = self.tks(temporal.detach())
        return out

    # ------------------------------------------------------------------ both
    def forward(self, frames: torch.Tensor, aux_heatmaps: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """frames (B, 3, 3, H, W) [left, key, right], aux_heatmaps (B, 2, J, H/4, W/4) or None -> see `aggregate`."""
        h, w = self.cfg.input_size
        check_tensor("frames", frames, ("B", 3, 3, h, w))
        b = frames.shape[0]
        if aux_heatmaps is not None:
            j, (hh, hw) = self.cfg.num_joints, self.cfg.heatmap_size
            check_tensor("aux_heatmaps", aux_heatmaps, (b, 2, j, hh, hw))
        enc = self.encode_frames(frames.reshape(b * 3, 3, h, w))
        features = enc["features"].reshape(b, 3, *enc["features"].shape[1:])
        heatmaps = enc["heatmaps"].reshape(b, 3, *enc["heatmaps"].shape[1:])
        return self.aggregate(features, heatmaps, aux_heatmaps)

    def parameter_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """AdamW groups: weight decay on weight matrices/kernels; none on biases, norms, position embeddings and
        DAM's scalar weights (the ViTPose recipe)."""
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            skip = p.dim() <= 1 or name.endswith(("pos_embed", "frame_pos"))
            (no_decay if skip else decay).append(p)
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _tokens_to_map(tokens: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
    b, _, d = tokens.shape
    return tokens.transpose(1, 2).reshape(b, d, gh, gw)  # (B, d, H', W')


def build_model(cfg: ModelConfig | dict | None = None) -> STDPose:
    """Build STDPose from a ModelConfig or a plain mapping; load `cfg.pretrained` (ViTPose weights) if set."""
    if cfg is None:
        cfg = ModelConfig()
    elif isinstance(cfg, dict):
        cfg = ModelConfig.from_dict(cfg)
    elif not isinstance(cfg, ModelConfig):
        raise ModelInputError(f"build_model needs a ModelConfig or a dict, got {type(cfg).__name__}")
    model = STDPose(cfg)
    if cfg.pretrained:
        from stdpose.model.checkpoint import load_vitpose_checkpoint

        model.load_report = load_vitpose_checkpoint(model, cfg.pretrained, trusted=cfg.pretrained_trusted)
        log.info("%s", model.load_report.summary())
    return model
