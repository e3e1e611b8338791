"""Atomic output: write to a temporary file beside the target, then rename, so an interrupted run never leaves a
half-written result behind (the old file, if any, stays intact until the new one is complete).

A temporary file is named `.<target name>.stdpose-<pid>-<random><suffix>`. A process killed mid-write (kill -9)
cannot remove its own; the next write of the same target removes those whose process no longer runs."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(target: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it onto `target`, on error delete it.

    `suffix` defaults to the target's own suffix, so writers that choose a codec by extension (OpenCV) still work.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix or target.suffix
    remove_stale_temp_files(target, suffix)
    fd, tmp_name = tempfile.mkstemp(prefix=f"{_temp_prefix(target)}{os.getpid()}-", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give outputs the permissions open() would
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _temp_prefix(target: Path) -> str:
    return f".{target.name}.stdpose-"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temp_files(target: str | Path, suffix: str | None = None) -> list[Path]:
    """Delete the temporary files that killed writers of `target` left beside it; return what was removed."""
    target = Path(target)
    prefix = _temp_prefix(target)
    removed = []
    for tmp in target.parent.glob(f"{glob_escape(prefix)}*{glob_escape(suffix or target.suffix)}"):
        pid_text = tmp.name[len(prefix):].split("-", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _process_alive(int(pid_text)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def glob_escape(text: str) -> str:
    """`text` with glob metacharacters escaped (file names may hold '[' or '*')."""
    import glob

    return glob.escape(text)


def atomic_write_text(target: str | Path, text: str) -> None:
    """Write `text` (UTF-8) to `target` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(target: str | Path, obj: Any, indent: int | None = None) -> None:
    """Serialise `obj` as JSON to `target` atomically."""
    atomic_write_text(target, json.dumps(obj, indent=indent))
