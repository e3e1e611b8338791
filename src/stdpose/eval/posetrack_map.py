"""PoseTrack multi-person pose estimation mAP, computed exactly as the official evaluation (poseval) does.

Every number stdpose reports goes through `evaluate_posetrack`. The algorithm (poseval's `evaluateAP`, see
docs/evaluation.md for every detail and decision):

1. Ground-truth frames are the frames holding at least one person, whatever their `is_labeled` says (poseval
   drops only frames with an empty `annorect`, together with their predictions); `labeled_only=True` also drops
   frames whose `is_labeled` is false (a stricter rule, named in the table header when used). Predictions are
   paired with them by video and file name.
2. Joints: the 15 PoseTrack joints in poseval's order (`skeleton.POSEVAL_NAMES`; PoseTrack18 `head_bottom` is
   poseval's joint 12 "neck"). Ears are never evaluated.
3. Ground-truth and predicted joints strictly inside one of the frame's ignore regions are removed (shapely's
   exact `contains`, as poseval). Predicted joints far outside the image are scored as they are (misses, in
   practice) and counted (`pred_joints_outside_image`); a metric never refuses a prediction for being wrong.
4. Per image, predictions are assigned to ground-truth persons by PCKh@0.5 (`matching.match_image`), with the
   head size 0.6 x the ground-truth head-box diagonal.
5. Per joint, all predicted joints of all images are ranked by their score; AP is poseval's VOC-style area
   (`ap.joint_ap`). Groups average left and right (Head: head_top, head_bottom, nose); Mean is the mean of the
   15 joint APs that are not NaN (poseval's "total"), not the mean of the groups.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from posixpath import basename
from typing import Any

import numpy as np

from stdpose.data.records import Frame, Person, Video
from stdpose.errors import ConfigError, DataError
from stdpose.eval.ap import joint_ap, nan_mean
from stdpose.eval.matching import match_image
from stdpose.eval.polygon import points_in_regions, ring_is_usable
from stdpose.skeleton import GROUP_NAMES, NUM_SLOTS, POSEVAL_NAMES, POSEVAL_ORDER

# poseval's score for a predicted joint that carries none (`MIN_SCORE` in eval_helpers): ranked below everything.
MISSING_SCORE = -9999.0
# PCKh threshold: a joint is correct within half the head size.
DIST_THRESH = 0.5

# How a keypoint slot counts as present (annotated / predicted):
#   "visible": v > 0, the records' convention (a slot that is not annotated is (0, 0, 0)).
#   "poseval": present unless x == y == v == 0, the rule poseval's PoseTrack18 converter applies to files.
# The two differ only for slots written as (x, y, 0) with a non-zero position; such slots are counted and reported.
PRESENCE_RULES = ("visible", "poseval")

JOINT_NAMES: tuple[str, ...] = POSEVAL_NAMES
_EVAL_SLOTS = np.asarray(POSEVAL_ORDER)
_J = len(JOINT_NAMES)

# Joint groups of the table, each averaged in poseval's order (`getCum`): Head = head_top, neck, nose; pairs right
# then left. (The order only matters in the last bit of the float sum.)
GROUP_JOINTS: dict[str, tuple[str, ...]] = {
    "Head": ("head_top", "head_bottom", "nose"),
    "Shoulder": ("right_shoulder", "left_shoulder"),
    "Elbow": ("right_elbow", "left_elbow"),
    "Wrist": ("right_wrist", "left_wrist"),
    "Hip": ("right_hip", "left_hip"),
    "Knee": ("right_knee", "left_knee"),
    "Ankle": ("right_ankle", "left_ankle"),
}


@dataclass
class PoseTrackMapResult:
    """PoseTrack AP in percent: per joint (15 names, poseval order), per group (Head ... Ankle, Mean).

    A NaN AP means a joint with predictions but no ground truth (poseval gives NaN there, and leaves it out of
    Mean). `precision`/`recall` are the values at the last ranked detection (poseval's 'pre'/'rec'), with
    'total' their mean. `counts` says what was evaluated, skipped or removed; `notes` explains anything unusual.
    """

    per_joint: dict[str, float]
    groups: dict[str, float]
    num_images: int
    precision: dict[str, float] = field(default_factory=dict)
    recall: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return self.groups["Mean"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; NaN becomes null."""

        def clean(d: dict[str, float]) -> dict[str, float | None]:
            return {k: (None if math.isnan(v) else float(v)) for k, v in d.items()}

        return {
            "metric": "PoseTrack multi-person pose estimation AP (poseval-compatible, PCKh@0.5)",
            "groups": clean(self.groups),
            "per_joint": clean(self.per_joint),
            "precision": clean(self.precision),
            "recall": clean(self.recall),
            "num_images": self.num_images,
            "counts": dict(self.counts),
            "notes": list(self.notes),
        }

    def format_table(self, title: str | None = None, label: str = "", markdown: bool = False) -> str:
        """The groups as a one-row table laid out like the paper's (Head Shoulder ... Mean), one decimal."""
        text = _render_table([(label, self.groups)], first_header="" if not label else "Method", markdown=markdown)
        return f"{title}\n{text}" if title else text

    def format_per_joint(self, markdown: bool = False) -> str:
        """AP, precision and recall of each of the 15 joints, one per row."""
        rows = [("joint", "AP", "precision", "recall")]
        for name in JOINT_NAMES:
            rows.append((name, _fmt(self.per_joint[name]), _fmt(self.precision.get(name, math.nan)),
                         _fmt(self.recall.get(name, math.nan))))
        return _render_rows(rows, markdown)

    @staticmethod
    def format_comparison(rows: dict[str, PoseTrackMapResult], title: str | None = None,
                          markdown: bool = False) -> str:
        """Several results as rows of one table (e.g. "nearest", "linear", "stdpose")."""
        text = _render_table([(name, r.groups) for name, r in rows.items()], first_header="Method", markdown=markdown)
        return f"{title}\n{text}" if title else text


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.1f}"


