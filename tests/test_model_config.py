"""ModelConfig: defaults, resolved sizes, dict round trip, and ConfigError for bad keys and values."""

from __future__ import annotations

import pytest
import yaml

from stdpose.errors import ConfigError
from stdpose.model import VARIANTS, ModelConfig


def test_paper_defaults():
    cfg = ModelConfig()
    assert (cfg.backbone, cfg.input_size, cfg.variant) == ("base", (256, 192), "f")
    assert (cfg.width, cfg.vit_depth, cfg.vit_heads) == (768, 12, 12)
    assert (cfg.dam_k, cfg.dam_theta, cfg.mi_alpha, cfg.mi_beta) == (1.5, 0.5, 0.1, 0.01)
    assert cfg.heatmap_size == (64, 48) and cfg.grid_size == (16, 12)
    # d = 256 and FFN ratio 1 in the temporal blocks are ViT-B cost choices (docs/performance.md)
    assert cfg.d_temporal == 256 and cfg.heads_temporal == 4 and cfg.head_width == 256 and cfg.patch_padding == 2
    assert cfg.mlp_ratio == 4.0 and cfg.mlp_ratio_temporal == 1.0
    assert ModelConfig(backbone="large").mlp_ratio_temporal == 4.0
    assert ModelConfig(temporal_mlp_ratio=2).mlp_ratio_temporal == 2


def test_temporal_mlp_ratio_sets_the_ffn_width_of_tff_and_stda_only():
    from stdpose.model import STDPose

    model = STDPose(ModelConfig(backbone="nano", input_size=(64, 48), temporal_mlp_ratio=2))
    assert model.tff.blocks[0].mlp.fc1.out_features == 2 * 64
    assert model.stda.blocks[0].mlp.fc1.out_features == 2 * 64
    assert model.backbone.blocks[0].mlp.fc1.out_features == 4 * 64  # the backbone keeps mlp_ratio
    with pytest.raises(ConfigError, match="temporal_mlp_ratio"):
        ModelConfig(temporal_mlp_ratio=0)


@pytest.mark.parametrize(
    ("name", "dims"),
    [
        ("tiny", (192, 12, 3)),
        ("small", (384, 12, 6)),
        ("base", (768, 12, 12)),
        ("large", (1024, 24, 16)),
        ("huge", (1280, 32, 16)),
        ("nano", (64, 2, 2)),
    ],
)
def test_standard_sizes_and_overrides(name, dims):
    cfg = ModelConfig(backbone=name)
    assert (cfg.width, cfg.vit_depth, cfg.vit_heads) == dims
    over = ModelConfig(backbone=name, embed_dim=96, depth=3, num_heads=4, temporal_dim=48, temporal_heads=4)
    assert (over.width, over.vit_depth, over.vit_heads, over.d_temporal, over.heads_temporal) == (96, 3, 4, 48, 4)


def test_round_trip_through_yaml():
    cfg = ModelConfig.from_dict({"backbone": "tiny", "input_size": [384, 288], "variant": "d", "dam_k": 2.0})
    text = yaml.safe_dump(cfg.to_dict())
    back = ModelConfig.from_dict(yaml.safe_load(text))
    assert back == cfg and back.input_size == (384, 288)
    assert ModelConfig.from_dict(None) == ModelConfig()


def test_unknown_key_lists_allowed_keys():
    with pytest.raises(ConfigError) as err:
        ModelConfig.from_dict({"backbone": "tiny", "dam_kk": 1.0})
    text = str(err.value)
    assert "dam_kk" in text and "dam_k" in text and "variant" in text and "input_size" in text


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("backbone", "giant", "model.backbone"),
        ("variant", "g", "Table 4"),
        ("input_size", [256], "input_size"),
        ("input_size", [250, 192], "multiples of 4"),
        ("input_size", "256x192", "input_size"),
        ("num_heads", 5, "not divisible"),
        ("temporal_heads", 7, "not divisible"),
        ("dam_k", 0, "dam_k"),
        ("dam_theta", -0.1, "dam_theta"),
        ("mi_alpha", "0.1", "mi_alpha"),
        ("mi_temperature", 0.0, "mi_temperature"),
        ("drop_path", 1.0, "drop_path"),
        ("tff_depth", 0, "tff_depth"),
        ("patch_padding", 16, "patch_padding"),
        ("qkv_bias", 1, "qkv_bias"),
        ("pretrained", 3, "pretrained"),
        ("depth", True, "depth"),
    ],
)
def test_bad_values_raise_config_error(key, value, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig.from_dict({key: value})


def test_variants_are_table_4():
    on = {v: {k for k in ("tff", "tks", "dam", "stda", "mi") if getattr(s, k)} for v, s in VARIANTS.items()}
    assert on == {
        "a": set(),
        "b": {"tff"},
        "c": {"tks"},
        "d": {"tff", "tks", "stda"},
        "e": {"tff", "tks", "dam", "stda"},
        "f": {"tff", "tks", "dam", "stda", "mi"},
    }
