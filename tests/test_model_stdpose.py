"""The assembled STDPose: forward == aggregate(encode_frames), shape contracts, gradients per ablation variant,
propagation vs estimation inputs, and clear errors for bad input at the model boundary."""

from __future__ import annotations

import pytest
import torch

from stdpose.errors import ConfigError
from stdpose.model import ModelConfig, ModelInputError, STDPose, StdposeLoss, build_model

NANO = {"backbone": "nano", "input_size": [64, 48]}
H, W, h, w, J = 64, 48, 16, 12, 17


def _inputs(b: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, 3, H, W, generator=g), torch.rand(b, 2, J, h, w, generator=g)


def _make_sensitive(model: STDPose) -> STDPose:
    """Replace the tiny (std 0.001) head inits so that differences show clearly in the outputs."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "deconv_layers" in name and name.endswith("weight") and p.dim() == 4:
                p.normal_(std=0.05)
            if "final_layer.weight" in name:
                p.normal_(std=0.3)
    return model


@pytest.mark.parametrize("with_aux", [False, True])
def test_forward_equals_aggregate_of_encode_frames(with_aux):
    model = build_model({**NANO, "variant": "f"}).eval()
    frames, aux = _inputs()
    aux = aux if with_aux else None
    with torch.no_grad():
        out = model(frames, aux)
        enc = model.encode_frames(frames.reshape(-1, 3, H, W))
        split = model.aggregate(
            enc["features"].reshape(2, 3, *enc["features"].shape[1:]),
            enc["heatmaps"].reshape(2, 3, *enc["heatmaps"].shape[1:]),
            aux,
        )
        assert out.keys() == split.keys()
        for key in out:
            assert torch.equal(out[key], split[key]), key
        # propagation reuses encodings computed in other batches: same result up to float rounding
        per_frame = [model.encode_frames(frames[:, t]) for t in range(3)]
        regrouped = model.aggregate(
            torch.stack([e["features"] for e in per_frame], dim=1),
            torch.stack([e["heatmaps"] for e in per_frame], dim=1),
            aux,
        )
    torch.testing.assert_close(regrouped["heatmaps"], out["heatmaps"], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("variant", list("abcdef"))
def test_train_and_eval_share_the_output_contract(variant):
    model = build_model({**NANO, "variant": variant})
    frames, aux = _inputs()
    shapes = {}
    for mode in ("train", "eval"):
        getattr(model, mode)()
        with torch.no_grad():
            out = model(frames, aux)
        shapes[mode] = {k: tuple(v.shape) for k, v in out.items()}
        assert all(torch.isfinite(v).all() for v in out.values())
    assert shapes["train"] == shapes["eval"]
    s = shapes["eval"]
    assert s["heatmaps"] == (2, J, h, w) and s["frame_heatmaps"] == (2, 3, J, h, w)
    assert s["key_features"] == (2, 64, 4, 3) and s["temporal_heatmaps"] == (2, 3, J, h, w)


@pytest.mark.parametrize("variant", list("abcdef"))
@pytest.mark.parametrize("with_aux", [False, True])
def test_gradients_reach_every_trainable_parameter(variant, with_aux):
    torch.manual_seed(1)
    model = build_model({**NANO, "variant": variant}).train()
    frames, aux = _inputs(seed=2)
    target = torch.rand(2, J, h, w)
    weight = torch.ones(2, J)
    terms = StdposeLoss(model.cfg)(model(frames, aux if with_aux else None), target, weight)
    terms["loss"].backward()
    dead = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
    assert dead == []


def test_propagation_feeds_the_aux_labels_to_tks_and_dam():
    model = _make_sensitive(build_model({**NANO, "variant": "f"})).eval()
    frames, aux = _inputs()
    with torch.no_grad():
        est = model(frames)
        prop = model(frames, aux)
    assert torch.equal(prop["temporal_heatmaps"][:, 0], aux[:, 0])
    assert torch.equal(prop["temporal_heatmaps"][:, 2], aux[:, 1])
    assert torch.equal(prop["temporal_heatmaps"][:, 1], prop["frame_heatmaps"][:, 1])
    assert torch.equal(est["temporal_heatmaps"], est["frame_heatmaps"])
    assert not torch.allclose(prop["merged_heatmaps"], est["merged_heatmaps"])
    assert not torch.allclose(prop["mask"], est["mask"])
    assert not torch.allclose(prop["heatmaps"], est["heatmaps"])
    torch.testing.assert_close(prop["frame_heatmaps"], est["frame_heatmaps"])  # the head itself is unchanged


def test_variant_a_predicts_the_key_frame_alone():
    model = _make_sensitive(build_model({**NANO, "variant": "a"})).eval()
    frames, aux = _inputs()
    with torch.no_grad():
        out = model(frames, aux)
        other = frames.clone()
        other[:, 0] = torch.randn_like(other[:, 0])
        other[:, 2] = torch.randn_like(other[:, 2])
        out2 = model(other)
    assert torch.equal(out["heatmaps"], out["key_heatmaps"])
    torch.testing.assert_close(out["heatmaps"], out2["heatmaps"])


@pytest.mark.parametrize("variant", list("bcdef"))
def test_temporal_variants_look_at_the_auxiliary_frames(variant):
    model = _make_sensitive(build_model({**NANO, "variant": variant})).eval()
    frames, _ = _inputs()
    other = frames.clone()
    other[:, 2] = torch.randn_like(other[:, 2])
    with torch.no_grad():
        assert not torch.allclose(model(frames)["heatmaps"], model(other)["heatmaps"])


def test_bad_input_raises_clear_errors():
    model = build_model({**NANO, "variant": "f"})
    frames, aux = _inputs()
    cases = [
        (frames[:, 1], None, "frames must have shape"),  # (B, 3, H, W): forgot the triplet axis
        (frames[:, :2], None, r"dim 1 is 2"),  # two frames instead of three
        (torch.randn(2, 3, 3, 128, 96), None, r"frames must have shape \(B, 3, 3, 64, 48\)"),
        (frames.to(torch.uint8), None, "floating-point"),
        (frames, aux[:, :, :15], r"aux_heatmaps must have shape \(2, 2, 17, 16, 12\)"),  # 15 joints
        (frames, aux[:1], "aux_heatmaps"),  # batch mismatch
        (frames, aux[:, :, :, :8], "aux_heatmaps"),
        ([[0.0]], None, "must be a torch.Tensor"),
    ]
    for x, a, message in cases:
        with pytest.raises(ModelInputError, match=message):
            model(x, a)
    with pytest.raises(ModelInputError, match="features"):
        model.aggregate(torch.randn(2, 3, 32, 4, 3), torch.rand(2, 3, J, h, w))
    with pytest.raises(ModelInputError, match="heatmaps"):
        model.aggregate(torch.randn(2, 3, 64, 4, 3), torch.rand(2, 3, 15, h, w))
    with pytest.raises(ModelInputError, match="images"):
        model.encode_frames(torch.randn(2, 1, H, W))
    assert issubclass(ModelInputError, ValueError)


def test_build_model_from_dict_and_config():
    model = build_model(NANO)
    assert isinstance(model, STDPose) and model.cfg.variant == "f"
    assert build_model(ModelConfig(**NANO)).cfg == model.cfg
    with pytest.raises(ConfigError, match="unknown model config key"):
        build_model({**NANO, "backbone_size": "tiny"})
    with pytest.raises(ModelInputError):
        build_model(["nano"])


def test_parameter_groups_cover_every_parameter_once():
    model = build_model({**NANO, "variant": "f"})
    groups = model.parameter_groups(0.1)
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    no_decay = {id(p) for p in groups[1]["params"]}
    assert id(model.backbone.pos_embed) in no_decay and id(model.tff.frame_pos) in no_decay
    assert id(model.dam.w_f) in no_decay and id(model.backbone.blocks[0].norm1.weight) in no_decay
    assert id(model.backbone.blocks[0].attn.qkv.weight) not in no_decay
    assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0


def test_stda_skip_is_off_by_default_and_adds_a_full_resolution_path():
    paper = build_model({**NANO, "variant": "f"})
    assert paper.stda.skip is None  # Eq. 13 as written: the head's output alone
    torch.manual_seed(3)
    model = build_model({**NANO, "variant": "f", "stda_skip": True}).train()
    frames, aux = _inputs(seed=4)
    out = model(frames, aux)
    # the skip's contribution is exactly what separates the output from Head(PA_N(...))
    merged, mask = out["merged_heatmaps"], out["mask"]
    skip_only = model.stda.skip(torch.cat([merged * mask, merged], dim=1))
    model.stda.skip = None
    torch.testing.assert_close(out["heatmaps"] - skip_only, model.aggregate(
        *(t.reshape(2, 3, *t.shape[1:]) for t in model.encode_frames(frames.flatten(0, 1)).values()), aux)["heatmaps"])
