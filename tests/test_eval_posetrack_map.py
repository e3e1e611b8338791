"""PoseTrack mAP on small hand-computed cases, the building blocks (polygon, AP, matching), and bad input.

Every expected number below is worked out by hand in the comment beside it (head box 30 x 40 -> diagonal 50 ->
head size 0.6 * 50 = 30 px -> a joint is correct within 0.5 * 30 = 15 px).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import shared_data

from stdpose.data.records import Frame, Person, Video
from stdpose.errors import ConfigError, DataError
from stdpose.eval.ap import joint_ap, precision_recall, voc_ap
from stdpose.eval.matching import head_size, match_image
from stdpose.eval.polygon import points_in_regions, points_strictly_inside, ring_is_usable
from stdpose.eval.posetrack_map import JOINT_NAMES, PoseTrackMapResult, evaluate_paths, evaluate_posetrack
from stdpose.skeleton import EVALUATED_SLOTS, GROUP_NAMES, NUM_SLOTS, POSEVAL_NAMES, SLOT

HEAD = (0.0, 0.0, 30.0, 40.0)  # head size 30 px, threshold 15 px


def pose(dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    """17 slots, evaluated joints 40 px apart (farther than any threshold here), ears (0, 0, 0)."""
    kps = np.zeros((NUM_SLOTS, 3))
    for i, slot in enumerate(EVALUATED_SLOTS):
        kps[slot] = (200 + dx + 40 * (i % 4), 100 + dy + 40 * i, 1.0)
    return kps


def gt_person(kps: np.ndarray | None = None, head=HEAD) -> Person:
    return Person(keypoints=pose() if kps is None else kps, bbox_head=head)


def pred_person(kps: np.ndarray | None = None, score: float | None = 0.9) -> Person:
    scores = None if score is None else np.full(NUM_SLOTS, score)
    return Person(keypoints=pose() if kps is None else kps, scores=scores)


def video(frames_persons: list[list[Person]], name: str = "000001_mpii_test", labeled=None, regions=None) -> Video:
    frames = []
    for i, persons in enumerate(frames_persons):
        frames.append(Frame(index=i, file_name=f"images/val/{name}/{i:06d}.jpg", persons=persons,
                            is_labeled=True if labeled is None else labeled[i],
                            ignore_regions=(regions or {}).get(i, [])))
    return Video(name=name, frames=frames, vid_id=name.split("_")[0])


def ap_of(result: PoseTrackMapResult, joint: str) -> float:
    return result.per_joint[joint]


# ---------------------------------------------------------------------------------------------------------------
# whole evaluation, hand-computed


@pytest.mark.parametrize("score", [0.7, None])
def test_perfect_predictions_give_100(score):
    gt = [video([[gt_person(), gt_person(pose(dx=400))], [gt_person()]])]
    pred = [video([[pred_person(score=score), pred_person(pose(dx=400), score=score)], [pred_person(score=score)]])]
    result = evaluate_posetrack(gt, pred)
    assert result.num_images == 2
    assert all(v == pytest.approx(100.0) for v in result.per_joint.values())
    assert all(result.groups[g] == pytest.approx(100.0) for g in GROUP_NAMES)


def test_one_joint_beyond_the_threshold():
    kps = pose()
    kps[SLOT["right_wrist"], 0] += 15.1  # 15.1 px > 15 px: wrong
    kps[SLOT["left_wrist"], 1] += 14.9  # 14.9 px <= 15 px: still right
    result = evaluate_posetrack([video([[gt_person()]])], [video([[pred_person(kps)]])])
    # right_wrist: one detection, false -> precision 0 -> AP 0; every other joint AP 100
    assert ap_of(result, "right_wrist") == 0.0
    assert ap_of(result, "left_wrist") == pytest.approx(100.0)
    assert result.groups["Wrist"] == pytest.approx(50.0)
    assert result.groups["Elbow"] == pytest.approx(100.0)
    assert result.groups["Mean"] == pytest.approx(14 * 100 / 15)


def test_false_positive_person_lowers_precision_by_rank():
    far = pose(dx=600)
    # FP ranked first (0.95 > 0.9): precisions [0, 1/2], recalls [0, 1] -> AP = 1 x 0.5 = 50 for every joint
    result = evaluate_posetrack([video([[gt_person()]])], [video([[pred_person(), pred_person(far, 0.95)]])])
    assert result.groups["Mean"] == pytest.approx(50.0)
    assert result.precision["nose"] == pytest.approx(50.0) and result.recall["nose"] == pytest.approx(100.0)
    # FP ranked last: precisions [1, 1/2], recalls [1, 1] -> AP 100 (the envelope keeps precision 1 to recall 1)
    result = evaluate_posetrack([video([[gt_person()]])], [video([[pred_person(), pred_person(far, 0.5)]])])
    assert result.groups["Mean"] == pytest.approx(100.0)


def test_prediction_and_ground_truth_inside_an_ignore_region_are_removed():
    region = ((550.0, 1000.0, 1000.0, 550.0), (50.0, 50.0, 800.0, 800.0))  # a box around x 550..1000
    gt = [video([[gt_person(), gt_person(pose(dx=400))]], regions={0: [region]})]  # 2nd GT person inside
    fp_inside = pred_person(pose(dx=420), 0.99)  # a confident prediction inside, far from any GT (not matched)
    fp_inside.keypoints[:, 2] = np.where(fp_inside.keypoints[:, 2] > 0, 1, 0)
    result = evaluate_posetrack(gt, [video([[pred_person(), fp_inside]])])
    # without removal: the GT inside would be missed (recall 1/2) and the FP ranked first
    assert result.groups["Mean"] == pytest.approx(100.0)
    assert result.counts["gt_joints_ignored"] == 15 and result.counts["pred_joints_ignored"] == 15
    no_region = evaluate_posetrack([video([[gt_person(), gt_person(pose(dx=400))]])],
                                   [video([[pred_person(), fp_inside]])])
    # FP first, then the TP: precision [0, 1/2], recall [0, 1/2] -> AP = 0.5 x 0.5 = 25
    assert no_region.groups["Mean"] == pytest.approx(25.0)


def test_joint_on_the_ignore_region_boundary_is_kept():
    kps = pose()
    x, y = kps[SLOT["nose"], :2]
    region = ((x, x + 30, x + 30, x), (y - 20, y - 20, y + 20, y + 20))  # nose lies on the left edge
    result = evaluate_posetrack([video([[gt_person()]], regions={0: [region]})], [video([[pred_person()]])])
    assert result.counts["gt_joints_ignored"] == 0
    assert result.groups["Mean"] == pytest.approx(100.0)


def test_missing_predicted_joint_is_a_miss():
    kps = pose()
    kps[SLOT["right_knee"]] = 0.0  # not predicted
    result = evaluate_posetrack([video([[gt_person()]])], [video([[pred_person(kps)]])])
    assert ap_of(result, "right_knee") == 0.0  # no detection of an annotated joint: AP 0
    assert result.groups["Knee"] == pytest.approx(50.0)
    assert result.groups["Mean"] == pytest.approx(14 * 100 / 15)


def test_joint_without_ground_truth_is_nan_and_left_out_of_the_mean():
    gt_kps = pose()
    gt_kps[SLOT["left_ankle"]] = 0.0  # never annotated anywhere
    result = evaluate_posetrack([video([[gt_person(gt_kps)]])], [video([[pred_person()]])])
    assert math.isnan(ap_of(result, "left_ankle"))  # detections but no ground truth: poseval gives NaN
    assert math.isnan(result.groups["Ankle"])
    assert result.groups["Mean"] == pytest.approx(100.0)  # the mean over the 14 other joints
    assert result.to_dict()["per_joint"]["left_ankle"] is None
    assert any("left_ankle" in n for n in result.notes)
    # neither ground truth nor detections: poseval's AP is 0, and it counts in the mean
    pred_kps = pose()
    pred_kps[SLOT["left_ankle"]] = 0.0
    result = evaluate_posetrack([video([[gt_person(gt_kps)]])], [video([[pred_person(pred_kps)]])])
    assert ap_of(result, "left_ankle") == 0.0
    assert result.groups["Mean"] == pytest.approx(14 * 100 / 15)


def test_missed_person_halves_recall():
    gt = [video([[gt_person(), gt_person(pose(dx=400))]])]
    result = evaluate_posetrack(gt, [video([[pred_person(pose(dx=400))]])])
    # one TP per joint, two GT: precision [1], recall [1/2] -> AP 50
    assert result.groups["Mean"] == pytest.approx(50.0)


def test_duplicate_prediction_is_a_false_positive_and_the_first_wins():
    gt = [video([[gt_person()]])]
    # identical PCKh: the first prediction is assigned; the duplicate (score 0.95, ranked first) is an FP -> AP 50
    result = evaluate_posetrack(gt, [video([[pred_person(score=0.9), pred_person(score=0.95)]])])
    assert result.groups["Mean"] == pytest.approx(50.0)
    # the better-placed duplicate (higher PCKh) wins regardless of order
    off = pose()
    off[[SLOT["nose"], SLOT["head_top"]], 0] += 20  # 2 of 15 joints wrong
    result = evaluate_posetrack(gt, [video([[pred_person(off, 0.95), pred_person(score=0.9)]])])
    # every joint: the 0.95 detection is an FP, the 0.9 one a TP -> AP 50
    assert result.groups["Mean"] == pytest.approx(50.0)


def test_empty_frames_are_not_evaluated_unlabeled_frames_with_persons_are_as_in_poseval():
    gt = [video([[gt_person()], [], [gt_person()]], labeled=[True, True, False])]
    fp = pred_person(pose(dx=600), 0.99)
    pred = [video([[pred_person()], [fp], [fp]])]  # FPs in the empty labeled and in the unlabeled frame
    # poseval's rule: frame 2 holds a person, so it is evaluated although is_labeled is false; the empty frame 1
    # is dropped with its prediction. Per joint: 2 GT; ranked 0.99 (frame 2, FP), 0.9 (frame 0, TP) ->
    # precision [0, 1/2], recall [0, 1/2] -> AP = 1/2 * 1/2 = 25
    result = evaluate_posetrack(gt, pred)
    assert result.num_images == 2
    assert result.groups["Mean"] == pytest.approx(25.0)
    assert result.counts["pred_frames_not_evaluated"] == 1
    assert result.counts["gt_unlabeled_frames_with_persons"] == 1
    assert any("evaluated, as poseval does" in n for n in result.notes)
    # the stricter rule, on request: only frame 0 -> one TP -> AP 100
    strict = evaluate_posetrack(gt, pred, labeled_only=True)
    assert strict.num_images == 1
    assert strict.groups["Mean"] == pytest.approx(100.0)
    assert strict.counts["pred_frames_not_evaluated"] == 2


def test_labeled_frame_whose_persons_have_no_joints_still_counts_predictions():
    # poseval keeps a frame as long as it holds a person (even one without joints): predictions there are FPs
    empty = gt_person(np.zeros((NUM_SLOTS, 3)), head=None)
    gt = [video([[gt_person()], [empty]])]
    pred = [video([[pred_person(score=0.5)], [pred_person(score=0.9)]])]
    result = evaluate_posetrack(gt, pred)
    assert result.num_images == 2
    # FP (0.9) then TP (0.5): precision [0, 1/2], recall [0, 1] -> AP 50
    assert result.groups["Mean"] == pytest.approx(50.0)


def test_scores_rank_across_images():
    gt = [video([[gt_person()], [gt_person()]])]
    wrong = pose(dx=100)  # every joint 100 px off: matched to nothing
    pred = [video([[pred_person(score=0.8)], [pred_person(score=0.6), pred_person(wrong, 0.7)]])]
    # ranking 0.8 TP, 0.7 FP, 0.6 TP: precision [1, 1/2, 2/3], recall [1/2, 1/2, 1]
    # envelope [1, 2/3, 2/3] -> AP = 0.5 x 1 + 0.5 x 2/3 = 83.33
    result = evaluate_posetrack(gt, pred)
    assert result.groups["Mean"] == pytest.approx(100 * (0.5 + 0.5 * 2 / 3))


def test_missing_scores_rank_below_all_scored_joints():
    gt = [video([[gt_person()]])]
    far = pose(dx=600)
    # the scored FP (0.01) outranks the unscored TP (-9999): FP first -> AP 50
    result = evaluate_posetrack(gt, [video([[pred_person(score=None), pred_person(far, 0.01)]])])
    assert result.groups["Mean"] == pytest.approx(50.0)
    assert result.counts["pred_joints_without_score"] == 15


def test_presence_rules_differ_only_for_v0_slots_with_a_position():
    kps = pose()
    kps[SLOT["nose"], 0] += 100  # wrong ...
    kps[SLOT["nose"], 2] = 0.0  # ... and flagged v = 0
    gt, pred = [video([[gt_person()]])], [video([[pred_person(kps)]])]
    visible = evaluate_posetrack(gt, pred, presence="visible")
    poseval = evaluate_posetrack(gt, pred, presence="poseval")
    assert ap_of(visible, "nose") == 0.0  # not predicted: no detection -> 0
    assert ap_of(poseval, "nose") == 0.0  # predicted but wrong -> 0 as well, yet precision differs
    assert visible.precision["nose"] == 0.0 and visible.counts["pred_joints"] == 14
    assert poseval.counts["pred_joints"] == 15
    assert visible.counts["v0_slots_with_position"] == 1
    with pytest.raises(ConfigError):
        evaluate_posetrack(gt, pred, presence="sometimes")


def test_pairing_by_vid_id_basename_and_index():
    gt = [video([[gt_person()], [gt_person()]], name="000007_mpii_test")]
    pred = video([[pred_person()], [pred_person()]], name="renamed")
    pred.vid_id = "000007"  # matched by vid_id
    pred.frames[0].file_name = "000000.jpg"  # matched by basename
    pred.frames[1].file_name = ""  # matched by index
    result = evaluate_posetrack(gt, [pred])
    assert result.num_images == 2 and result.groups["Mean"] == pytest.approx(100.0)


def test_frame_without_prediction_counts_as_no_persons():
    gt = [video([[gt_person()], [gt_person()]])]
    pred = video([[pred_person()]])
    result = evaluate_posetrack(gt, [pred])
    assert result.counts["gt_images_without_predictions"] == 1
    assert result.groups["Mean"] == pytest.approx(50.0)  # precision 1, recall 1/2


# ---------------------------------------------------------------------------------------------------------------
# bad input


def test_unknown_predicted_video_and_frame():
    gt = [video([[gt_person()]])]
    with pytest.raises(DataError, match="not in the ground truth"):
        evaluate_posetrack(gt, [video([[pred_person()]]), video([[pred_person()]], name="999999_mpii_test")])
    lenient = evaluate_posetrack(gt, [video([[pred_person()]]), video([[pred_person()]], name="999999_x")],
                                 strict=False)
    assert lenient.counts["pred_videos_skipped"] == 1 and lenient.groups["Mean"] == pytest.approx(100.0)
    extra = video([[pred_person()], [pred_person()]])
    extra.frames[1].file_name = "images/val/000001_mpii_test/000099.jpg"
    with pytest.raises(DataError, match="not in ground-truth video"):
        evaluate_posetrack(gt, [extra])
    assert evaluate_posetrack(gt, [extra], strict=False).counts["pred_frames_skipped"] == 1


def test_duplicate_video_names_are_refused():
    with pytest.raises(DataError, match="two ground-truth videos"):
        evaluate_posetrack([video([[gt_person()]]), video([[gt_person()]])], [video([[pred_person()]])])
    with pytest.raises(DataError, match="two predicted videos"):
        evaluate_posetrack([video([[gt_person()]])], [video([[pred_person()]]), video([[pred_person()]])])


def test_ground_truth_video_without_predictions():
    gt = [video([[gt_person()]]), video([[gt_person()]], name="000002_mpii_test")]
    with pytest.raises(DataError, match="no predictions for 1 ground-truth video"):
        evaluate_posetrack(gt, [video([[pred_person()]])])
    result = evaluate_posetrack(gt, [video([[pred_person()]])], strict=False)
    assert result.counts["gt_videos_without_predictions"] == 1
    assert result.groups["Mean"] == pytest.approx(50.0)


@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda p: setattr(p, "keypoints", np.full((17, 3), np.nan)), "NaN"),
        (lambda p: setattr(p, "keypoints", np.ones((15, 3))), "17 slots"),
        (lambda p: setattr(p, "scores", np.ones(15)), "17 values"),
        (lambda p: setattr(p, "scores", np.full(17, np.nan)), "NaN"),
    ],
)
def test_bad_predictions_raise_naming_the_frame(bad, message):
    p = pred_person()
    bad(p)
    with pytest.raises(DataError, match=message) as err:
        evaluate_posetrack([video([[gt_person()]])], [video([[p]])])
    assert "000000.jpg" in str(err.value)


def test_ground_truth_without_head_box():
    with pytest.raises(DataError, match="head box"):
        evaluate_posetrack([video([[gt_person(head=None)]])], [video([[pred_person()]])])
    # a person without annotated joints needs no head box
    empty = gt_person(np.zeros((NUM_SLOTS, 3)), head=None)
    assert evaluate_posetrack([video([[gt_person(), empty]])], [video([[pred_person()]])]).mean == 100.0


def test_zero_size_head_box_never_matches():
    result = evaluate_posetrack([video([[gt_person(head=(5.0, 5.0, 0.0, 0.0))]])], [video([[pred_person()]])])
    assert result.groups["Mean"] == 0.0 and result.counts["degenerate_head_boxes"] == 1


# ---------------------------------------------------------------------------------------------------------------
# output


def test_tables_and_json():
    result = evaluate_posetrack([video([[gt_person()]])], [video([[pred_person()]])])
    table = result.format_table(title="PoseTrack18 val")
    lines = table.splitlines()
    assert lines[0] == "PoseTrack18 val"
    assert lines[1].split() == list(GROUP_NAMES)
    assert lines[2].split() == ["100.0"] * 8
    other = evaluate_posetrack([video([[gt_person()]])], [video([[pred_person(pose(dx=100))]])])
    comp = PoseTrackMapResult.format_comparison({"nearest": other, "stdpose": result}).splitlines()
    assert comp[0].split() == ["Method", *GROUP_NAMES]
    assert comp[1].split() == ["nearest"] + ["0.0"] * 8 and comp[2].split()[0] == "stdpose"
    md = result.format_table(markdown=True).splitlines()
    assert md[0].startswith("|") and "---" in md[1]
    per_joint = result.format_per_joint().splitlines()
    assert [r.split()[0] for r in per_joint[1:]] == list(POSEVAL_NAMES)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["groups"]["Mean"] == 100.0 and list(data["per_joint"]) == list(JOINT_NAMES)


# ---------------------------------------------------------------------------------------------------------------
# building blocks


def test_head_size_is_poseval_formula():
    assert head_size((10.0, 20.0, 30.0, 40.0)) == pytest.approx(0.6 * 50)


def test_polygon_interior_boundary_and_self_intersection():
    square = ((0, 10, 10, 0), (0, 0, 10, 10))
    pts = np.array([[5, 5], [0, 5], [10, 10], [5, 0], [11, 5], [-1, -1], [9.99, 0.01]])
    assert points_strictly_inside(pts, *square).tolist() == [True, False, False, False, False, False, True]
    bowtie = ((0, 10, 10, 0), (0, 10, 0, 10))  # edges cross at (5, 5): two triangles (even-odd rule)
    assert points_strictly_inside(np.array([[5, 2], [2, 5], [8, 5], [5, 8]]), *bowtie).tolist() == [
        False, True, True, False]
    assert not ring_is_usable((0, 1), (0, 1)) and ring_is_usable((0, 1, 1), (0, 0, 1))
    assert not points_strictly_inside(np.array([[0.5, 0.2]]), (0, 1), (0, 1)).any()
    triangle = ((40, 60, 60), (40, 40, 60))
    assert points_in_regions(np.array([[5, 5], [55, 45], [50, 50]]), [square, triangle]).tolist() == [
        True, True, False]  # (50, 50) lies on the triangle's hypotenuse


def test_ap_building_blocks():
    precision, recall = precision_recall(np.array([0.9, 0.8, 0.7]), np.array([1, 0, 1]), 4)
    assert precision.tolist() == pytest.approx([1, 0.5, 2 / 3]) and recall.tolist() == pytest.approx([0.25, 0.25, 0.5])
    assert voc_ap(recall, precision) == pytest.approx(0.25 * 1 + 0.25 * 2 / 3)
    assert joint_ap(np.array([]), np.array([]), 3).ap == 0.0
    assert math.isnan(joint_ap(np.array([0.5]), np.array([0]), 0).ap)


def test_match_image_normalises_pckh_by_annotated_joints():
    # GT A has 2 annotated joints, GT B has 4; the prediction hits both of A's and 2 of B's -> A wins (1 > 0.5)
    gt_xy = np.zeros((2, 15, 2))
    gt_has = np.zeros((2, 15), dtype=bool)
    gt_has[0, :2] = True
    gt_has[1, :4] = True
    pr_xy = np.zeros((1, 15, 2))
    pr_has = np.ones((1, 15), dtype=bool)
    labels = match_image(gt_xy, gt_has, np.array([10.0, 10.0]), pr_xy, pr_has)
    assert labels[0].tolist() == [True, True] + [False] * 13


# ---------------------------------------------------------------------------------------------------------------
# real PoseTrack18 files


@pytest.mark.realdata
def test_real_posetrack18_ground_truth_against_itself():
    folder = shared_data("posetrack18_samples", "annotations", "val")
    result = evaluate_paths(folder, folder)
    assert result.num_images == 3 and result.counts["videos"] == 3
    assert result.counts["gt_joints"] > 100
    assert result.counts["gt_joints_ignored"] == 1  # one real annotated joint lies inside a real ignore region
    assert all(v == pytest.approx(100.0) for v in result.per_joint.values())
    assert result.groups["Mean"] == pytest.approx(100.0)
