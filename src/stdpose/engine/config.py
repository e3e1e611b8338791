"""Experiment configs: one YAML file per experiment, checked key by key before anything is built.

A config has the sections `model:` (keys of `stdpose.model.ModelConfig`), `data:` (keys of
`stdpose.data.dataset.PoseDataModule`), `optim:` (AdamW and its step schedule), `trainer:` (Lightning Trainer:
devices, nodes, strategy, precision, accumulation, ...), `checkpoint:` and `output_dir`. Every section of the
engine's own (`optim`, `trainer`, `checkpoint`, the `data` keys) is filled with defaults, so a YAML only says
what differs. Unknown keys, at any depth, raise ConfigError naming the key and listing the allowed ones: a typo
never silently falls back to a default.

`load_config(path, overrides)` applies dotted command-line overrides (`trainer.max_epochs=1`,
`model.backbone=tiny`, `data.input_size=[128,96]`); values are parsed as YAML. Relative paths in `data` and
`output_dir` are kept as written and resolve against the current directory when used (see docs/training.md).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from stdpose.errors import ConfigError
from stdpose.yaml_io import read_yaml_mapping

TASKS = ("propagation", "estimation")

# Defaults of the sections the engine owns. Paper values (Sec. 4 / Appendix): AdamW, lr 2e-4, x0.1 at epochs 12
# and 16, 20 epochs. weight_decay and warmup are not given in the paper; 1e-4 and no warmup are our choices.
OPTIM_DEFAULTS: dict[str, Any] = {
    "lr": 2.0e-4,
    "weight_decay": 1.0e-4,
    "betas": [0.9, 0.999],
    "milestones": [12, 16],
    "gamma": 0.1,
    "warmup_steps": 0,
    "warmup_factor": 0.001,
}

TRAINER_DEFAULTS: dict[str, Any] = {
    "max_epochs": 20,
    "max_steps": -1,
    "accelerator": "auto",
    "devices": "auto",
    "num_nodes": 1,
    "strategy": "auto",
    "precision": "32-true",
    "accumulate_grad_batches": 1,
    "gradient_clip_val": None,
    "log_every_n_steps": 10,
    "val_check_interval": 1.0,
    "check_val_every_n_epoch": 1,
    "limit_train_batches": 1.0,
    "limit_val_batches": 1.0,
    "num_sanity_val_steps": 0,
    "seed": 0,
    "deterministic": False,
    "enable_progress_bar": True,
    "sync_batchnorm": False,
    "checkpoint_every_n_steps": 0,  # >0: also write checkpoints/step-last.ckpt every N optimizer steps (mid-epoch)
}

CHECKPOINT_DEFAULTS: dict[str, Any] = {
    "keep_every_epoch": False,  # also keep epochNNN.ckpt for every epoch (big for ViT-B), not just last + best
    "every_n_train_steps": 0,  # older name of trainer.checkpoint_every_n_steps (either one turns step checkpoints on)
    "monitor": "val/mAP",
    "mode": "max",
}

SPLIT_KEYS: dict[str, Any] = {"annotations": None, "image_root": None}


def data_defaults() -> dict[str, Any]:
    """Allowed `data:` keys with their defaults, as PoseDataModule defines them."""
    from stdpose.data.dataset import DATA_KEYS

    return copy.deepcopy(dict(DATA_KEYS))


TOP_LEVEL_KEYS = ("description", "output_dir", "model", "data", "optim", "trainer", "checkpoint")

PRECISIONS = ("auto", "32-true", "32", "16-mixed", "16", "bf16-mixed", "bf16", "64-true", "64", "bf16-true",
              "16-true", "transformer-engine")


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> dict:
    """Read the YAML experiment at `path`, apply dotted `overrides` ("a.b=value"), validate and fill defaults.

    Raises DataError when the file is missing or is not valid YAML, ConfigError for unknown keys or bad values.
    """
    raw = read_yaml_mapping(path)
    cfg = copy.deepcopy(raw)
    for item in overrides:
        apply_override(cfg, item)
    return validate_config(cfg, source=str(path))


def parse_override(item: str) -> tuple[list[str], Any]:
    """Split "a.b.c=value" into (["a", "b", "c"], parsed value); values are YAML ("1" -> 1, "[1,2]" -> list)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like section.key=value (e.g. trainer.max_epochs=1)")
    key, _, text = item.partition("=")
    parts = [p.strip() for p in key.strip().split(".")]
    if not parts or any(not p for p in parts):
        raise ConfigError(f"override {item!r}: empty key; write section.key=value")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    return parts, _coerce_number(value)


