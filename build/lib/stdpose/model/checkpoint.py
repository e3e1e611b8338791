"""Loading pretrained ViTPose weights (COCO-trained backbone + heatmap head) into STDPose or a bare ViT.

Two key layouts are understood:

* official ViTPose (mmpose 0.x fork): `backbone.patch_embed.proj.*`, `backbone.pos_embed` of shape (1, 1 + N, C)
  whose FIRST slot is added to every token (`x + pos_embed[:, 1:] + pos_embed[:, :1]`), `backbone.blocks.i.{norm1,
  attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}`, `backbone.last_norm`, `keypoint_head.deconv_layers.{0,1,3,4}`,
  `keypoint_head.final_layer`; an MAE-style `cls_token` is dropped.
* mmpose 1.x (mmpretrain VisionTransformer): `backbone.patch_embed.projection.*`, `backbone.pos_embed` (1, N, C)
  (with (1, N + 1, C) the first slot is dropped, as mmpretrain does), `backbone.layers.i.{ln1, attn.qkv, attn.proj,
  ln2, ffn.layers.0.0, ffn.layers.1}`, `backbone.ln1` (final norm), `head.deconv_layers.*`, `head.final_layer`.

The file may wrap the weights in `state_dict` or `model` and prefix them with `module.`. Position embeddings are
resampled (bicubic) when the checkpoint's grid differs from the model's input size. The 17 COCO head channels are
reordered onto the PoseTrack18 slots (skeleton.COCO_TO_POSETRACK); head_bottom and head_top have no COCO channel and
start as copies of the nose channel (the nearest COCO joint on the head's midline; docs/model.md). Both layouts were
trained with patch padding 2, which is `ModelConfig.patch_padding`'s default.
"""

from __future__ import annotations

import math
import pickle
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from stdpose.errors import DataError
from stdpose.model.backbone import VisionTransformer, resize_pos_embed
from stdpose.skeleton import COCO_TO_POSETRACK

# Slots without a COCO channel copy this COCO channel (index in COCO order; 0 = nose).
MISSING_SLOT_SOURCE = 0

_OFFICIAL_BLOCK = {
    "norm1": "norm1",
    "attn.qkv": "attn.qkv",
    "attn.proj": "attn.proj",
    "norm2": "norm2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
_MMPOSE_BLOCK = {
    "ln1": "norm1",
    "attn.qkv": "attn.qkv",
    "attn.proj": "attn.proj",
    "ln2": "norm2",
    "ffn.layers.0.0": "mlp.fc1",
    "ffn.layers.1": "mlp.fc2",
}
_HEAD_PARTS = ("deconv_layers.0.", "deconv_layers.1.", "deconv_layers.3.", "deconv_layers.4.", "final_layer.")


@dataclass
class LoadReport:
    """What a checkpoint load did. `mapped` pairs checkpoint keys with the model keys they filled."""

    path: str
    layout: str
    mapped: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # backbone/head keys of the model the file did not fill
    unexpected: list[str] = field(default_factory=list)  # checkpoint keys that were not used
    mismatched: list[str] = field(default_factory=list)  # "key: file shape vs model shape", not loaded
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.path}: {self.layout} ViTPose layout, {len(self.mapped)} tensors loaded"]
        if self.missing:
            shown = ", ".join(self.missing[:5]) + (", ..." if len(self.missing) > 5 else "")
            parts.append(f"{len(self.missing)} missing ({shown})")
        if self.unexpected:
            shown = ", ".join(self.unexpected[:5]) + (", ..." if len(self.unexpected) > 5 else "")
            parts.append(f"{len(self.unexpected)} unused ({shown})")
        if self.mismatched:
            parts.append(f"{len(self.mismatched)} shape mismatches ({'; '.join(self.mismatched[:3])})")
        return "; ".join(parts + self.notes)


# ---------------------------------------------------------------------------------------------------- reading
def read_state_dict(path: str | Path, trusted: bool = False) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat {key: tensor} dict (unwrapping `state_dict` / `model`, `module.`).

    Loads with `weights_only=True`; a file that needs arbitrary pickled objects (mmengine checkpoints keep their
    message hub and optimizer state) is refused unless `trusted` is set. Missing or unreadable files raise DataError.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "checkpoint file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt files raise anything from zip errors to IndexError inside the unpickler
        refused = isinstance(err, pickle.UnpicklingError) and "unsupported global" in str(err).lower()
        if not refused:
            raise DataError(path, f"not a readable PyTorch checkpoint ({_first_line(err)})") from err
        if not trusted:
            raise DataError(
                path,
                "the checkpoint stores Python objects besides tensors, so it was not unpickled; re-save its "
                "state_dict, or set model.pretrained_trusted: true if you trust the file's source",
            ) from err
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err2:
            raise DataError(path, f"not a readable PyTorch checkpoint ({_first_line(err2)})") from err2
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    if not isinstance(obj, dict):
        raise DataError(path, f"expected a dict of tensors, found {type(obj).__name__}")
    tensors = {}
    for key, value in obj.items():
        if isinstance(key, str) and isinstance(value, torch.Tensor):
            tensors[key[len("module.") :] if key.startswith("module.") else key] = value
    if not tensors:
        raise DataError(path, "the checkpoint holds no tensors")
    return tensors


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


