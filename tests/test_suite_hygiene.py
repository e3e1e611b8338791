"""Rules about the test suite itself: it tests the checkout beside it, and tests that read ../shared/data say so."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

import stdpose


def test_the_suite_imports_the_checkout_beside_it():
    # pyproject's pythonpath = ["src"]: whatever stdpose the venv's editable install points at, this checkout wins
    assert Path(stdpose.__file__).resolve().is_relative_to(REPO / "src")


def _marks(node: ast.FunctionDef) -> set[str]:
    names = set()
    for dec in node.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        if isinstance(target, ast.Attribute):
            names.add(target.attr)
    return names


def test_every_test_reading_shared_data_carries_the_realdata_marker():
    offenders = []
    for path in sorted((REPO / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")):
                continue
            calls = {c.func.id for c in ast.walk(node) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
            if "shared_data" in calls and "realdata" not in _marks(node):
                offenders.append(f"{path.name}::{node.name}")
    assert not offenders, f"tests reading ../shared/data without @pytest.mark.realdata: {offenders}"


def test_the_export_help_example_names_a_checkpoint_training_writes():
    import re

    from stdpose.commands import export
    from stdpose.engine.trainer import LAST

    (name,) = re.findall(r"--checkpoint \S*/checkpoints/(\S+\.ckpt)", export.DESCRIPTION)
    assert name == LAST  # training writes last.ckpt and best-epochNNN-<metric><score>.ckpt, never best.ckpt
