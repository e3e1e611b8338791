"""Shared test fixtures: where the real sample data lives, and torch settings for 2-core CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# ../shared/data beside the checkout; STDPOSE_SHARED_DATA points elsewhere (e.g. from a git worktree)
SHARED_DATA = Path(os.environ.get("STDPOSE_SHARED_DATA") or REPO.parent / "shared" / "data")


def run_propagate(capsys: pytest.CaptureFixture, *argv: object) -> tuple[int, str, str]:
    """`stdpose propagate --no-progress ARGV` in this process: (exit code, stdout, stderr)."""
    from stdpose.cli import main

    rc = main(["propagate", "--no-progress", *[str(a) for a in argv]])
    out = capsys.readouterr()
    return rc, out.out, out.err


def shared_data(*parts: str) -> Path:
    """Path under ../shared/data; skips the calling test when the sample data is absent (a user's fresh clone)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real sample data not present: {path}")
    return path


@pytest.fixture(autouse=True)
def _single_thread_torch():
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory):
    """The `tiny` synthetic data set (made once per session, shared by the xdist workers)."""
    from conftest_engine import tiny_synthetic_dir

    return tiny_synthetic_dir(tmp_path_factory)
