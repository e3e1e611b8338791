"""Path checks shared by every command: an output never replaces an input, and paths taken from label files
(`file_name`, `vid_id`, video names) never reach outside the folder they are meant to be in.

- `refuse_output_over_input`: ConfigError when an output path is the same file as an input (after resolving
  symlinks, `..` and hard links), so `--out` equal to `--labels` cannot destroy the user's labels.
- `check_output_file`: ConfigError when an output file cannot be written where asked (the path is a folder,
  lies under a regular file, or its folder is not writable), before any work is done.
- `confined`: `root / relative` for a path read from a data file; DataError when it is absolute or climbs out of
  `root` with `..`. The check is on the path as written: symlinks the user placed under the root (an `images`
  folder linked to another disk) keep working, a label file cannot steer reads or writes elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from stdpose.errors import ConfigError, DataError

PathLike = str | Path


def same_file(a: PathLike, b: PathLike) -> bool:
    """True when `a` and `b` name the same file or folder: equal once resolved (symlinks followed), or the same
    inode (hard links)."""
    pa, pb = Path(a), Path(b)
    if pa.resolve() == pb.resolve():
        return True
    try:
        return pa.exists() and pb.exists() and os.path.samefile(pa, pb)
    except OSError:
        return False


def refuse_output_over_input(outputs: Mapping[str, PathLike | None], inputs: Mapping[str, PathLike | None]) -> None:
    """ConfigError naming both flags when any output path resolves to any input path. Keys are the flag names
    (e.g. {"--out": ...}, {"--labels": ..., "--video": ...}); None values are ignored."""
    for out_flag, out in outputs.items():
        if out is None:
            continue
        for in_flag, src in inputs.items():
            if src is not None and same_file(out, src):
                raise ConfigError(f"{out_flag} {out} is the same file as {in_flag} {src}: writing it would "
                                  f"overwrite the input; choose another output path")


def check_output_file(path: PathLike, flag: str) -> Path:
    """The output path, after checking that a file can be written there; ConfigError naming `flag` otherwise."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; give a file name")
    _check_writable_ancestor(path, path.parent, flag)
    return path


def check_output_dir(path: PathLike, flag: str) -> Path:
    """The output folder, after checking that it is (or can become) a writable folder; ConfigError otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path} is a file, not a folder")
    _check_writable_ancestor(path, path, flag)
    return path


def _check_writable_ancestor(path: Path, start: Path, flag: str) -> None:
    """ConfigError unless the nearest existing folder at or above `start` is a folder this process can write in."""
    existing = start
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{flag} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: cannot write in {existing} (permission denied)")


def confined(root: PathLike, relative: PathLike, what: str, source: PathLike | None = None) -> Path:
    """`root / relative`, where `relative` comes from a data file (an image's file_name, a video id used as a file
    name). DataError (naming `source` and the value) when it is absolute or resolves outside `root`."""
    rel = str(relative)
    if os.path.isabs(rel) or rel.startswith("~"):
        raise DataError(source, f"{what} {rel!r} is an absolute path; it must be relative to {root}")
    normal = os.path.normpath(rel.replace("\\", "/"))
    if normal == ".." or normal.startswith("../"):
        raise DataError(source, f"{what} {rel!r} leads outside {root} ('..' may not leave it)")
    return Path(root) / rel


def safe_file_name(name: str, what: str, source: PathLike | None = None) -> str:
    """`name` when it can be used as one file name inside an output folder (no separator, not '.' / '..');
    DataError naming the value otherwise."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise DataError(source, f"{what} {name!r} cannot be used as a file name in the output folder")
    return name


def refuse_duplicate_names(names: list[str], flag: str, folder: PathLike) -> None:
    """ConfigError when two outputs would get the same file name in `folder` (one would replace the other)."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ConfigError(f"{flag} {folder}: two videos are named {name!r}, so one output file would replace "
                              "the other; give them distinct folder names or write one .json file")
        seen.add(name)


def check_outputs(files: Mapping[str, PathLike | None], inputs: Mapping[str, PathLike | None],
                  folders: Mapping[str, PathLike | None] | None = None) -> None:
    """What every command calls before it starts: each output file (`files`) and output folder (`folders`) can be
    written and is not one of the `inputs` (flag -> path; None values are ignored). ConfigError otherwise."""
    folders = dict(folders or {})
    for outputs in (files, folders):
        refuse_output_over_input(outputs, inputs)
    for flag, path in files.items():
        if path is not None:
            check_output_file(path, flag)
    for flag, path in folders.items():
        if path is not None:
            check_output_dir(path, flag)
