"""`ModelConfig`: every knob of the STDPose network, validated once, with paper defaults.

The YAML experiment files hold a `model:` mapping that goes through `ModelConfig.from_dict`; unknown keys and bad
values raise `ConfigError` naming the key, so a typo never silently falls back to a default.
Sizes follow the standard ViT widths (Ti 192/12/3, S 384/12/6, B 768/12/12, L 1024/24/16, H 1280/32/16) plus a
"nano" size for fast CPU tests. Ablation variants reproduce paper Table 4 (a)-(f).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from stdpose.errors import ConfigError

# name -> (embed_dim, depth, num_heads, temporal_dim d, temporal_heads, head_channels, temporal_mlp_ratio)
# The paper gives no width for TFF/STDA. For ViT-B both are cost choices (docs/performance.md): d = 256 and an FFN
# as wide as d (ratio 1), so that a propagated frame costs <= 1.20x a single-frame pass; each kept the bench's mAP
# (2/3 of d: -0.2, 3 seeds; FFN ratio 4 -> 1: +0.2, 6 seeds). tiny/S use the backbone width, L/H d = 512; others
# ratio 4.
BACKBONE_SIZES: dict[str, tuple[int, int, int, int, int, int, float]] = {
    "nano": (64, 2, 2, 64, 2, 32, 4.0),
    "tiny": (192, 12, 3, 192, 3, 64, 4.0),
    "small": (384, 12, 6, 384, 6, 256, 4.0),
    "base": (768, 12, 12, 256, 4, 256, 1.0),
    "large": (1024, 24, 16, 512, 8, 256, 4.0),
    "huge": (1280, 32, 16, 512, 8, 256, 4.0),
}


@dataclass(frozen=True)
class Switches:
    """Which STDPose components are active (paper Table 4 columns)."""

    tff: bool
    tks: bool
    dam: bool
    stda: bool
    mi: bool


# Table 4: (a) ViT + head on the key frame only, (b) +TFF, (c) +TKS, (d) TFF+TKS+STDA, (e) +DAM, (f) +MI = full.
VARIANTS: dict[str, Switches] = {
    "a": Switches(tff=False, tks=False, dam=False, stda=False, mi=False),
    "b": Switches(tff=True, tks=False, dam=False, stda=False, mi=False),
    "c": Switches(tff=False, tks=True, dam=False, stda=False, mi=False),
    "d": Switches(tff=True, tks=True, dam=False, stda=True, mi=False),
    "e": Switches(tff=True, tks=True, dam=True, stda=True, mi=False),
    "f": Switches(tff=True, tks=True, dam=True, stda=True, mi=True),
}

STDA_HEADS = ("deconv", "shuffle")  # ModelConfig.stda_head
HEATMAP_REDUCTIONS = ("sum", "mean")
MI_ESTIMATORS = ("proxy", "jsd", "infonce")

_INT_OR_NONE = ("embed_dim", "depth", "num_heads", "temporal_dim", "temporal_heads", "head_channels",
                "stda_head_channels")


@dataclass
class ModelConfig:
    """Architecture, ablation and loss settings of STDPose (defaults: the paper's ViT-B model at 256x192).

    `embed_dim`, `depth`, `num_heads`, `temporal_dim`, `temporal_heads`, `head_channels` and `temporal_mlp_ratio`
    default to None, meaning "the value of the chosen `backbone` size" (see BACKBONE_SIZES); the resolved values are
    the properties below, and `architecture()` lists them (checkpoints store it, so a later change of a size default
    does not change the model a checkpoint builds).
    """

    backbone: str = "base"
    embed_dim: int | None = None
    depth: int | None = None
    num_heads: int | None = None
    input_size: tuple[int, int] = (256, 192)  # [H, W]
    patch_size: int = 16
    patch_padding: int = 2  # ViTPose trains its patch conv with padding 2; keep 2 to reproduce its checkpoints
    mlp_ratio: float = 4.0
    # FFN hidden width / d in TFF's and STDA's blocks; None = the backbone size's (BACKBONE_SIZES)
    temporal_mlp_ratio: float | None = None
    qkv_bias: bool = True
    drop_path: float = 0.0  # stochastic depth of the backbone (ViTPose-B fine-tunes with 0.3)
    num_joints: int = 17
    temporal_dim: int | None = None  # width d of TFF and STDA
    temporal_heads: int | None = None
    tff_depth: int = 2
    stda_depth: int = 2
    # False = paper Eq. 13 (H = Head(PA_N(...)) only). True adds a full-resolution skip from the STDA input
    # (H~ * M and H~) to the head's output: a documented deviation that lets small models trained briefly keep the
    # heatmaps' sub-patch precision (docs/model.md, "STDA skip").
    stda_skip: bool = False
    head_channels: int | None = None
    tks_channels: int = 8  # channels per joint inside TKS's per-joint temporal conv
    dam_k: float = 1.5
    dam_theta: float = 0.5
    variant: str = "f"
    mi_alpha: float = 0.1
    mi_beta: float = 0.01
    mi_temperature: float = 1.0  # softmax temperature of the "proxy" estimator
    # L_H reduction: "sum" = paper Eq. 4 (squared L2 norm per sample, batch mean); "mean" = also / (J*h*w)
    heatmap_reduction: str = "sum"
    # MI estimator: "proxy" (FAMI-Pose-style divergence proxy), "jsd" (Deep InfoMax) or "infonce" (CMC) bounds
    mi_estimator: str = "infonce"
    mi_grad_log_every: int = 50  # log ||grad L_MI|| / ||grad L_H|| every N training steps (0: never; costs 2 backwards)
    pretrained: str | None = None
    pretrained_trusted: bool = False  # allow full pickle loading (only for checkpoint files you trust)
    # ---- cost options (issue 14): choices the paper leaves open that change the temporal modules' cost
    # stda_head: how STDA's final head (Eq. 13) turns its d-wide tokens into heatmaps. "deconv" = the paper's
    # classical head (two stride-2 deconvolutions at head_channels); "shuffle" = a 1x1 conv per token to 16J values
    # rearranged into the 4x4 heatmap pixels under it (pixel shuffle), then a 3x3 conv over the J maps - about 40x
    # fewer MACs (docs/performance.md).
    stda_head: str = "deconv"
    # width of the "deconv" STDA head's two deconvolutions; None = head_channels (the per-frame head's width, as
    # ViTPose's classical head). The paper gives no width for Eq. 13's head; half of it costs a quarter of the MACs.
    stda_head_channels: int | None = None

    def __post_init__(self) -> None:
        self._validate()

    # ----------------------------------------------------------------- construction
    @classmethod
    def allowed_keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> ModelConfig:
        """Build from a plain mapping (YAML); unknown keys raise ConfigError listing the allowed ones."""
        d = dict(d or {})
        allowed = cls.allowed_keys()
        unknown = sorted(k for k in d if k not in allowed)
        if unknown:
            raise ConfigError(f"unknown model config key(s) {unknown}; allowed keys: {', '.join(allowed)}")
        if "input_size" in d:
            d["input_size"] = _pair("input_size", d["input_size"])
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML-friendly mapping that `from_dict` turns back into an equal config."""
        out = {k: getattr(self, k) for k in self.allowed_keys()}
        out["input_size"] = list(self.input_size)
        return out

    # ----------------------------------------------------------------- resolved values
    def architecture(self) -> dict[str, Any]:
        """The size-dependent fields resolved to numbers: what `from_dict` needs to build this exact network again."""
        return {"embed_dim": self.width, "depth": self.vit_depth, "num_heads": self.vit_heads,
                "temporal_dim": self.d_temporal, "temporal_heads": self.heads_temporal,
                "head_channels": self.head_width, "temporal_mlp_ratio": self.mlp_ratio_temporal,
                "stda_head_channels": self.stda_head_width}

    @property
    def switches(self) -> Switches:
        return VARIANTS[self.variant]

    @property
    def width(self) -> int:
        return self.embed_dim if self.embed_dim is not None else BACKBONE_SIZES[self.backbone][0]

    @property
    def vit_depth(self) -> int:
        return self.depth if self.depth is not None else BACKBONE_SIZES[self.backbone][1]

    @property
    def vit_heads(self) -> int:
        return self.num_heads if self.num_heads is not None else BACKBONE_SIZES[self.backbone][2]

    @property
    def d_temporal(self) -> int:
        return self.temporal_dim if self.temporal_dim is not None else BACKBONE_SIZES[self.backbone][3]

    @property
    def heads_temporal(self) -> int:
        return self.temporal_heads if self.temporal_heads is not None else BACKBONE_SIZES[self.backbone][4]

    @property
    def head_width(self) -> int:
        return self.head_channels if self.head_channels is not None else BACKBONE_SIZES[self.backbone][5]

    @property
    def mlp_ratio_temporal(self) -> float:
        return self.temporal_mlp_ratio if self.temporal_mlp_ratio is not None else BACKBONE_SIZES[self.backbone][6]

    @property
    def stda_head_width(self) -> int:
        return self.stda_head_channels if self.stda_head_channels is not None else self.head_width

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """(h, w) = (H/4, W/4)."""
        return self.input_size[0] // 4, self.input_size[1] // 4

    @property
    def grid_size(self) -> tuple[int, int]:
        """Backbone token grid (H', W'); H/16 x W/16 for the usual sizes (patch conv with `patch_padding`)."""
        h, w = self.input_size
        p, s = self.patch_padding, self.patch_size
        return (h + 2 * p - s) // s + 1, (w + 2 * p - s) // s + 1

    # ----------------------------------------------------------------- validation
    def _validate(self) -> None:
        if self.backbone not in BACKBONE_SIZES:
            raise ConfigError(f"model.backbone must be one of {list(BACKBONE_SIZES)}, got {self.backbone!r}")
        if self.variant not in VARIANTS:
            raise ConfigError(f"model.variant must be one of {list(VARIANTS)} (paper Table 4), got {self.variant!r}")
        if self.heatmap_reduction not in HEATMAP_REDUCTIONS:
            raise ConfigError(f"model.heatmap_reduction must be one of {list(HEATMAP_REDUCTIONS)} (sum: paper Eq. 4), "
                              f"got {self.heatmap_reduction!r}")
        if self.mi_estimator not in MI_ESTIMATORS:
            raise ConfigError(f"model.mi_estimator must be one of {list(MI_ESTIMATORS)}, got {self.mi_estimator!r}")
        if not _is_int(self.mi_grad_log_every) or self.mi_grad_log_every < 0:
            raise ConfigError(f"model.mi_grad_log_every must be a whole number >= 0, got {self.mi_grad_log_every!r}")
        self.input_size = _pair("input_size", self.input_size)
        h, w = self.input_size
        if h % 4 or w % 4 or h < 32 or w < 32:
            raise ConfigError(f"model.input_size [H, W] must be multiples of 4 and at least 32, got {[h, w]}")
        for name in _INT_OR_NONE:
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value <= 0):
                raise ConfigError(f"model.{name} must be a positive integer or null, got {value!r}")
        for name in ("patch_size", "num_joints", "tff_depth", "stda_depth", "tks_channels"):
            value = getattr(self, name)
            if not _is_int(value) or value <= 0:
                raise ConfigError(f"model.{name} must be a positive integer, got {value!r}")
        if not _is_int(self.patch_padding) or not 0 <= self.patch_padding < self.patch_size:
            raise ConfigError(f"model.patch_padding must be an integer in [0, patch_size), got {self.patch_padding!r}")
        if self.width % self.vit_heads:
            raise ConfigError(f"model.embed_dim {self.width} is not divisible by num_heads {self.vit_heads}")
        if self.d_temporal % self.heads_temporal:
            raise ConfigError(
                f"model.temporal_dim {self.d_temporal} is not divisible by temporal_heads {self.heads_temporal}"
            )
        gh, gw = self.grid_size
        if gh < 1 or gw < 1:
            raise ConfigError(f"model.input_size {list(self.input_size)} is smaller than one patch")
        for name in ("mlp_ratio", "dam_k", "mi_temperature"):
            value = getattr(self, name)
            if not _is_number(value) or value <= 0:
                raise ConfigError(f"model.{name} must be a positive number, got {value!r}")
        if self.temporal_mlp_ratio is not None and (not _is_number(self.temporal_mlp_ratio)
                                                    or self.temporal_mlp_ratio <= 0):
            raise ConfigError(f"model.temporal_mlp_ratio must be a positive number or null, "
                              f"got {self.temporal_mlp_ratio!r}")
        for name in ("dam_theta", "mi_alpha", "mi_beta"):
            value = getattr(self, name)
            if not _is_number(value) or value < 0:
                raise ConfigError(f"model.{name} must be a non-negative number, got {value!r}")
        if not _is_number(self.drop_path) or not 0 <= self.drop_path < 1:
            raise ConfigError(f"model.drop_path must be in [0, 1), got {self.drop_path!r}")
        if self.stda_head not in STDA_HEADS:
            raise ConfigError(f"model.stda_head must be one of {list(STDA_HEADS)}, got {self.stda_head!r}")
        for name in ("qkv_bias", "pretrained_trusted", "stda_skip"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"model.{name} must be true or false, got {getattr(self, name)!r}")
        if self.pretrained is not None and not isinstance(self.pretrained, str):
            raise ConfigError(f"model.pretrained must be a checkpoint path or null, got {self.pretrained!r}")
        if self.pretrained == "":
            self.pretrained = None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _pair(name: str, value: Any) -> tuple[int, int]:
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(_is_int(v) and v > 0 for v in value):
        raise ConfigError(f"model.{name} must be two positive integers [H, W], got {value!r}")
    return int(value[0]), int(value[1])
