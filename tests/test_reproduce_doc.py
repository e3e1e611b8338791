"""Every command of docs/reproduce.md runs: on a tiny synthetic stand-in of the PoseTrack layouts, with tiny-run
additions (the mechanism is described in the doc's "How this page is tested" section)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest_engine import tiny_overrides, tiny_synthetic_dir

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "reproduce.md"

# `stdpose` inside the doc's bash blocks: record (block line, argc, argv...) NUL-separated instead of running.
PRELUDE = """\
stdpose() {
  { printf '%s\\0' "${BASH_LINENO[0]}" "$#"; printf '%s\\0' "$@"; } >> "$STDPOSE_DOC_LOG"
}
"""
TRAIN_EXTRA = {"trainer.max_epochs": 1, "trainer.limit_train_batches": 2, "trainer.limit_val_batches": 1}


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)


def record_commands(block: str, cwd: Path, log: Path) -> list[tuple[int, list[str]]]:
    """Run a block with bash, `stdpose` recording its commands; [(line in the block, argv after 'stdpose')]."""
    log.write_bytes(b"")
    env = {**os.environ, "STDPOSE_DOC_LOG": str(log)}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", PRELUDE + block], cwd=cwd, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, f"bash failed on:\n{block}\n{done.stderr}"
    fields = log.read_bytes().split(b"\0")[:-1]
    out, i = [], 0
    while i < len(fields):
        line, argc = int(fields[i]), int(fields[i + 1])
        out.append((line, [f.decode() for f in fields[i + 2 : i + 2 + argc]]))
        i += 2 + argc
    return out


def _stand_in(root: Path, synthetic: Path) -> None:
    """data/posetrack{17,18,21} laid out as the doc says, from the tiny synthetic videos; configs/ linked."""
    from stdpose.data.formats import read_annotations, write_posetrack17

    (root / "configs").symlink_to(REPO / "configs")
    for name, ann_dir in (("posetrack17", "annotations"), ("posetrack18", "annotations"),
                          ("posetrack21", "posetrack_data")):
        base = root / "data" / name
        (base / "boxes").mkdir(parents=True)
        (base / "images").symlink_to(synthetic / "images")
        (base / "boxes" / "val_boxes.json").symlink_to(synthetic / "detections" / "val.json")
        for split in ("train", "val"):
            target = base / ann_dir / split
            if name == "posetrack17":  # PoseTrack17 files are poseval JSON (annolist)
                target.mkdir(parents=True)
                for video in read_annotations(synthetic / "annotations" / split):
                    write_posetrack17(video, target / f"{video.name}.json")
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(synthetic / "annotations" / split)


def _tiny_train(synthetic: Path) -> list[str]:
    return tiny_overrides(synthetic, TRAIN_EXTRA)[2:]  # without data.train/val: the stand-in is at the config paths


def _run_extra(argv: list[str], synthetic: Path) -> list[str]:
    command = argv[0]
    if command == "train":
        return ["--set", *_tiny_train(synthetic)]
    if command == "pseudolabel":
        stages = [f"{stage}.{item}" for stage in ("propagation", "estimation") for item in _tiny_train(synthetic)]
        return ["--set", *stages, "pseudolabel.middle_frames=14", "pseudolabel.device=cpu",
                "pseudolabel.progress=false"]
    if command in ("predict", "propagate"):
        return ["--device", "cpu", "--no-progress"]
    return []


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory) -> tuple[Path, Path]:
    synthetic = tiny_synthetic_dir(tmp_path_factory)
    root = tmp_path_factory.mktemp("reproduce_doc")
    _stand_in(root, synthetic)
    return root, synthetic


def test_doc_has_a_section_and_commands_for_every_paper_table():
    text = DOC.read_text(encoding="utf-8")
    for table in range(1, 7):
        assert re.search(rf"^## Table {table}:", text, flags=re.M), f"no section for Table {table}"
    assert len(bash_blocks(text)) >= 7
    for number in ("90.9", "88.0", "86.9", "87.4", "84.5", "84.3", "82.4", "85.2", "86.8", "91.7"):
        assert number in text  # the paper's numbers to compare with


def test_every_doc_command_parses_and_runs_on_the_stand_in(stand_in, monkeypatch, capsys):
    from stdpose.cli import build_parser, main

    root, synthetic = stand_in
    monkeypatch.chdir(root)
    blocks = bash_blocks(DOC.read_text(encoding="utf-8"))
    recorded = [(b, line, argv) for b, block in enumerate(blocks)
                for line, argv in record_commands(block, root, root / "commands.log")]
    assert len(recorded) > 40  # the loops expand (6 variants, 6 intervals, 20 DAM pairs, every val video ...)
    commands = {argv[0] for _, _, argv in recorded}
    assert {"train", "predict", "evaluate", "pseudolabel", "propagate"} <= commands

    parser = build_parser()
    for _, _, argv in recorded:  # every command: flags parse; configs resolve with the doc's own overrides
        parser.parse_args(argv)
        if argv[0] in ("train", "pseudolabel"):
            assert main([*argv, "--print-config"]) == 0, f"config does not resolve: stdpose {' '.join(argv)}"
    capsys.readouterr()

    seen: set[tuple[int, int]] = set()
    ran = 0
    for b, line, argv in recorded:  # the first command of each block line (loop bodies: first iteration)
        if (b, line) in seen:
            continue
        seen.add((b, line))
        code = main([*argv, *_run_extra(argv, synthetic)])
        printed = capsys.readouterr()
        assert code == 0, f"stdpose {' '.join(argv)} exited {code}:\n{printed.err[-2000:]}"
        ran += 1
    assert ran >= 15
    assert (root / "outputs" / "pt17_estimation" / "val_map.json").exists()
    assert (root / "outputs" / "pt17_pseudolabel_T7" / "summary.json").exists()
    assert list((root / "outputs" / "pt18_propagation" / "val_propagated").glob("*.json"))
