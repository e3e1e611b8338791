"""Pseudo-label pipeline: label windows, sparsifying, merging, quality, config, and the four stages end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest_engine import tiny_overrides

from stdpose.data.records import Frame, Person, Video
from stdpose.engine.pseudolabel import (
    PseudoLabelPipeline,
    label_window,
    load_pseudolabel_config,
    merge_pseudolabels,
    pseudo_label_quality,
    sparsify_video,
    window_video,
)
from stdpose.errors import ConfigError
from stdpose.skeleton import EVALUATED_SLOTS, NUM_SLOTS

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "pseudolabel_synthetic.yaml"



def _person(x: float, track: int, scores: np.ndarray | None = None, propagated: bool = False) -> Person:
    kps = np.zeros((NUM_SLOTS, 3))
    for k, slot in enumerate(EVALUATED_SLOTS):
        kps[slot] = (x + 3 * k, 20 + 6 * k, 1)
    return Person(kps, track_id=track, bbox=(x - 5, 10, 60, 110), bbox_head=(x, 15, 12, 12), scores=scores,
                  propagated=propagated)


def _video(n: int = 12, labeled=None) -> Video:
    labeled = set(range(n)) if labeled is None else set(labeled)
    frames = [Frame(index=i, file_name=f"v/{i:06d}.jpg", is_labeled=i in labeled,
                    persons=[_person(10 + i, 1), _person(80 + i, 2)] if i in labeled else []) for i in range(n)]
    return Video(name="v", frames=frames, vid_id="000001")


def test_label_window_is_the_middle_of_the_longest_run():
    assert label_window([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 4) == [3, 4, 5, 6]
    assert label_window([0, 4, 8, 10, 11, 12, 13, 14, 30], 3) == [11, 12, 13]
    assert label_window([2, 3, 4], 30) == [2, 3, 4]
    assert label_window([5, 1, 9], None) == [1, 5, 9]


def test_sparsify_keeps_every_t_th_label_inside_the_window():
    sparse, plan = sparsify_video(_video(20), interval=4, middle_frames=10)
    assert plan == {"window": [5, 14], "kept": [5, 9, 13], "labeled": 20}
    assert sparse.labeled_indices() == [5, 9, 13]
    assert all(not f.persons for f in sparse.frames if f.index not in (5, 9, 13))
    assert len(sparse.frames[9].persons) == 2 and sparse.num_frames == 20
    empty, plan = sparsify_video(_video(5, labeled=[]), 4, 30)
    assert plan["kept"] == [] and plan["window"] is None and not empty.labeled_indices()


def test_merge_marks_pseudo_labels_and_applies_the_score_threshold():
    sparse, _ = sparsify_video(_video(12), interval=4, middle_frames=None)  # kept 0, 4, 8
    part = window_video(sparse, 2, 9)
    assert part.frames[0].file_name == "v/000002.jpg" and part.frames[0].index == 0
    scores = np.full(NUM_SLOTS, 0.9)
    scores[list(EVALUATED_SLOTS)[:5]] = 0.1
    propagated_frames = []
    for f in part.frames:
        persons = list(f.persons) if f.is_labeled else [
            _person(10, 1, scores=scores, propagated=True), _person(80, 2, scores=np.full(NUM_SLOTS, 0.05),
                                                                   propagated=True)]
        propagated_frames.append(Frame(index=f.index, file_name=f.file_name, persons=persons,
                                       is_labeled=f.is_labeled))
    propagated = Video(name="v", frames=propagated_frames)
    merged, counts = merge_pseudolabels(sparse, propagated, first=2, score_threshold=0.2)
    pseudo = [f.index for f in merged.frames if f.extra.get("pseudo_labeled")]
    assert pseudo == [2, 3, 5, 6, 7, 9]  # unlabeled frames of the window; 4 and 8 keep their human labels
    assert merged.labeled_indices() == [0, 2, 3, 4, 5, 6, 7, 8, 9]
    assert counts == {"pseudo_frames": 6, "pseudo_persons": 6, "dropped_persons": 6, "dropped_joints": 6 * 20}
    p = merged.frames[3].persons[0]
    assert p.propagated and int(p.annotated.sum()) == 10  # 15 joints - 5 below the threshold
    assert not any(q.propagated for q in merged.frames[4].persons)
    assert not merged.frames[10].persons and not merged.frames[10].is_labeled


def test_quality_of_perfect_pseudo_labels_is_100():
    original = _video(8)
    sparse, _ = sparsify_video(original, interval=3, middle_frames=None)
    copies = Video(name="v", frames=[
        Frame(index=f.index, file_name=f.file_name, is_labeled=True,
              persons=[Person(p.keypoints.copy(), track_id=p.track_id, scores=np.ones(NUM_SLOTS), propagated=True)
                       for p in f.persons]) for f in original.frames])
    merged, _ = merge_pseudolabels(sparse, copies, first=0)
    result = pseudo_label_quality([original], [merged])
    assert result.groups["Mean"] == pytest.approx(100.0)
    assert result.num_images == 5  # frames 1, 2, 4, 5, 7
    assert pseudo_label_quality([_video(8, labeled=[])], [merged]) is None


def test_config_resolution_and_errors(tmp_path):
    cfg = load_pseudolabel_config(CONFIG, ["pseudolabel.interval=3", "propagation.trainer.max_epochs=2"],
                                  output_dir=tmp_path / "run")
    assert cfg["propagation"]["data"]["task"] == "propagation"
    assert cfg["propagation"]["data"]["interval"] == 3  # T: aux_inputs predictions trains on the gaps (o, T-o)
    assert cfg["propagation"]["trainer"]["max_epochs"] == 2
    assert cfg["estimation"]["data"]["task"] == "estimation"
    assert cfg["estimation"]["output_dir"] == str(tmp_path / "run" / "estimation")
    assert cfg["estimation"]["model"]["backbone"] == "nano"  # from the base experiment
    with pytest.raises(ConfigError, match="pseudolabel.intervall"):
        load_pseudolabel_config(CONFIG, ["pseudolabel.intervall=3"])
    with pytest.raises(ConfigError, match="interval must be >= 2"):
        load_pseudolabel_config(CONFIG, ["pseudolabel.interval=1"])
    labels_only = load_pseudolabel_config(CONFIG, ["pseudolabel.interval=1", "pseudolabel.estimation_data=labels"])
    assert labels_only["pseudolabel"]["interval"] == 1
    with pytest.raises(ConfigError, match="propagation stage"):
        load_pseudolabel_config(CONFIG, ["propagation.model.backbon=nano"])
    a = PseudoLabelPipeline(cfg, say=lambda _: None)
    b = PseudoLabelPipeline(load_pseudolabel_config(CONFIG, ["pseudolabel.interval=4"]), say=lambda _: None)
    c = PseudoLabelPipeline(load_pseudolabel_config(CONFIG, ["pseudolabel.interval=3",
                                                             "propagation.trainer.max_epochs=2",
                                                             "propagation.trainer.devices=1"]), say=lambda _: None)
    assert a.fingerprint("sparse") != b.fingerprint("sparse")
    assert a.fingerprint("estimation") == c.fingerprint("estimation")  # devices do not change what is learned


def _tiny(data_dir: Path) -> list[str]:
    out = [f"data.train={{annotations: {data_dir}/annotations/train, image_root: {data_dir}}}",
           f"data.val={{annotations: {data_dir}/annotations/val, image_root: {data_dir}}}",
           "pseudolabel.middle_frames=14", "pseudolabel.progress=false", "pseudolabel.device=cpu"]
    extra = {"trainer.max_epochs": 1, "trainer.limit_train_batches": 2, "trainer.limit_val_batches": 1}
    for stage in ("propagation", "estimation"):
        out += [f"{stage}.{item}" for item in tiny_overrides(data_dir, extra)[2:]]  # minus data.train/val
    return out


def test_pipeline_runs_every_stage_then_resumes_and_refuses_stale_outputs(tiny_synthetic, tmp_path, capsys):
    from stdpose.cli import main
    from stdpose.data.formats import read_annotations

    out = tmp_path / "pl"
    args = ["pseudolabel", str(CONFIG), "--output-dir", str(out), "--set", *_tiny(tiny_synthetic)]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sparse"]["labels_kept"] == 4 * 4 and summary["sparse"]["window_frames"] == 4 * 14
    for stage in ("sparse", "propagation", "pseudolabels", "estimation"):
        assert (out / stage / "stage.json").exists()
    assert Path(summary["propagation"]["checkpoint"]).exists() and Path(summary["estimation"]["checkpoint"]).exists()
    assert "Mean" in summary["pseudolabels"]["quality"]["groups"]
    plan = json.loads((out / "sparse" / "plan.json").read_text())
    for video in read_annotations(out / "pseudolabels" / "annotations"):
        first, last = plan[video.name]["window"]
        kept = set(plan[video.name]["kept"])
        assert video.labeled_indices() == list(range(first, last + 1))
        for f in video.frames:
            if f.index in kept:
                assert f.persons and not any(p.propagated for p in f.persons)
            elif first <= f.index <= last:
                assert f.extra.get("pseudo_labeled") and all(p.propagated and p.scores is not None for p in f.persons)
            else:
                assert not f.persons
    capsys.readouterr()

    assert main(args) == 0  # everything done before: nothing runs
    printed = capsys.readouterr().out
    assert "stages run: none" in printed

    assert main([*args, "pseudolabel.interval=3"]) == 2  # other settings than the stored outputs
    assert "--redo sparse" in capsys.readouterr().err

    before = (out / "propagation" / "stage.json").read_text()
    assert main([*args, "--redo", "estimation"]) == 0
    printed = capsys.readouterr().out
    assert "stages run: estimation" in printed
    assert (out / "propagation" / "stage.json").read_text() == before


def test_labels_only_baseline_skips_propagation(tiny_synthetic, tmp_path):
    from stdpose.cli import main

    out = tmp_path / "labels"
    args = ["pseudolabel", str(CONFIG), "--output-dir", str(out), "--set", *_tiny(tiny_synthetic),
            "pseudolabel.estimation_data=labels", "pseudolabel.interval=1"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sparse"]["labeled_fraction"] == 1.0
    assert "propagation" not in summary and not (out / "propagation").exists()
    assert summary["estimation"]["val_mAP"] is not None