# ---------------------------------------------------------------------------------------------------- key mapping
def detect_layout(keys: Iterable[str]) -> str:
    """'official' or 'mmpose' from the key names; 'unknown' if neither layout's backbone keys are present."""
    keys = list(keys)
    mm = any(re.search(r"(^|\.)layers\.\d+\.ln1\.", k) or "patch_embed.projection." in k for k in keys)
    official = any(re.search(r"(^|\.)blocks\.\d+\.norm1\.", k) or "patch_embed.proj." in k for k in keys)
    if mm and not official:
        return "mmpose"
    if official and not mm:
        return "official"
    return "unknown"


def canonical_key(key: str, layout: str) -> str | None:
    """Checkpoint key -> our key ("backbone.*" / "head.*"), or None when the key has no place in the model."""
    k = key[len("backbone.") :] if key.startswith("backbone.") else key
    for head_prefix in ("keypoint_head.", "head."):
        if key.startswith(head_prefix):
            rest = key[len(head_prefix) :]
            return "head." + rest if rest.startswith(_HEAD_PARTS) else None
    if k == "pos_embed":
        return "backbone.pos_embed"
    if layout == "official":
        if k.startswith("patch_embed.proj."):
            return "backbone." + k
        if k.startswith("last_norm."):
            return "backbone." + k
        table, block_re = _OFFICIAL_BLOCK, r"blocks\.(\d+)\.(.+)\.(weight|bias)$"
    elif layout == "mmpose":
        if k.startswith("patch_embed.projection."):
            return "backbone.patch_embed.proj." + k[len("patch_embed.projection.") :]
        if k.startswith("ln1."):
            return "backbone.last_norm." + k[len("ln1.") :]
        table, block_re = _MMPOSE_BLOCK, r"layers\.(\d+)\.(.+)\.(weight|bias)$"
    else:
        return None
    m = re.fullmatch(block_re, k)
    if m and m.group(2) in table:
        return f"backbone.blocks.{m.group(1)}.{table[m.group(2)]}.{m.group(3)}"
    return None


