"""Reading YAML config files with errors that name the file (missing, invalid YAML, not a mapping)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stdpose.errors import DataError


def read_yaml_mapping(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """The YAML mapping in `path` ({} for an empty file); DataError naming the file otherwise."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise DataError(path, f"{what} not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise DataError(path, f"not valid YAML: {err}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise DataError(path, f"a {what} must be a mapping of sections, got {type(raw).__name__}")
    return raw
