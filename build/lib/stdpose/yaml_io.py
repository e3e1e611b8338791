"""Reading YAML config files with errors that name the file (missing, invalid YAML, not a mapping).

A config that is not a file on disk may name one shipped inside the package (`stdpose/configs/`): a bare name
(`synthetic_demo`, `synthetic_demo.yaml`) or the repository path `configs/NAME.yaml`, so the documented commands
work outside a clone (after `pip install stdpose`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stdpose.errors import DataError


def packaged_config_names() -> list[str]:
    """Names of the configs shipped in the package (without .yaml)."""
    folder = _packaged_folder()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def _packaged_folder() -> Path:
    return Path(__file__).resolve().parent / "configs"


def resolve_config_path(path: str | Path) -> Path:
    """`path` when it is a file; else the shipped config it names (see the module docstring); else `path`."""
    path = Path(path)
    if path.is_file():
        return path
    bare = len(path.parts) == 1 or (len(path.parts) == 2 and path.parts[0] == "configs")
    if bare and path.suffix in ("", ".yaml", ".yml"):
        shipped = _packaged_folder() / f"{path.stem}.yaml"
        if shipped.is_file():
            return shipped
    return path


def read_yaml_mapping(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """The YAML mapping in `path` (or the shipped config it names; {} for an empty file); DataError naming the
    file otherwise."""
    import yaml

    path = resolve_config_path(path)
    if not path.is_file():
        names = packaged_config_names()
        hint = f" (shipped configs: {', '.join(names)})" if names else ""
        raise DataError(path, f"{what} not found{hint}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise DataError(path, f"not valid YAML: {err}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise DataError(path, f"a {what} must be a mapping of sections, got {type(raw).__name__}")
    return raw