def infer_grid(count: int, like: tuple[int, int]) -> tuple[int, int]:
    """A (rows, cols) grid with rows*cols == count: square if possible, else the factor pair closest in aspect."""
    side = math.isqrt(count)
    if side * side == count:
        return side, side
    target = like[0] / like[1]
    pairs = [(a, count // a) for a in range(1, count + 1) if count % a == 0]
    return min(pairs, key=lambda p: abs(math.log(p[0] / p[1]) - math.log(target)))


def convert_pos_embed(
    pos: torch.Tensor,
    layout: str,
    grid: tuple[int, int],
    source_grid: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, list[str]]:
    """Checkpoint pos_embed (1, M, C) -> (1, rows*cols, C) for our `grid`; returns notes on what was done."""
    notes: list[str] = []
    pos = pos.reshape(1, -1, pos.shape[-1])
    n = grid[0] * grid[1]
    m = pos.shape[1]
    has_extra = False
    if source_grid is not None:
        has_extra = m == source_grid[0] * source_grid[1] + 1
    elif layout == "official":
        has_extra = m != n  # ViTPose always allocates num_patches + 1 slots
    elif m == n + 1 or (m != n and math.isqrt(m) ** 2 != m and math.isqrt(m - 1) ** 2 == m - 1):
        has_extra = True
    if has_extra:
        if layout == "official":
            pos = pos[:, 1:] + pos[:, :1]
            notes.append("pos_embed: first slot added to every position (official ViTPose)")
        else:
            pos = pos[:, 1:]
            notes.append("pos_embed: extra first slot dropped (mmpretrain)")
    src = tuple(source_grid) if source_grid is not None else infer_grid(pos.shape[1], grid)
    if src[0] * src[1] != pos.shape[1]:
        raise ValueError(f"source_grid {src} does not match {pos.shape[1]} position slots")
    if tuple(src) != tuple(grid):
        pos = resize_pos_embed(pos, src, grid)
        notes.append(f"pos_embed: resized from {src[0]}x{src[1]} to {grid[0]}x{grid[1]} (bicubic)")
    return pos, notes


def remap_coco_head(tensor: torch.Tensor) -> torch.Tensor:
    """(17, ...) COCO-ordered head channels -> (17, ...) PoseTrack18 slots; slots without COCO joint copy the nose."""
    index = [src if src >= 0 else MISSING_SLOT_SOURCE for src in COCO_TO_POSETRACK]
    return tensor[index].clone()


def convert_vitpose_state_dict(
    state: dict[str, torch.Tensor],
    target_shapes: dict[str, torch.Size],
    grid: tuple[int, int],
    layout: str = "auto",
    head_joints: str = "coco",
    source_grid: tuple[int, int] | None = None,
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Pure conversion: ViTPose `state` -> tensors keyed and shaped like `target_shapes` ("backbone.*", "head.*").

    `head_joints` "coco" reorders 17 COCO channels onto PoseTrack slots; "posetrack" keeps the order.
    The returned report has `path` empty; `missing` lists target keys that stayed unfilled.
    """
    if layout == "auto":
        layout = detect_layout(state)
    if layout not in ("official", "mmpose"):
        raise DataError(None, "no ViTPose backbone keys found (neither blocks.i.* nor layers.i.* / patch_embed.*)")
    report = LoadReport(path="", layout=layout)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        ours = canonical_key(key, layout)
        if key.endswith("cls_token"):
            report.notes.append(f"{key} dropped (the backbone has no class token)")
            continue
        if ours is None or ours not in target_shapes:
            report.unexpected.append(key)
            continue
        if ours == "backbone.pos_embed":
            try:
                value, notes = convert_pos_embed(value, layout, grid, source_grid)
            except ValueError as err:
                report.mismatched.append(f"{key}: {err}")
                continue
            report.notes.extend(notes)
        elif ours.startswith("head.final_layer.") and value.shape[0] == 17 and head_joints == "coco":
            value = remap_coco_head(value)
            if key.endswith("weight"):
                report.notes.append(
                    "head: COCO channels reordered to PoseTrack slots; head_bottom/head_top start from the nose"
                )
        if tuple(value.shape) != tuple(target_shapes[ours]):
            report.mismatched.append(f"{key}: {tuple(value.shape)} vs {tuple(target_shapes[ours])}")
            continue
        out[ours] = value
        report.mapped[key] = ours
    report.missing = sorted(k for k in target_shapes if k not in out and not k.endswith("num_batches_tracked"))
    return out, report


# ---------------------------------------------------------------------------------------------------- loading
def load_vitpose_checkpoint(
    model_or_backbone: nn.Module,
    path: str | Path,
    *,
    layout: str = "auto",
    head_joints: str = "coco",
    source_grid: tuple[int, int] | None = None,
    trusted: bool = False,
    strict: bool = False,
) -> LoadReport:
    """Load a ViTPose checkpoint into an STDPose model (backbone + per-frame head) or a bare VisionTransformer.

    Returns a LoadReport (mapped, missing, unexpected, mismatched, notes). With `strict`, any missing, unexpected or
    mismatched key raises DataError; otherwise only a file from which nothing could be loaded does.
    """
    if isinstance(model_or_backbone, VisionTransformer):
        backbone, head = model_or_backbone, None
    else:
        backbone = getattr(model_or_backbone, "backbone", None)
        head = getattr(model_or_backbone, "head", None)
        if not isinstance(backbone, VisionTransformer):
            raise TypeError("load_vitpose_checkpoint needs an STDPose model or a VisionTransformer")
    targets: dict[str, torch.Tensor] = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    if head is not None:
        targets.update({f"head.{k}": v for k, v in head.state_dict().items()})
    state = read_state_dict(path, trusted=trusted)
    try:
        converted, report = convert_vitpose_state_dict(
            state, {k: v.shape for k, v in targets.items()}, backbone.grid, layout, head_joints, source_grid
        )
    except DataError as err:
        raise DataError(path, err.problem) from err
    report.path = str(path)
    if not converted:
        raise DataError(path, "no tensor of the checkpoint fits the model (" + report.summary() + ")")
    if strict and (report.missing or report.unexpected or report.mismatched):
        raise DataError(path, "strict ViTPose load failed: " + report.summary())
    with torch.no_grad():
        for key, value in converted.items():
            targets[key].copy_(value.to(dtype=targets[key].dtype))
    return report
