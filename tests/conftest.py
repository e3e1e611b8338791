"""Shared test fixtures: where the real sample data lives, and torch settings for 2-core CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("STDPOSE_SHARED_DATA", REPO.parent / "shared" / "data"))  # env: worktrees elsewhere


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