def apply_override(cfg: dict, item: str) -> None:
    """Set one dotted override in `cfg` in place, creating intermediate sections; key names are checked later."""
    parts, value = parse_override(item)
    node = cfg
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise ConfigError(f"override {item!r}: {where} is a value ({child!r}), not a section")
        node = child
    node[parts[-1]] = value


def _coerce_number(value: Any) -> Any:
    """YAML 1.1 reads '1e-3' as a string; treat number-looking strings as floats (only used for overrides)."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return number if math.isfinite(number) else value
    return value


def check_keys(section: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    """Raise ConfigError for the first key of `section` not in `allowed`, naming it and listing the allowed ones."""
    allowed = list(allowed)
    for key in section:
        if key not in allowed:
            hint = _close_match(str(key), allowed)
            raise ConfigError(
                f"unknown config key '{where}{key}'{hint}; allowed keys in {where.rstrip('.') or 'the top level'}: "
                f"{', '.join(allowed)}"
            )


def _close_match(key: str, allowed: Sequence[str]) -> str:
    import difflib

    match = difflib.get_close_matches(key, allowed, n=1)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _section(cfg: dict, name: str) -> dict:
    value = cfg.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"config section '{name}' must be a mapping of keys, got {value!r}")
    return value


def _fill(section: dict, defaults: dict, where: str) -> dict:
    check_keys(section, defaults, where)
    out = copy.deepcopy(defaults)
    out.update(section)
    return out


def _dataclass_fields(module: str, name: str) -> list[str]:
    """Field names of the dataclass `module.name` (the allowed keys of a config section)."""
    import importlib

    return [f.name for f in dataclasses.fields(getattr(importlib.import_module(module), name))]


def validate_config(cfg: dict, source: str = "config") -> dict:
    """Check every key and value of an experiment config and return a new dict with all defaults filled in."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"{source}: a config must be a mapping of sections")
    check_keys(cfg, TOP_LEVEL_KEYS, "")
    data = _validate_data(_section(cfg, "data"))
    out: dict[str, Any] = {
        "description": str(cfg.get("description") or ""),
        "output_dir": str(cfg.get("output_dir") or "outputs/train"),
        "model": _validate_model(_section(cfg, "model"), data),
        "data": data,
    }
    out["optim"] = _validate_optim(_fill(_section(cfg, "optim"), OPTIM_DEFAULTS, "optim."))
    out["trainer"] = _validate_trainer(_fill(_section(cfg, "trainer"), TRAINER_DEFAULTS, "trainer."))
    out["checkpoint"] = _validate_checkpoint(_fill(_section(cfg, "checkpoint"), CHECKPOINT_DEFAULTS, "checkpoint."))
    return out


def _validate_model(model: dict, data: dict) -> dict:
    """Check the model keys against ModelConfig; its input size is the data's (set once, in data.input_size)."""
    check_keys(model, _dataclass_fields("stdpose.model.config", "ModelConfig"), "model.")
    out = copy.deepcopy(model)
    if "input_size" in out and list(out["input_size"] or []) != data["input_size"]:
        raise ConfigError(f"model.input_size {out['input_size']!r} differs from data.input_size {data['input_size']}; "
                          "set only data.input_size (the model takes it from there)")
    out["input_size"] = list(data["input_size"])
    if out.get("num_joints", 17) != 17:
        raise ConfigError(f"model.num_joints must be 17 (PoseTrack18 slots); got {out['num_joints']!r}")
    return out


