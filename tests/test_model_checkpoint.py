"""ViTPose checkpoint loading: both key layouts with the real files' key names, checked against a reference forward
written here from the raw checkpoint tensors (functional ops only, independent of stdpose.model's modules)."""

from __future__ import annotations

import argparse
import math

import pytest
import torch
import torch.nn.functional as F

from stdpose.errors import DataError
from stdpose.model import ModelConfig, STDPose, VisionTransformer, build_model, load_vitpose_checkpoint
from stdpose.model.checkpoint import convert_vitpose_state_dict, detect_layout, infer_grid, read_state_dict
from stdpose.skeleton import COCO_NAMES, COCO_TO_POSETRACK, SLOT

DIM, DEPTH, HEADS, HEAD_CH, J = 64, 2, 2, 32, 17
SMALL = dict(backbone="nano", embed_dim=DIM, depth=DEPTH, num_heads=HEADS, head_channels=HEAD_CH, input_size=[64, 48])


# ------------------------------------------------------------------------------------------- fake checkpoints
def _block_tensors(g: torch.Generator, dim: int) -> dict[str, torch.Tensor]:
    def r(*shape, s=0.05):
        return torch.randn(*shape, generator=g) * s

    return {
        "n1w": 1 + r(dim, s=0.1),
        "n1b": r(dim),
        "qkvw": r(3 * dim, dim, s=0.1),
        "qkvb": r(3 * dim),
        "projw": r(dim, dim, s=0.1),
        "projb": r(dim),
        "n2w": 1 + r(dim, s=0.1),
        "n2b": r(dim),
        "fc1w": r(4 * dim, dim, s=0.1),
        "fc1b": r(4 * dim),
        "fc2w": r(dim, 4 * dim, s=0.1),
        "fc2b": r(dim),
    }


def _raw_weights(seed: int, dim: int, depth: int, head_ch: int, pos_slots: int) -> dict:
    """Random weights with the shapes of a ViTPose checkpoint (shared by both layouts)."""
    g = torch.Generator().manual_seed(seed)
    w = {
        "patch_w": torch.randn(dim, 3, 16, 16, generator=g) * 0.02,
        "patch_b": torch.randn(dim, generator=g) * 0.02,
        "pos": torch.randn(1, pos_slots, dim, generator=g) * 0.5,  # large: the first slot must visibly matter
        "blocks": [_block_tensors(g, dim) for _ in range(depth)],
        "lnw": 1 + torch.randn(dim, generator=g) * 0.1,
        "lnb": torch.randn(dim, generator=g) * 0.05,
        "deconv": [],
        "final_w": torch.randn(J, head_ch, 1, 1, generator=g) * 0.2,
        "final_b": torch.randn(J, generator=g) * 0.1,
    }
    for i in range(2):
        w["deconv"].append(
            {
                "w": torch.randn(dim if i == 0 else head_ch, head_ch, 4, 4, generator=g) * 0.05,
                "bn_w": 1 + torch.randn(head_ch, generator=g) * 0.1,
                "bn_b": torch.randn(head_ch, generator=g) * 0.1,
                "mean": torch.randn(head_ch, generator=g) * 0.1,
                "var": torch.rand(head_ch, generator=g) + 0.5,
            }
        )
    return w


def _head_keys(prefix: str, w: dict) -> dict[str, torch.Tensor]:
    sd = {}
    for idx, layer in zip((0, 3), w["deconv"]):
        sd[f"{prefix}.deconv_layers.{idx}.weight"] = layer["w"]
        bn = f"{prefix}.deconv_layers.{idx + 1}"
        sd[f"{bn}.weight"], sd[f"{bn}.bias"] = layer["bn_w"], layer["bn_b"]
        sd[f"{bn}.running_mean"], sd[f"{bn}.running_var"] = layer["mean"], layer["var"]
        sd[f"{bn}.num_batches_tracked"] = torch.tensor(1000)
    sd[f"{prefix}.final_layer.weight"], sd[f"{prefix}.final_layer.bias"] = w["final_w"], w["final_b"]
    return sd


