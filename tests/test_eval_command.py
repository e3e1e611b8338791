"""`stdpose evaluate` end to end on PoseTrack18 and COCO files written by the test."""

from __future__ import annotations

import json

import pytest
from test_eval_poseval_crosscheck import REFERENCE, write_fixture

from stdpose.cli import main


def test_posetrack_table_json_and_reference_number(tmp_path, capsys):
    gt_dir, pred_dir = write_fixture(tmp_path / "fx", 1, False)
    out = tmp_path / "res" / "map.json"
    assert main(["evaluate", "--gt", str(gt_dir), "--pred", str(pred_dir), "--json", str(out), "--per-joint",
                 "--title", "mine"]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0].startswith("PoseTrack mAP: 30 evaluated frames in 5 videos")
    assert lines[1].split() == ["Method", "Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean"]
    assert lines[2].split()[0] == "mine" and lines[2].split()[-1] == f"{REFERENCE[(1, False)][15]:.1f}"
    assert "right_ankle" in printed and "note:" in printed
    data = json.loads(out.read_text())
    assert data["groups"]["Mean"] == pytest.approx(REFERENCE[(1, False)][15], abs=1e-6)
    assert data["inputs"]["format"] == "posetrack" and data["counts"]["videos"] == 5
    assert not [p for p in out.parent.iterdir() if p.name != "map.json"]  # atomic write left no temp file


def test_single_files_and_markdown(tmp_path, capsys):
    gt_dir, pred_dir = write_fixture(tmp_path / "fx", 2, False)
    gt_file = sorted(gt_dir.glob("*.json"))[0]
    assert main(["evaluate", "--gt", str(gt_file), "--pred", str(pred_dir / gt_file.name), "--markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("| Method | Head |") and lines[2].startswith("|")


def test_errors_are_one_line_exit_2(tmp_path, capsys):
    gt_dir, pred_dir = write_fixture(tmp_path / "fx", 1, False)
    assert main(["evaluate", "--gt", str(gt_dir), "--pred", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    # predictions for one video only: strict mode refuses, --lenient counts the others as missed
    one = tmp_path / "one"
    one.mkdir()
    first = sorted(pred_dir.glob("*.json"))[0]
    (one / first.name).write_text(first.read_text())
    assert main(["evaluate", "--gt", str(gt_dir), "--pred", str(one)]) == 2
    assert "no predictions for 4 ground-truth video(s)" in capsys.readouterr().err
    assert main(["evaluate", "--gt", str(gt_dir), "--pred", str(one), "--lenient"]) == 0
    assert "4 ground-truth video(s) have no predictions" in capsys.readouterr().out


def test_coco_format(tmp_path, capsys):
    from test_eval_coco_oks import _gt, _shifted

    gt = _gt()
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(_shifted(gt, 0.72)))
    out = tmp_path / "coco.json"
    assert main(["evaluate", "--format", "coco", "--gt", str(tmp_path / "gt.json"), "--pred",
                 str(tmp_path / "pred.json"), "--json", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["AP", "AP50", "AP75"] and lines[1].split()[:3] == ["50.0", "100.0", "0.0"]
    data = json.loads(out.read_text())
    assert data["stats"]["AP"] == pytest.approx(50.0) and data["stats"]["APm"] is None