def _validate_data(data: dict) -> dict:
    out = _fill(data, data_defaults(), "data.")
    for split in ("train", "val"):
        value = out[split]
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"data.{split} must be a mapping with keys annotations, image_root; got {value!r}")
        out[split] = _fill(value, SPLIT_KEYS, f"data.{split}.")
        for key in SPLIT_KEYS:
            if not out[split][key]:
                raise ConfigError(f"data.{split}.{key} is required (a path; relative paths resolve from the "
                                  "current directory)")
            out[split][key] = str(out[split][key])
    if out["task"] not in TASKS:
        raise ConfigError(f"data.task must be one of {', '.join(TASKS)}; got {out['task']!r}")
    _require_int(out, "interval", "data.", minimum=2)
    size = out["input_size"]
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise ConfigError(f"data.input_size must be [height, width] in pixels, e.g. [256, 192]; got {size!r}")
    if size[0] % 4 or size[1] % 4:
        raise ConfigError(f"data.input_size {list(size)} must be multiples of 4 (heatmaps are 1/4 of the input); "
                          "e.g. [256, 192] or [128, 96]")
    out["input_size"] = [int(size[0]), int(size[1])]
    _require_number(out, "sigma", "data.", minimum=0.0, exclusive=True)
    _require_int(out, "batch_size", "data.", minimum=1)
    if out["val_batch_size"] is not None:
        _require_int(out, "val_batch_size", "data.", minimum=1)
    _require_int(out, "num_workers", "data.", minimum=0)
    if out["crop"] not in ("key", "segment"):
        raise ConfigError(f"data.crop must be 'key' or 'segment'; got {out['crop']!r}")
    if "val_protocol" in out and out["val_protocol"] not in ("sparse", "posewarper"):
        raise ConfigError(f"data.val_protocol must be 'sparse' or 'posewarper'; got {out['val_protocol']!r}")
    if out["aux_inputs"] not in ("labels", "predictions"):
        raise ConfigError(f"data.aux_inputs must be 'labels' or 'predictions' (paper Sec. 4.2: predictions in "
                          f"training, labels at inference); got {out['aux_inputs']!r}")
    if "enlarge" in out:
        _require_number(out, "enlarge", "data.", minimum=0.0, exclusive=True)
    augment = out["augment"]
    if augment is not None:
        if not isinstance(augment, dict):
            raise ConfigError(f"data.augment must be a mapping of augmentation settings; got {augment!r}")
        check_keys(augment, _dataclass_fields("stdpose.data.transforms", "AugmentConfig"), "data.augment.")
    return out


def _validate_optim(optim: dict) -> dict:
    _require_number(optim, "lr", "optim.", minimum=0.0, exclusive=True)
    _require_number(optim, "weight_decay", "optim.", minimum=0.0)
    _require_number(optim, "gamma", "optim.", minimum=0.0, exclusive=True)
    _require_int(optim, "warmup_steps", "optim.", minimum=0)
    _require_number(optim, "warmup_factor", "optim.", minimum=0.0, exclusive=True)
    if optim["warmup_factor"] > 1:
        raise ConfigError(f"optim.warmup_factor must be in (0, 1]; got {optim['warmup_factor']}")
    betas = optim["betas"]
    if not isinstance(betas, (list, tuple)) or len(betas) != 2 or not all(_is_number(b) and 0 <= b < 1 for b in betas):
        raise ConfigError(f"optim.betas must be two numbers in [0, 1), e.g. [0.9, 0.999]; got {betas!r}")
    optim["betas"] = [float(b) for b in betas]
    ms = optim["milestones"]
    if not isinstance(ms, (list, tuple)) or not all(isinstance(m, int) and not isinstance(m, bool) and m > 0
                                                    for m in ms) or list(ms) != sorted(ms):
        raise ConfigError(f"optim.milestones must be increasing positive epoch numbers, e.g. [12, 16]; got {ms!r}")
    optim["milestones"] = list(ms)
    return optim