def official_state_dict(w: dict) -> dict[str, torch.Tensor]:
    """Key names of the official ViTPose release (mmpose 0.x fork, e.g. vitpose-b.pth)."""
    sd = {
        "backbone.pos_embed": w["pos"],
        "backbone.patch_embed.proj.weight": w["patch_w"],
        "backbone.patch_embed.proj.bias": w["patch_b"],
    }
    for i, b in enumerate(w["blocks"]):
        p = f"backbone.blocks.{i}."
        sd.update(
            {
                p + "norm1.weight": b["n1w"],
                p + "norm1.bias": b["n1b"],
                p + "attn.qkv.weight": b["qkvw"],
                p + "attn.qkv.bias": b["qkvb"],
                p + "attn.proj.weight": b["projw"],
                p + "attn.proj.bias": b["projb"],
                p + "norm2.weight": b["n2w"],
                p + "norm2.bias": b["n2b"],
                p + "mlp.fc1.weight": b["fc1w"],
                p + "mlp.fc1.bias": b["fc1b"],
                p + "mlp.fc2.weight": b["fc2w"],
                p + "mlp.fc2.bias": b["fc2b"],
            }
        )
    sd["backbone.last_norm.weight"], sd["backbone.last_norm.bias"] = w["lnw"], w["lnb"]
    sd.update(_head_keys("keypoint_head", w))
    return sd


def mmpose_state_dict(w: dict) -> dict[str, torch.Tensor]:
    """Key names of mmpose 1.x ViTPose checkpoints (mmpretrain VisionTransformer + HeatmapHead)."""
    sd = {
        "backbone.pos_embed": w["pos"],
        "backbone.patch_embed.projection.weight": w["patch_w"],
        "backbone.patch_embed.projection.bias": w["patch_b"],
    }
    for i, b in enumerate(w["blocks"]):
        p = f"backbone.layers.{i}."
        sd.update(
            {
                p + "ln1.weight": b["n1w"],
                p + "ln1.bias": b["n1b"],
                p + "attn.qkv.weight": b["qkvw"],
                p + "attn.qkv.bias": b["qkvb"],
                p + "attn.proj.weight": b["projw"],
                p + "attn.proj.bias": b["projb"],
                p + "ln2.weight": b["n2w"],
                p + "ln2.bias": b["n2b"],
                p + "ffn.layers.0.0.weight": b["fc1w"],
                p + "ffn.layers.0.0.bias": b["fc1b"],
                p + "ffn.layers.1.weight": b["fc2w"],
                p + "ffn.layers.1.bias": b["fc2b"],
            }
        )
    sd["backbone.ln1.weight"], sd["backbone.ln1.bias"] = w["lnw"], w["lnb"]
    sd.update(_head_keys("head", w))
    return sd


# ------------------------------------------------------------------------------------------- reference forward
def reference_forward(w: dict, images: torch.Tensor, pos_tokens: torch.Tensor, heads: int):
    """ViTPose forward from raw tensors: patch conv (padding 2) + pos, pre-norm blocks, last norm, deconv head.

    Returns the feature map (N, C, H', W') and COCO-ordered heatmaps (N, 17, 4H', 4W').
    """
    x = F.conv2d(images, w["patch_w"], w["patch_b"], stride=16, padding=2)
    n, c, gh, gw = x.shape
    x = x.flatten(2).transpose(1, 2) + pos_tokens
    hd = c // heads
    for b in w["blocks"]:
        y = F.layer_norm(x, (c,), b["n1w"], b["n1b"], eps=1e-6)
        qkv = (y @ b["qkvw"].T + b["qkvb"]).reshape(n, -1, 3, heads, hd).permute(2, 0, 3, 1, 4)
        att = torch.softmax(qkv[0] @ qkv[1].transpose(-1, -2) / math.sqrt(hd), dim=-1)
        y = (att @ qkv[2]).transpose(1, 2).reshape(n, -1, c)
        x = x + y @ b["projw"].T + b["projb"]
        y = F.layer_norm(x, (c,), b["n2w"], b["n2b"], eps=1e-6)
        y = F.gelu(y @ b["fc1w"].T + b["fc1b"]) @ b["fc2w"].T + b["fc2b"]
        x = x + y
    x = F.layer_norm(x, (c,), w["lnw"], w["lnb"], eps=1e-6)
    fmap = x.transpose(1, 2).reshape(n, c, gh, gw)
    y = fmap
    for layer in w["deconv"]:
        y = F.conv_transpose2d(y, layer["w"], stride=2, padding=1)
        y = F.relu(F.batch_norm(y, layer["mean"], layer["var"], layer["bn_w"], layer["bn_b"], False, 0.0, 1e-5))
    return fmap, F.conv2d(y, w["final_w"], w["final_b"])


