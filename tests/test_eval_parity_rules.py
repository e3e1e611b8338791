"""The three rules where stdpose's PoseTrack mAP used to differ from poseval, each pinned by a hand-computed case:
frames with persons but `is_labeled: false`, joints within rounding distance of an ignore-region edge, and
predictions far outside the image (scored as misses with a count, never refused). Plus: a ground truth with
nothing to evaluate is an error, not a table of zeros."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from stdpose.cli import main
from stdpose.data.formats import write_posetrack18
from stdpose.data.records import Frame, Person, Video
from stdpose.errors import DataError
from stdpose.eval.polygon import points_strictly_inside
from stdpose.eval.posetrack_map import evaluate_paths, evaluate_posetrack
from stdpose.skeleton import EVALUATED_SLOTS, NUM_SLOTS

HEAD = (0.0, 0.0, 30.0, 40.0)  # head size 0.6 * 50 = 30 px: correct within 15 px


def pose(dx: float = 0.0) -> np.ndarray:
    kps = np.zeros((NUM_SLOTS, 3))
    for i, slot in enumerate(EVALUATED_SLOTS):
        kps[slot] = (200 + dx + 40 * (i % 4), 60 + 25 * i, 1.0)
    return kps


def one_video(persons_per_frame, labeled, name="000001_mpii_test", regions=None, size=(640, 480)) -> Video:
    frames = [Frame(index=i, file_name=f"images/val/{name}/{i:06d}.jpg", persons=list(p), is_labeled=lab,
                    width=size[0], height=size[1], ignore_regions=(regions or {}).get(i, []))
              for i, (p, lab) in enumerate(zip(persons_per_frame, labeled))]
    return Video(name=name, frames=frames, vid_id=name.split("_")[0])


def gt(kps=None) -> Person:
    return Person(keypoints=pose() if kps is None else kps, bbox_head=HEAD)


def pred(kps=None, score=0.9) -> Person:
    return Person(keypoints=pose() if kps is None else kps, scores=np.full(NUM_SLOTS, score))


# ------------------------------------------------------------------ rule 1: is_labeled false, persons present
def test_unlabeled_frame_with_persons_is_scored_as_poseval_does_and_strict_rule_is_named(tmp_path, capsys):
    # frame 0 labeled, frame 1 says is_labeled false but holds a person; the prediction misses frame 1's person.
    g = one_video([[gt()], [gt()]], labeled=[True, False])
    p = one_video([[pred()], [pred(pose(dx=100), score=0.8)]], labeled=[True, True])
    write_posetrack18(g, tmp_path / "gt.json")
    write_posetrack18(p, tmp_path / "pred.json")
    # poseval: both frames -> per joint 2 GT; ranked 0.9 (frame 0, TP), 0.8 (frame 1, 100 px off: FP) ->
    # precision [1, 1/2], recall [1/2, 1/2] -> AP = 1/2 * 1 = 50
    result = evaluate_paths(tmp_path / "gt.json", tmp_path / "pred.json")
    assert result.num_images == 2 and result.groups["Mean"] == pytest.approx(50.0)
    # the stricter rule: only frame 0 -> AP 100
    strict = evaluate_paths(tmp_path / "gt.json", tmp_path / "pred.json", labeled_only=True)
    assert strict.num_images == 1 and strict.groups["Mean"] == pytest.approx(100.0)
    assert main(["evaluate", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.json"),
                 "--labeled-only"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "--labeled-only" in header and "1 evaluated frames" in header


# ------------------------------------------------------------------ rule 2: exact point-in-polygon
def _exact_orientation(a, b, p) -> Fraction:
    """Twice the signed area of (a, b, p) in exact rational arithmetic on the float values (> 0: p left of a->b)."""
    (ax, ay), (bx, by), (px, py) = [(Fraction(x), Fraction(y)) for x, y in (a, b, p)]
    return (bx - ax) * (py - ay) - (by - ay) * (px - ax)


def test_joint_within_rounding_distance_of_an_edge_gets_the_exact_answer():
    # In decimal arithmetic (2.6, 11.5) lies on the edge (1.3, 18.0) -> (4.0, 4.5) (slope -5). As binary floats
    # it lies 4.4e-16 to the left of it (exact), i.e. on the side of the third vertex (10, 20): strictly inside
    # for GEOS (poseval). Plain float64 arithmetic gets a cross product of exactly 0 and calls it boundary.
    a, b, c, p = (1.3, 18.0), (4.0, 4.5), (10.0, 20.0), (2.6, 11.5)
    assert (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]) == 0.0  # what floats say
    assert _exact_orientation(a, b, p) > 0 and _exact_orientation(a, b, c) > 0  # same side as c: inside
    assert _exact_orientation(b, c, p) > 0 and _exact_orientation(c, a, p) > 0
    xs, ys = (a[0], b[0], c[0]), (a[1], b[1], c[1])
    assert points_strictly_inside(np.array([p]), xs, ys).tolist() == [True]
    # a point exactly on an edge in float terms too (a vertex) stays boundary: not inside
    assert points_strictly_inside(np.array([a]), xs, ys).tolist() == [False]

    # in the metric: the GT joint at p is removed by the ignore region, so the one joint there is not counted
    kps = pose()
    kps[EVALUATED_SLOTS[0], :2] = p
    g = one_video([[gt(kps)]], labeled=[True], regions={0: [(list(xs), list(ys))]})
    result = evaluate_posetrack([g], [one_video([[pred(kps)]], labeled=[True])])
    assert result.counts["gt_joints_ignored"] == 1 and result.counts["pred_joints_ignored"] == 1


# ------------------------------------------------------------------ rule 3: predictions far outside the image
def test_predictions_far_outside_the_image_are_misses_with_a_warning_count(tmp_path, capsys):
    far = pose(dx=1e6)  # x around 1e6 in a 640x480 image
    write_posetrack18(one_video([[gt()]], labeled=[True]), tmp_path / "gt.json")
    write_posetrack18(one_video([[pred(far, 0.9), pred(score=0.5)]], labeled=[True]), tmp_path / "pred.json")
    # per joint: 1 GT; ranked 0.9 (far: FP), 0.5 (TP) -> precision [0, 1/2], recall [0, 1] -> AP 50
    result = evaluate_paths(tmp_path / "gt.json", tmp_path / "pred.json")
    assert result.groups["Mean"] == pytest.approx(50.0)
    assert result.counts["pred_joints_outside_image"] == len(EVALUATED_SLOTS)  # 15: ears not evaluated
    assert main(["evaluate", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.json")]) == 0
    out = capsys.readouterr().out
    assert "warning: 15 predicted joint(s) lie far outside their image" in out


def test_ground_truth_far_outside_the_image_is_still_refused(tmp_path):
    write_posetrack18(one_video([[gt(pose(dx=1e6))]], labeled=[True]), tmp_path / "gt.json")
    write_posetrack18(one_video([[pred()]], labeled=[True]), tmp_path / "pred.json")
    with pytest.raises(DataError, match="lies outside the 640x480 image"):
        evaluate_paths(tmp_path / "gt.json", tmp_path / "pred.json")


def test_ground_truth_without_any_frame_to_evaluate_is_an_error(tmp_path, capsys):
    write_posetrack18(one_video([[], []], labeled=[True, False]), tmp_path / "gt.json")
    write_posetrack18(one_video([[pred()], []], labeled=[True, True]), tmp_path / "pred.json")
    code = main(["evaluate", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.json"),
                 "--json", str(tmp_path / "out.json")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "gt.json" in err and "nothing to evaluate" in err
    assert not (tmp_path / "out.json").exists()