def _validate_trainer(tr: dict) -> dict:
    _require_int(tr, "max_epochs", "trainer.", minimum=1)
    _require_int(tr, "max_steps", "trainer.", minimum=-1)
    _require_int(tr, "num_nodes", "trainer.", minimum=1)
    _require_int(tr, "accumulate_grad_batches", "trainer.", minimum=1)
    _require_int(tr, "log_every_n_steps", "trainer.", minimum=1)
    _require_int(tr, "num_sanity_val_steps", "trainer.", minimum=-1)
    _require_int(tr, "seed", "trainer.", minimum=0)
    _require_int(tr, "checkpoint_every_n_steps", "trainer.", minimum=0)
    if tr["check_val_every_n_epoch"] is not None:
        _require_int(tr, "check_val_every_n_epoch", "trainer.", minimum=1)
    for key in ("val_check_interval", "limit_train_batches", "limit_val_batches"):
        _require_number(tr, key, "trainer.", minimum=0.0)
    if tr["gradient_clip_val"] is not None:
        _require_number(tr, "gradient_clip_val", "trainer.", minimum=0.0)
    precision = str(tr["precision"])
    if precision not in PRECISIONS:
        raise ConfigError(f"trainer.precision must be one of {', '.join(PRECISIONS)}; got {tr['precision']!r}")
    tr["precision"] = precision
    devices = tr["devices"]
    ok_devices = (
        devices == "auto"
        or (isinstance(devices, int) and not isinstance(devices, bool) and (devices >= 1 or devices == -1))
        or (isinstance(devices, str) and devices.replace(",", "").strip().lstrip("-").isdigit())
        or (isinstance(devices, list) and all(isinstance(d, int) for d in devices) and devices)
    )
    if not ok_devices:
        raise ConfigError(f"trainer.devices must be 'auto', a count (1, 2, -1 for all) or a list of device ids; "
                          f"got {devices!r}")
    for key in ("accelerator", "strategy"):
        if not isinstance(tr[key], str) or not tr[key]:
            raise ConfigError(f"trainer.{key} must be a name such as 'auto'; got {tr[key]!r}")
    for key in ("deterministic", "enable_progress_bar", "sync_batchnorm"):
        if not isinstance(tr[key], bool):
            raise ConfigError(f"trainer.{key} must be true or false; got {tr[key]!r}")
    return tr


def _validate_checkpoint(ck: dict) -> dict:
    if not isinstance(ck["keep_every_epoch"], bool):
        raise ConfigError(f"checkpoint.keep_every_epoch must be true or false; got {ck['keep_every_epoch']!r}")
    _require_int(ck, "every_n_train_steps", "checkpoint.", minimum=0)
    if ck["mode"] not in ("max", "min"):
        raise ConfigError(f"checkpoint.mode must be 'max' or 'min'; got {ck['mode']!r}")
    if not isinstance(ck["monitor"], str) or not ck["monitor"]:
        raise ConfigError(f"checkpoint.monitor must be a logged metric name such as val/mAP; got {ck['monitor']!r}")
    return ck


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _require_number(section: dict, key: str, where: str, minimum: float, exclusive: bool = False) -> None:
    value = _coerce_number(section[key])
    bad = not _is_number(value) or value < minimum or (exclusive and value == minimum)
    if bad:
        relation = ">" if exclusive else ">="
        raise ConfigError(f"{where}{key} must be a number {relation} {minimum}; got {section[key]!r}")
    section[key] = float(value) if isinstance(value, float) else value


def _require_int(section: dict, key: str, where: str, minimum: int) -> None:
    value = section[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{where}{key} must be a whole number >= {minimum}; got {value!r}")


def dump_config(cfg: dict) -> str:
    """The config as YAML text (the resolved form written beside checkpoints)."""
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None)