def _assert_matches_reference(model: STDPose, w: dict, pos_tokens: torch.Tensor) -> None:
    images = torch.randn(2, 3, 64, 48, generator=torch.Generator().manual_seed(5))
    model.eval()
    with torch.no_grad():
        enc = model.encode_frames(images)
    fmap, coco = reference_forward(w, images, pos_tokens, HEADS)
    torch.testing.assert_close(enc["features"], fmap, atol=1e-4, rtol=1e-4)
    for slot, src in enumerate(COCO_TO_POSETRACK):
        src = src if src >= 0 else COCO_NAMES.index("nose")
        torch.testing.assert_close(enc["heatmaps"][:, slot], coco[:, src], atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------------------------------- tests
def test_official_layout_matches_reference_forward(tmp_path):
    w = _raw_weights(0, DIM, DEPTH, HEAD_CH, pos_slots=1 + 4 * 3)
    path = tmp_path / "vitpose_official.pth"
    torch.save({"meta": {"epoch": 210}, "state_dict": official_state_dict(w)}, path)
    model = STDPose(ModelConfig(**SMALL))
    report = load_vitpose_checkpoint(model, path)
    assert report.layout == "official"
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []
    assert report.mapped["backbone.blocks.1.mlp.fc2.weight"] == "backbone.blocks.1.mlp.fc2.weight"
    assert report.mapped["keypoint_head.final_layer.weight"] == "head.final_layer.weight"
    # the first pos_embed slot is added to every token, not dropped
    _assert_matches_reference(model, w, w["pos"][:, 1:] + w["pos"][:, :1])
    assert not torch.allclose(model.backbone.pos_embed, w["pos"][:, 1:])


def test_mmpose_layout_matches_reference_forward(tmp_path):
    w = _raw_weights(1, DIM, DEPTH, HEAD_CH, pos_slots=4 * 3)
    path = tmp_path / "td-hm_ViTPose.pth"
    torch.save({"meta": {"mmpose_version": "1.3.0"}, "state_dict": mmpose_state_dict(w)}, path)
    model = STDPose(ModelConfig(**SMALL))
    report = load_vitpose_checkpoint(model, path)
    assert report.layout == "mmpose"
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []
    assert report.mapped["backbone.layers.0.ffn.layers.0.0.weight"] == "backbone.blocks.0.mlp.fc1.weight"
    assert report.mapped["backbone.ln1.weight"] == "backbone.last_norm.weight"
    _assert_matches_reference(model, w, w["pos"])


def test_mmpose_extra_slot_is_dropped_like_mmpretrain():
    w = _raw_weights(2, DIM, DEPTH, HEAD_CH, pos_slots=1 + 4 * 3)
    model = STDPose(ModelConfig(**SMALL))
    shapes = {f"backbone.{k}": v.shape for k, v in model.backbone.state_dict().items()}
    out, report = convert_vitpose_state_dict(mmpose_state_dict(w), shapes, model.backbone.grid)
    torch.testing.assert_close(out["backbone.pos_embed"], w["pos"][:, 1:])
    assert any("dropped" in n for n in report.notes)


def test_head_channels_follow_posetrack_slots(tmp_path):
    w = _raw_weights(3, DIM, DEPTH, HEAD_CH, pos_slots=13)
    path = tmp_path / "ckpt.pth"
    torch.save(official_state_dict(w), path)  # no wrapper at all
    model = build_model({**SMALL, "pretrained": str(path)})
    weight = model.head.final_layer.weight
    for name in ("left_shoulder", "right_ankle", "nose", "left_ear"):
        torch.testing.assert_close(weight[SLOT[name]], w["final_w"][COCO_NAMES.index(name)])
    for name in ("head_top", "head_bottom"):  # no COCO joint: documented init from the nose channel
        torch.testing.assert_close(weight[SLOT[name]], w["final_w"][COCO_NAMES.index("nose")])
    assert model.load_report is not None and len(model.load_report.mapped) > 0


def test_position_embedding_is_interpolated_for_other_input_sizes(tmp_path):
    # checkpoint trained at 64x48 (grid 4x3), model at 128x96 (grid 8x6)
    w = _raw_weights(4, DIM, DEPTH, HEAD_CH, pos_slots=13)
    w["pos"][:, 1:, 0] = 0.25  # a constant channel must stay constant under interpolation
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": official_state_dict(w)}, path)
    model = STDPose(ModelConfig(**{**SMALL, "input_size": [128, 96]}))
    report = load_vitpose_checkpoint(model, path)
    assert any("resized from 4x3 to 8x6" in n for n in report.notes)
    pos = model.backbone.pos_embed
    assert pos.shape == (1, 48, DIM)
    torch.testing.assert_close(pos[0, :, 0], torch.full((48,), 0.25) + w["pos"][0, 0, 0])
    folded = (w["pos"][:, 1:] + w["pos"][:, :1]).reshape(1, 4, 3, DIM).permute(0, 3, 1, 2)
    expected = F.interpolate(folded, size=(8, 6), mode="bicubic", align_corners=False)
    torch.testing.assert_close(pos, expected.permute(0, 2, 3, 1).reshape(1, 48, DIM))


def test_mae_style_backbone_checkpoint_reports_missing_and_unused(tmp_path):
    """MAE pretraining files: no `backbone.` prefix, a cls_token, a square grid, `norm.*` instead of last_norm."""
    w = _raw_weights(5, DIM, DEPTH, HEAD_CH, pos_slots=1 + 4 * 4)
    sd = {k[len("backbone.") :]: v for k, v in official_state_dict(w).items() if k.startswith("backbone.")}
    del sd["last_norm.weight"], sd["last_norm.bias"]
    sd.update({"cls_token": torch.zeros(1, 1, DIM), "norm.weight": torch.ones(DIM), "norm.bias": torch.zeros(DIM)})
    path = tmp_path / "mae.pth"
    torch.save({"model": {"module." + k: v for k, v in sd.items()}}, path)
    model = STDPose(ModelConfig(**SMALL))
    report = load_vitpose_checkpoint(model, path)
    assert sorted(report.unexpected) == ["norm.bias", "norm.weight"]
    assert "backbone.last_norm.weight" in report.missing
    assert any(k.startswith("head.final_layer") for k in report.missing)
    assert not any("num_batches_tracked" in k for k in report.missing)
    assert any("cls_token" in n for n in report.notes)
    assert any("resized from 4x4 to 4x3" in n for n in report.notes)
    with pytest.raises(DataError, match="strict"):
        load_vitpose_checkpoint(model, path, strict=True)


def test_bare_backbone_loads_and_reports_head_keys_unused(tmp_path):
    w = _raw_weights(6, DIM, DEPTH, HEAD_CH, pos_slots=13)
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": mmpose_state_dict(w)}, path)
    vit = VisionTransformer((64, 48), embed_dim=DIM, depth=DEPTH, num_heads=HEADS)
    report = load_vitpose_checkpoint(vit, path)
    assert report.missing == []
    assert report.unexpected and all(k.startswith("head.") for k in report.unexpected)
    torch.testing.assert_close(vit.patch_embed.proj.weight, w["patch_w"])


def test_vit_base_key_names_and_shapes_map_completely():
    """The official ViT-B/256x192 checkpoint's exact keys and shapes fill ViT-B STDPose (meta tensors, no memory)."""
    with torch.device("meta"):
        model = STDPose(ModelConfig(backbone="base"))
        sd = {
            "backbone.pos_embed": torch.empty(1, 193, 768),
            "backbone.patch_embed.proj.weight": torch.empty(768, 3, 16, 16),
            "backbone.patch_embed.proj.bias": torch.empty(768),
            "backbone.last_norm.weight": torch.empty(768),
            "backbone.last_norm.bias": torch.empty(768),
            "keypoint_head.deconv_layers.0.weight": torch.empty(768, 256, 4, 4),
            "keypoint_head.deconv_layers.3.weight": torch.empty(256, 256, 4, 4),
            "keypoint_head.final_layer.weight": torch.empty(17, 256, 1, 1),
            "keypoint_head.final_layer.bias": torch.empty(17),
        }
        for bn in (1, 4):
            for name in ("weight", "bias", "running_mean", "running_var"):
                sd[f"keypoint_head.deconv_layers.{bn}.{name}"] = torch.empty(256)
            sd[f"keypoint_head.deconv_layers.{bn}.num_batches_tracked"] = torch.empty((), dtype=torch.long)
        for i in range(12):
            p = f"backbone.blocks.{i}."
            for n in ("norm1", "norm2"):
                sd[p + n + ".weight"], sd[p + n + ".bias"] = torch.empty(768), torch.empty(768)
            sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"] = torch.empty(2304, 768), torch.empty(2304)
            sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"] = torch.empty(768, 768), torch.empty(768)
            sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"] = torch.empty(3072, 768), torch.empty(3072)
            sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"] = torch.empty(768, 3072), torch.empty(768)
    targets = {f"backbone.{k}": v.shape for k, v in model.backbone.state_dict().items()}
    targets.update({f"head.{k}": v.shape for k, v in model.head.state_dict().items()})
    out, report = convert_vitpose_state_dict(sd, targets, model.backbone.grid)
    assert len(sd) == 2 + 2 + 2 + 12 * 12 + 1 + 2 + 10
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []
    assert len(report.mapped) == len(sd)
    assert all(tuple(out[k].shape) == tuple(targets[k]) for k in out)
    # the same file for a 384x288 model: pos_embed resampled from 16x12 to 24x18
    with torch.device("meta"):
        big = STDPose(ModelConfig(backbone="base", input_size=[384, 288]))
    out, report = convert_vitpose_state_dict(
        sd, {f"backbone.{k}": v.shape for k, v in big.backbone.state_dict().items()}, big.backbone.grid
    )
    assert out["backbone.pos_embed"].shape == (1, 24 * 18, 768)
    assert any("16x12 to 24x18" in n for n in report.notes)


def test_layout_detection_and_grid_inference():
    assert detect_layout(["backbone.blocks.0.norm1.weight"]) == "official"
    assert detect_layout(["backbone.layers.3.ln1.bias"]) == "mmpose"
    assert detect_layout(["encoder.weight"]) == "unknown"
    assert infer_grid(196, (16, 12)) == (14, 14)
    assert infer_grid(192, (16, 12)) == (16, 12)
    assert infer_grid(432, (24, 18)) == (24, 18)


def test_unreadable_files_raise_data_error(tmp_path):
    with pytest.raises(DataError, match="not found") as err:
        read_state_dict(tmp_path / "missing.pth")
    assert "missing.pth" in str(err.value)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(DataError, match="not a readable PyTorch checkpoint"):
        read_state_dict(garbage)
    truncated = tmp_path / "truncated.pth"
    torch.save({"state_dict": {"backbone.pos_embed": torch.zeros(1, 13, 8)}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(DataError, match="not a readable"):
        read_state_dict(truncated)
    listy = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], listy)
    with pytest.raises(DataError, match="expected a dict"):
        read_state_dict(listy)
    foreign = tmp_path / "foreign.pth"
    torch.save({"encoder.weight": torch.zeros(2)}, foreign)
    with pytest.raises(DataError, match="no ViTPose backbone keys") as err:
        load_vitpose_checkpoint(STDPose(ModelConfig(**SMALL)), foreign)
    assert "foreign.pth" in str(err.value)


def test_pickled_objects_need_trust(tmp_path):
    w = _raw_weights(7, DIM, DEPTH, HEAD_CH, pos_slots=13)
    path = tmp_path / "mmengine_style.pth"
    torch.save({"state_dict": mmpose_state_dict(w), "message_hub": argparse.Namespace(iter=3)}, path)
    model = STDPose(ModelConfig(**SMALL))
    with pytest.raises(DataError, match="pretrained_trusted"):
        load_vitpose_checkpoint(model, path)
    report = load_vitpose_checkpoint(model, path, trusted=True)
    assert report.missing == []
