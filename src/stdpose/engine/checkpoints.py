"""Loading a trained model from a `stdpose train` checkpoint, for inference tools (propagate, predict, export).

A checkpoint is a Lightning `.ckpt` whose hyper-parameters hold the full experiment config; the network weights sit
under the `model.` prefix of its state dict (the LightningModule's `model` attribute).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from stdpose.errors import ConfigError, DataError


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict; DataError for a missing, unreadable or non-stdpose file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for truncated/corrupt files
        raise DataError(path, f"cannot read checkpoint ({type(err).__name__}: {_first_line(err)})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise DataError(path, "not a stdpose/Lightning checkpoint (no 'state_dict')")
    config = (ckpt.get("hyper_parameters") or {}).get("config")
    if not isinstance(config, dict) or "model" not in config or "data" not in config:
        raise DataError(path, "checkpoint has no stdpose experiment config (was it written by `stdpose train`?)")
    return ckpt


def load_model_from_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """(STDPose in eval mode on `device`, experiment config) from a `stdpose train` checkpoint."""
    from stdpose.engine.lit import model_config
    from stdpose.model import build_model

    device = check_device(device)
    ckpt = read_checkpoint(path)
    config = ckpt["hyper_parameters"]["config"]
    try:
        mcfg = model_config(with_architecture(config, ckpt["hyper_parameters"].get("architecture")))
        mcfg.pretrained = None  # the checkpoint already holds the trained weights
        model = build_model(mcfg)
    except (ConfigError, TypeError, ValueError, KeyError) as err:
        raise DataError(path, f"the model config stored in the checkpoint is not usable: {_first_line(err)}") from None
    weights = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as err:  # tensor shapes differ from the model its own config builds
        shapes = [line.strip() for line in str(err).splitlines() if "size mismatch" in line]
        hint = ("" if ckpt["hyper_parameters"].get("architecture") else
                "; it stores no resolved sizes (older stdpose): set the model's widths in its config, e.g. ViT-B "
                "before 2026-12 used temporal_dim 384, temporal_heads 6, temporal_mlp_ratio 4")
        raise DataError(path, f"weights do not fit the model in its own config: {len(shapes)} tensor shape(s) "
                              f"differ (e.g. {shapes[0] if shapes else _first_line(err)}){hint}") from None
    if missing or unexpected:
        raise DataError(
            path,
            f"weights do not fit the model in its own config: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})",
        )
    return model.to(device).eval(), config


def with_architecture(config: dict, architecture: Any) -> dict:
    """The experiment config with the model's unset (None) size fields taken from a checkpoint's resolved sizes
    (`ModelConfig.architecture()`); `config` itself unchanged."""
    if not isinstance(architecture, dict):
        return config
    model = dict(config["model"])
    for key, value in architecture.items():
        if model.get(key) is None:
            model[key] = value
    return {**config, "model": model}


def check_device(device: str | torch.device) -> torch.device:
    """A torch device that exists here; ConfigError for unknown names (tpu:9) or CUDA/MPS that is not available."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"--device {device!r} is not a torch device (use cpu, cuda or cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: CUDA is not available on this machine (use --device cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"--device {device}: MPS is not available on this machine (use --device cpu)")
    elif dev.type != "cpu":
        raise ConfigError(f"--device {device}: only cpu, cuda and mps devices are supported")
    return dev


def check_resume_checkpoint(path: str | Path, cfg: dict) -> None:
    """DataError (one line) when `path` cannot be resumed by the experiment `cfg`: unreadable, a pickle that
    weights_only refuses, not written by `stdpose train`, or trained for another task or another model."""
    ckpt = read_checkpoint(path)
    saved = ckpt["hyper_parameters"]["config"]
    if saved["data"].get("task") != cfg["data"].get("task"):
        raise DataError(path, f"checkpoint of a {saved['data'].get('task')} model; this run trains "
                              f"{cfg['data'].get('task')}: give a checkpoint of the same task or no --resume")
    from stdpose.engine.lit import model_config

    architecture = ckpt["hyper_parameters"].get("architecture")
    if architecture:  # compare resolved sizes (not None vs 256), so a changed size default is caught too
        saved = with_architecture(saved, architecture)
        cfg = with_architecture(cfg, model_config(cfg).architecture())
    differ = sorted(k for k in set(saved["model"]) | set(cfg["model"])
                    if k != "pretrained" and saved["model"].get(k) != cfg["model"].get(k))
    if differ:
        shown = ", ".join(f"model.{k}: {saved['model'].get(k)!r} in the checkpoint, {cfg['model'].get(k)!r} here"
                          for k in differ[:3])
        raise DataError(path, f"checkpoint of another model ({shown}); resume with the config it was trained with")


def _first_line(err: BaseException) -> str:
    """The first line of an exception's message (torch's errors run to many lines)."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