def _render_rows(rows: list[tuple[str, ...]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join(" --- " for _ in rows[0]) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _render_table(rows: list[tuple[str, dict[str, float]]], first_header: str, markdown: bool) -> str:
    table = [(first_header, *GROUP_NAMES)]
    table += [(label, *(_fmt(groups[g]) for g in GROUP_NAMES)) for label, groups in rows]
    return _render_rows(table, markdown)


# ----------------------------------------------------------------------------------------------------------------
# pairing predictions with ground truth


def _video_label(video: Video) -> str:
    return video.source or video.name


def _pair_videos(gt: list[Video], pred: list[Video], strict: bool, counts: dict[str, int],
                 notes: list[str], labeled_only: bool = False) -> list[Video | None]:
    """For each GT video, its predicted video (matched by name, then vid_id) or None."""
    by_name = {v.name: i for i, v in enumerate(gt)}
    if len(by_name) != len(gt):
        dup = next(n for n, c in Counter(v.name for v in gt).items() if c > 1)
        raise DataError(None, f"two ground-truth videos are named '{dup}'")
    by_vid = {str(v.vid_id): i for i, v in enumerate(gt) if v.vid_id is not None}
    paired: list[Video | None] = [None] * len(gt)
    unknown = []
    for pv in pred:
        i = by_name.get(pv.name)
        if i is None and pv.vid_id is not None:
            i = by_vid.get(str(pv.vid_id))
        if i is None:
            unknown.append(pv.name)
            continue
        if paired[i] is not None:
            raise DataError(_video_label(pv), f"two predicted videos match ground-truth video '{gt[i].name}'")
        paired[i] = pv
    if unknown:
        if strict:
            raise DataError(None, f"predictions for {len(unknown)} video(s) not in the ground truth: "
                                  f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")
        counts["pred_videos_skipped"] = len(unknown)
        notes.append(f"skipped {len(unknown)} predicted video(s) not in the ground truth")
    missing = [gt[i].name for i, p in enumerate(paired) if p is None and evaluated_positions(gt[i], labeled_only)]
    if missing:
        if strict:
            raise DataError(None, f"no predictions for {len(missing)} ground-truth video(s): "
                                  f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} "
                                  "(poseval refuses this too; pass strict=False / --lenient to count their "
                                  "labeled frames as having no predictions)")
        counts["gt_videos_without_predictions"] = len(missing)
        notes.append(f"{len(missing)} ground-truth video(s) have no predictions: their joints count as missed")
    return paired


def evaluated_positions(video: Video, labeled_only: bool = False) -> list[int]:
    """Positions of the GT frames poseval evaluates: those with at least one person (poseval drops frames with an
    empty annorect, and their predictions with them, but does not look at is_labeled); with `labeled_only`, only
    the labeled ones among them."""
    return [i for i, f in enumerate(video.frames) if f.persons and (f.is_labeled or not labeled_only)]


def _pair_frames(gt_video: Video, pred_video: Video, strict: bool, counts: dict[str, int]) -> dict[int, Frame]:
    """GT frame position -> predicted frame, matched by file name (then basename, then index when unnamed)."""
    by_file = {f.file_name: i for i, f in enumerate(gt_video.frames)}
    bases = Counter(basename(f.file_name) for f in gt_video.frames)
    by_base = {basename(f.file_name): i for i, f in enumerate(gt_video.frames) if bases[basename(f.file_name)] == 1}
    paired: dict[int, Frame] = {}
    unknown = []
    for pf in pred_video.frames:
        if pf.file_name:
            i = by_file.get(pf.file_name, by_base.get(basename(pf.file_name)))
        else:
            i = pf.index if 0 <= pf.index < len(gt_video.frames) else None
        if i is None:
            unknown.append(pf.file_name or f"#{pf.index}")
            continue
        if i in paired:
            raise DataError(_video_label(pred_video),
                            f"two predicted frames match ground-truth frame '{gt_video.frames[i].file_name}'")
        paired[i] = pf
    if unknown:
        if strict:
            raise DataError(_video_label(pred_video),
                            f"{len(unknown)} predicted frame(s) not in ground-truth video '{gt_video.name}': "
                            f"{', '.join(unknown[:3])}{' ...' if len(unknown) > 3 else ''}")
        counts["pred_frames_skipped"] += len(unknown)
    return paired


# ----------------------------------------------------------------------------------------------------------------
# persons -> arrays


def _check_person(person: Person, where: str, is_pred: bool) -> None:
    kps = np.asarray(person.keypoints)
    if kps.shape != (NUM_SLOTS, 3):
        raise DataError(where, f"keypoints must have 17 slots of (x, y, v), got shape {kps.shape}")
    if not np.all(np.isfinite(kps)):
        raise DataError(where, "keypoints contain NaN or infinite values")
    if is_pred and person.scores is not None:
        scores = np.asarray(person.scores)
        if scores.shape != (NUM_SLOTS,):
            raise DataError(where, f"keypoint scores must have 17 values, got shape {scores.shape}")
        if not np.all(np.isfinite(scores)):
            raise DataError(where, "keypoint scores contain NaN or infinite values")
    if not is_pred and person.bbox_head is not None:
        box = person.bbox_head
        if len(box) != 4 or not all(math.isfinite(float(v)) for v in box):
            raise DataError(where, f"bbox_head must be 4 finite numbers (x, y, w, h), got {box}")


def _person_arrays(persons: list[Person], presence: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """xy (N, 15, 2), present (N, 15), scores (N, 15) in poseval joint order; plus the number of slots that the
    two presence rules would judge differently ((x, y, 0) with a non-zero position)."""
    n = len(persons)
    kps = np.stack([np.asarray(p.keypoints, dtype=np.float64) for p in persons]) if n else np.zeros((0, 17, 3))
    kps = kps[:, _EVAL_SLOTS]  # (N, 15, 3)
    x, y, v = kps[..., 0], kps[..., 1], kps[..., 2]
    ambiguous = int(np.sum((v == 0) & ((x != 0) | (y != 0))))
    present = v > 0 if presence == "visible" else ~((x == 0) & (y == 0) & (v == 0))
    scores = np.full((n, _J), MISSING_SCORE)
    for k, p in enumerate(persons):
        if p.scores is not None:
            scores[k] = np.asarray(p.scores, dtype=np.float64)[_EVAL_SLOTS]
    return kps[..., :2], present, scores, ambiguous


def _remove_ignored(xy: np.ndarray, present: np.ndarray, regions: list) -> int:
    """Mark joints strictly inside any ignore region as absent (in place); return how many were removed."""
    if not regions or not present.any():
        return 0
    inside = points_in_regions(xy.reshape(-1, 2), regions).reshape(present.shape) & present
    present &= ~inside
    return int(inside.sum())


# ----------------------------------------------------------------------------------------------------------------
# the evaluation


def evaluate_posetrack(
    gt: list[Video],
    pred: list[Video],
    *,
    presence: str = "visible",
    strict: bool = True,
    dist_thresh: float = DIST_THRESH,
    labeled_only: bool = False,
    head_size_mode: str = "box",
) -> PoseTrackMapResult:
    """PoseTrack mAP of `pred` against `gt`, identical to poseval's `evaluateAP` (see the module docstring).

    head_size_mode="auto" scores ground truth WITHOUT any head box with the documented fallback of
    `stdpose.eval.head_size` (named in `notes` and `counts["head_size_fallback"]`); "box" (default) needs head boxes.

    Videos are matched by `Video.name` (then `vid_id`), frames by `Frame.file_name` (then its basename; by index
    when the predicted frame has no name). GT frames with at least one person are evaluated (poseval's rule);
    `labeled_only` evaluates only those among them whose `is_labeled` is true. Predicted joints are ranked by
    `Person.scores`; without scores they get poseval's -9999.
    `presence` picks how a slot counts as annotated/predicted (see PRESENCE_RULES).
    strict=True raises DataError for predictions of videos/frames that are not in the ground truth and for GT
    videos without any prediction; strict=False skips / counts them (reported in `counts` and `notes`).
    A GT person with annotated joints but no head box raises DataError (poseval cannot evaluate it either).
    """
    if presence not in PRESENCE_RULES:
        raise ConfigError(f"presence must be one of {', '.join(PRESENCE_RULES)}, got {presence!r}")
    gt = [gt] if isinstance(gt, Video) else list(gt)
    pred = [pred] if isinstance(pred, Video) else list(pred)
    counts: dict[str, int] = dict.fromkeys(
        ("videos", "gt_persons", "pred_persons", "gt_joints", "pred_joints", "gt_joints_ignored",
         "pred_joints_ignored", "pred_joints_without_score", "pred_frames_skipped", "pred_frames_not_evaluated",
         "gt_images_without_predictions", "gt_unlabeled_frames_with_persons", "degenerate_head_boxes",
         "degenerate_ignore_regions", "v0_slots_with_position", "pred_joints_outside_image"), 0)
    notes: list[str] = []
    from stdpose.eval.head_size import head_size_plan, person_head_size

    use_fallback, head_note = False, ""
    if head_size_mode != "box":
        use_fallback, head_note = head_size_plan(gt, head_size_mode, labeled_only)
    if use_fallback:
        notes.append(head_note)
    counts["head_size_fallback"] = int(use_fallback)
    paired_videos = _pair_videos(gt, pred, strict, counts, notes, labeled_only)

    all_scores, all_present, all_labels = [], [], []
    num_gt = np.zeros(_J)
    num_images = 0
    for gv, pv in zip(gt, paired_videos):
        positions = evaluated_positions(gv, labeled_only)
        counts["gt_unlabeled_frames_with_persons"] += sum(1 for f in gv.frames if not f.is_labeled and f.persons)
        if not positions:
            continue
        counts["videos"] += 1
        pred_frames = _pair_frames(gv, pv, strict, counts) if pv is not None else {}
        counts["pred_frames_not_evaluated"] += len(set(pred_frames) - set(positions))
        for pos in positions:
            frame = gv.frames[pos]
            num_images += 1
            pf = pred_frames.get(pos)
            if pf is None and pv is not None:
                counts["gt_images_without_predictions"] += 1
            where_gt = f"{_video_label(gv)} (frame {frame.index} '{frame.file_name}'"
            for k, p in enumerate(frame.persons):
                _check_person(p, f"{where_gt}, person {k})", is_pred=False)
            pred_persons = pf.persons if pf is not None else []
            where_pr = f"{_video_label(pv)} (frame {pf.index} '{pf.file_name}'" if pf is not None else ""
            for k, p in enumerate(pred_persons):
                _check_person(p, f"{where_pr}, person {k})", is_pred=True)

            gt_xy, gt_has, _, amb_gt = _person_arrays(frame.persons, presence)
            pr_xy, pr_has, pr_scores, amb_pr = _person_arrays(pred_persons, presence)
            counts["v0_slots_with_position"] += amb_gt + amb_pr
            counts["pred_joints_outside_image"] += _count_outside(pr_xy, pr_has, frame)
            regions = [r for r in frame.ignore_regions if ring_is_usable(*r)]
            counts["degenerate_ignore_regions"] += len(frame.ignore_regions) - len(regions)
            counts["gt_joints_ignored"] += _remove_ignored(gt_xy, gt_has, regions)
            counts["pred_joints_ignored"] += _remove_ignored(pr_xy, pr_has, regions)

            heads = np.zeros(len(frame.persons))
            for k, p in enumerate(frame.persons):
                if not gt_has[k].any():
                    continue  # a person without joints never matches and needs no head size
                if p.bbox_head is None and not use_fallback:
                    raise DataError(f"{where_gt}, person {k})",
                                    "annotated person has no head box (bbox_head): the PCKh threshold needs it "
                                    "(for a file without any head box, --head-size auto / head_size_mode='auto' "
                                    "uses the documented fallback)")
                heads[k] = person_head_size(p, use_fallback)
                if not heads[k] > 0:
                    counts["degenerate_head_boxes"] += 1
            labels = match_image(gt_xy, gt_has, heads, pr_xy, pr_has, dist_thresh)

            counts["gt_persons"] += len(frame.persons)
            counts["pred_persons"] += len(pred_persons)
            counts["pred_joints_without_score"] += sum(
                int(pr_has[k].sum()) for k, p in enumerate(pred_persons) if p.scores is None)
            num_gt += gt_has.sum(axis=0)
            all_scores.append(pr_scores)
            all_present.append(pr_has)
            all_labels.append(labels)

    scores = np.concatenate(all_scores) if all_scores else np.zeros((0, _J))
    present = np.concatenate(all_present) if all_present else np.zeros((0, _J), dtype=bool)
    labels = np.concatenate(all_labels) if all_labels else np.zeros((0, _J), dtype=bool)
    counts["gt_joints"] = int(num_gt.sum())
    counts["pred_joints"] = int(present.sum())

    per_joint, precision, recall = {}, {}, {}
    for j, name in enumerate(JOINT_NAMES):
        # image-major, person-minor order: the order poseval concatenates its per-image score lists in
        res = joint_ap(scores[present[:, j], j], labels[present[:, j], j], num_gt[j])
        per_joint[name], precision[name], recall[name] = res.ap, res.precision, res.recall
    precision["total"] = nan_mean(list(precision.values()))
    recall["total"] = nan_mean(list(recall.values()))
    groups = {g: float(np.mean([per_joint[n] for n in names])) for g, names in GROUP_JOINTS.items()}
    groups["Mean"] = nan_mean([per_joint[n] for n in JOINT_NAMES])

    _add_notes(counts, notes, num_images, num_gt, per_joint, labeled_only)
    counts["images"] = num_images
    return PoseTrackMapResult(per_joint=per_joint, groups=groups, num_images=num_images, precision=precision,
                              recall=recall, counts=counts, notes=notes)


def _count_outside(xy: np.ndarray, present: np.ndarray, frame: Frame) -> int:
    """Predicted joints further outside the frame than the readers' tolerance allows for annotations."""
    from stdpose.data.formats.common import OUTSIDE_TOLERANCE

    if not frame.width or not frame.height or not present.any():
        return 0
    mx, my = OUTSIDE_TOLERANCE * frame.width, OUTSIDE_TOLERANCE * frame.height
    x, y = xy[..., 0], xy[..., 1]
    far = (x < -mx) | (x > frame.width + mx) | (y < -my) | (y > frame.height + my)
    return int(np.sum(far & present))


def _add_notes(counts: dict[str, int], notes: list[str], num_images: int, num_gt: np.ndarray,
               per_joint: dict[str, float], labeled_only: bool = False) -> None:
    """Human-readable explanations of everything that was skipped, defaulted or unusual."""
    if num_images == 0:
        notes.append("no labeled ground-truth frame with persons: nothing was evaluated")
    if counts["pred_frames_skipped"]:
        notes.append(f"skipped {counts['pred_frames_skipped']} predicted frame(s) not in the ground truth")
    if counts["gt_images_without_predictions"]:
        notes.append(f"{counts['gt_images_without_predictions']} evaluated frame(s) have no predicted frame: "
                     "counted as frames without predicted persons")
    if counts["pred_joints_without_score"]:
        notes.append(f"{counts['pred_joints_without_score']} predicted joint(s) have no score: ranked last with "
                     f"poseval's {MISSING_SCORE:g} (ties make AP depend on the sort order)")
    if counts["degenerate_head_boxes"]:
        notes.append(f"{counts['degenerate_head_boxes']} ground-truth person(s) have a zero-size head box: "
                     "their joints can never be matched (as in poseval)")
    if counts["degenerate_ignore_regions"]:
        notes.append(f"{counts['degenerate_ignore_regions']} ignore region(s) have fewer than 3 vertices and "
                     "were ignored (poseval would crash on them)")
    if counts["v0_slots_with_position"]:
        notes.append(f"{counts['v0_slots_with_position']} keypoint slot(s) have v = 0 but a non-zero position: "
                     "presence='poseval' counts them as present, presence='visible' does not")
    if counts["gt_unlabeled_frames_with_persons"]:
        how = ("not evaluated (--labeled-only; poseval would evaluate them)" if labeled_only
               else "evaluated, as poseval does (--labeled-only skips them)")
        notes.append(f"{counts['gt_unlabeled_frames_with_persons']} ground-truth frame(s) hold persons but say "
                     f"is_labeled false: {how}")
    if counts["pred_joints_outside_image"]:
        notes.append(f"warning: {counts['pred_joints_outside_image']} predicted joint(s) lie far outside their "
                     "image: scored as they are (misses unless a ground-truth joint is there)")
    no_gt = [n for j, n in enumerate(JOINT_NAMES) if num_gt[j] == 0]
    if no_gt:
        notes.append(f"no ground truth for {', '.join(no_gt)}: AP is NaN with predictions, 0 without (poseval's "
                     "rule; NaN joints are left out of Mean)")


def evaluate_paths(
    gt_path: str | Path,
    pred_path: str | Path,
    *,
    presence: str = "poseval",
    strict: bool = True,
    dist_thresh: float = DIST_THRESH,
    labeled_only: bool = False,
    head_size_mode: str = "box",
) -> PoseTrackMapResult:
    """Read ground truth and predictions (a file or a folder of per-video files: PoseTrack18/21, PoseTrack17)
    with `stdpose.data.formats.read_annotations` and evaluate them. Files are judged with poseval's presence
    rule by default, since that is how poseval reads the same files. Predictions are read without the
    keypoint-inside-the-image check (they are scored, never refused); the ground truth keeps every check.
    DataError when the ground truth has no frame to evaluate (a table of zeros would say nothing)."""
    from stdpose.data.formats import read_annotations
    from stdpose.data.formats.common import keypoints_anywhere

    for label, path in (("ground truth", gt_path), ("predictions", pred_path)):
        if not Path(path).exists():
            raise DataError(path, f"{label} file or folder does not exist")
    gt = read_annotations(gt_path)
    with keypoints_anywhere():
        pred = read_annotations(pred_path)
    result = evaluate_posetrack(gt, pred, presence=presence, strict=strict, dist_thresh=dist_thresh,
                                labeled_only=labeled_only, head_size_mode=head_size_mode)
    if result.num_images == 0:
        rule = "labeled frame with persons" if labeled_only else "frame with persons"
        raise DataError(gt_path, f"the ground truth has no {rule}: nothing to evaluate")
    return result
