"""Cross-check of stdpose's PoseTrack mAP against numbers produced by the official poseval code.

How the reference numbers below were obtained (poseval itself is not vendored):
  1. The functions poseval's AP evaluation runs (leonid-pishchulin/poseval: `poseval/eval_helpers.py`
     load_data_dir / cleanupData / removeIgnoredPoints / assignGTmulti / computeRPC / VOCap / getCum,
     `poseval/evaluateAP.py` computeMetrics, `poseval/convert.py` PoseTrack18 -> PoseTrack17 conversion) were
     re-typed unchanged into a scratch folder outside the repository, with shapely 2.2.0 (GEOS 3.14.1) for the
     ignore-region polygons, numpy 2.4.6, Python 3.11. Two changes only: the GT folder listing is sorted (poseval's
     glob order is arbitrary) and `posetrack18_fname2id` is stubbed (it only names output files).
  2. A script imported `make_fixture` from THIS file, wrote each fixture's videos as PoseTrack18 JSON files
     (`write_fixture`: gt/<video>.json and pred/<video>.json), ran `load_data_dir -> assignGTmulti(distThresh=0.5)
     -> computeMetrics -> getCum` on them, and printed `apAll` (15 joints in poseval order + total) with repr().
  3. Those printed values are REFERENCE below, keyed by (seed, ties).
  4. The same script ran poseval on the real PoseTrack18 sample files (../shared/data/posetrack18_samples, with
     their real, irregular ignore polygons) against `perturb_real_predictions(seed)`: REAL_REFERENCE.
  stdpose matched poseval bit for bit (difference 0.0) on seeds 1..79 of both synthetic variants and seeds 1..8
  of the real files when this was written; a few are kept here.

The fixtures (seeded) hold 5 videos with labeled, unlabeled and empty labeled frames, up to 6 persons per frame,
missing joints, persons without any joint, ignore regions (with joints inside them and on their edges),
duplicate and false-positive predictions, predictions in unlabeled frames, a zero-size head box, and slots written
as (x, y, 0) (which poseval counts as predicted). The `ties` variants round scores to one decimal and drop the
scores of some persons (poseval ranks those at -9999), so many scores are equal.

Ties: poseval ranks with numpy's non-stable argsort, so with equal scores its own result depends on numpy's sort
implementation (version, CPU SIMD). The tie fixtures are compared only where numpy's argsort orders ties as it did
when the references were made (checked on a probe array); elsewhere poseval itself would print other numbers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from stdpose.eval.posetrack_map import JOINT_NAMES, evaluate_paths
from stdpose.skeleton import POSETRACK_SLOTS, SLOT

# A standing person, 17 slots (x, y) in units of ~60 px; ears follow the head.
_TEMPLATE = {
    "nose": (0.0, -2.6), "head_bottom": (0.0, -2.1), "head_top": (0.0, -3.2), "left_ear": (0.2, -2.7),
    "right_ear": (-0.2, -2.7), "left_shoulder": (0.5, -1.9), "right_shoulder": (-0.5, -1.9),
    "left_elbow": (0.7, -1.2), "right_elbow": (-0.7, -1.2), "left_wrist": (0.8, -0.5), "right_wrist": (-0.8, -0.5),
    "left_hip": (0.3, -0.3), "right_hip": (-0.3, -0.3), "left_knee": (0.35, 0.6), "right_knee": (-0.35, 0.6),
    "left_ankle": (0.4, 1.5), "right_ankle": (-0.4, 1.5),
}  # fmt: skip
TEMPLATE = np.array([_TEMPLATE[n] for n in POSETRACK_SLOTS])
EARS = [SLOT["left_ear"], SLOT["right_ear"]]
W, H = 1280, 720
CATEGORIES = [{"supercategory": "person", "id": 1, "name": "person", "keypoints": list(POSETRACK_SLOTS),
               "skeleton": []}]


def _flat(kps: np.ndarray) -> list[float]:
    return [float(v) for v in np.round(kps, 2).reshape(-1)]


def _random_pose(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    scale = rng.uniform(35, 90)
    center = rng.uniform([100, 250], [W - 100, H - 150])
    pose = TEMPLATE * scale + center + rng.normal(0, 0.08 * scale, TEMPLATE.shape)
    return np.clip(pose, 0, [W - 1, H - 1]), scale


def _region(rng: np.random.Generator, near: np.ndarray) -> tuple[list[int], list[int]]:
    n = int(rng.integers(3, 8))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    if rng.random() < 0.25:
        rng.shuffle(angles)  # a self-intersecting ring now and then
    radius = rng.uniform(30, 140, n)
    xs = np.clip(np.round(near[0] + radius * np.cos(angles)), 0, W - 1).astype(int)
    ys = np.clip(np.round(near[1] + radius * np.sin(angles)), 0, H - 1).astype(int)
    return xs.tolist(), ys.tolist()


def _prediction(rng, gt_pose, scale, ties: bool, track_id: int, image_id: int) -> dict:
    sigma = scale * rng.choice([0.02, 0.05, 0.1, 0.3], p=[0.3, 0.3, 0.25, 0.15])  # near-perfect to mostly wrong
    pose = gt_pose + rng.normal(0, sigma, gt_pose.shape)
    error = np.linalg.norm(pose - gt_pose, axis=1) / scale
    kps = np.concatenate([np.clip(pose, 0, [W - 1, H - 1]), np.ones((17, 1))], axis=1)
    kps[rng.random(17) < 0.05] = 0.0  # joints not predicted
    v0 = (rng.random(17) < 0.04) & (kps[:, 0] > 0)
    kps[v0, 2] = 0.0  # (x, y, 0): poseval still counts these
    scores = np.clip(np.exp(-3 * error) + rng.normal(0, 0.2, 17), 0, 1)  # confident where accurate, roughly
    if ties:
        scores = np.round(scores, 1)
    ann = {"image_id": image_id, "track_id": track_id, "category_id": 1, "keypoints": _flat(kps)}
    if not (ties and rng.random() < 0.15):
        ann["scores"] = [float(s) for s in scores]
    return ann


def make_fixture(seed: int, ties: bool) -> tuple[dict[str, dict], dict[str, dict]]:
    """(gt, pred): video name -> PoseTrack18 JSON object, generated deterministically from `seed`."""
    rng = np.random.default_rng(seed)
    gt_files, pred_files = {}, {}
    zero_head_done = False
    for v in range(5):
        vid = f"{100 + v:06d}"
        name = f"{vid}_mpii_test"
        images, gt_anns, pr_anns = [], [], []
        for f in range(10):
            image_id = int(f"1{vid}{f:04d}")
            labeled = f % 3 != 2
            image = {"file_name": f"images/val/{name}/{f:06d}.jpg", "id": image_id, "frame_id": image_id,
                     "vid_id": vid, "is_labeled": labeled, "nframes": 10, "width": W, "height": H}
            gt_poses = []
            n_people = int(rng.integers(0, 7)) if labeled else 0
            for k in range(n_people):
                pose, scale = _random_pose(rng)
                kps = np.concatenate([pose, np.ones((17, 1))], axis=1)
                kps[rng.random(17) < 0.1] = 0.0
                if rng.random() < 0.06:
                    kps[:] = 0.0  # a person box without any annotated joint
                kps[EARS] = 0.0
                hx, hy = pose[SLOT["head_top"]]
                hw, hh = scale * rng.uniform(0.6, 1.0), scale * rng.uniform(0.7, 1.2)
                head = [round(float(hx - hw / 2), 1), round(float(hy - 0.1 * hh), 1), round(float(hw), 1),
                        round(float(hh), 1)]
                if not zero_head_done and kps[:, 2].any() and rng.random() < 0.1:
                    head[2] = head[3] = 0.0
                    zero_head_done = True
                gt_anns.append({"id": image_id * 100 + k, "image_id": image_id, "track_id": k, "category_id": 1,
                                "keypoints": _flat(kps), "bbox_head": head, "scores": []})
                gt_poses.append((pose, scale))
            vertex = None
            if labeled and gt_poses and rng.random() < 0.6:
                xs, ys = zip(*(_region(rng, gt_poses[int(rng.integers(len(gt_poses)))][0][SLOT["left_hip"]])
                               for _ in range(int(rng.integers(1, 3)))))
                image["ignore_regions_x"], image["ignore_regions_y"] = list(xs), list(ys)
                vertex = [float(xs[0][0]), float(ys[0][0]), 1.0]
                # a GT joint exactly on a region vertex: on the boundary, so poseval keeps it
                gt_anns[-1]["keypoints"][3 * SLOT["right_knee"]: 3 * SLOT["right_knee"] + 3] = vertex
            images.append(image)

            track = 0
            for pose, scale in gt_poses if labeled else []:
                for _ in range(2 if rng.random() < 0.1 else 1):  # some duplicates
                    if rng.random() < 0.92:
                        pr_anns.append(_prediction(rng, pose, scale, ties, track, image_id))
                        track += 1
            for _ in range(int(rng.integers(0, 4)) // 2):  # false positives (also in unlabeled frames)
                pose, scale = _random_pose(rng)
                pr_anns.append(_prediction(rng, pose, scale, ties, track, image_id))
                track += 1
            if vertex is not None and track > 0:  # a predicted joint on a region vertex (kept, as in poseval)
                pr_anns[-1]["keypoints"][3 * SLOT["left_knee"]: 3 * SLOT["left_knee"] + 3] = vertex
        gt_files[name] = {"images": images, "annotations": gt_anns, "categories": CATEGORIES}
        pred_images = [{k: val for k, val in im.items() if not k.startswith("ignore_")} for im in images]
        pred_files[name] = {"images": pred_images, "annotations": pr_anns, "categories": CATEGORIES}
    return gt_files, pred_files


def write_fixture(root: Path, seed: int, ties: bool) -> tuple[Path, Path]:
    gt_files, pred_files = make_fixture(seed, ties)
    for sub, files in (("gt", gt_files), ("pred", pred_files)):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (root / sub / f"{name}.json").write_text(json.dumps(data))
    return root / "gt", root / "pred"


# poseval's apAll (15 joints in poseval order, then total), printed with repr() by the reference script.
REFERENCE: dict[tuple[int, bool], list[float]] = {
    (1, False): [  # 30 evaluated images
        61.2884572381408, 45.79637668683728, 68.64517769854547, 65.92407297685536, 60.25994378301945,
        61.21792837889275, 66.42856308065987, 61.38156288156289, 69.24345995718313, 69.04991579440863,
        62.27283895642331, 57.57635556931332, 67.72577955754745, 64.56582633053222, 68.61214336818242,
        63.332560150540296,
    ],
    (1, True): [  # 31 evaluated images
        56.46025685566529, 36.36468610869481, 59.31503035172063, 62.64420478864488, 48.745146974722644,
        58.328334098087176, 61.53800523780026, 62.39732690459967, 63.90014730834687, 61.802492784999195,
        62.14745651364938, 49.196948622896436, 55.1306485383519, 64.03188143689576, 61.14738235948693,
        57.54332992563746,
    ],
    (2, False): [  # 29 evaluated images
        56.91860702212712, 40.12437124923837, 58.67118116881264, 61.53781991896587, 42.213058403214234,
        59.21590955158329, 55.567266470453916, 66.32697571570027, 57.46724438863771, 47.763309260081215,
        54.489685879570814, 51.564785876712484, 56.72699133320914, 57.584200991078326, 50.6737534284786,
        54.4563440438576,
    ],
    (2, True): [  # 32 evaluated images
        44.3505839050596, 35.530592060489056, 50.860786228356424, 58.68201463365503, 47.82960102960103,
        57.77419875971089, 52.49039787098118, 54.17234094501501, 56.61930719203292, 60.98118418502315,
        56.40713177526953, 59.94708816127778, 58.22142519501933, 54.31652668419073, 64.59026866049986,
        54.18489648574543,
    ],
    (3, False): [  # 30 evaluated images
        62.637316401859756, 45.50628316296248, 64.4796290969643, 57.4986727415513, 49.13057554208815,
        56.455816212554524, 61.710052226457776, 64.43487346836004, 64.02651536991341, 51.57056458879621,
        54.83906226744962, 58.07132246056992, 57.22718097399081, 60.59584734204546, 55.3333188570795,
        57.56780204750955,
    ],
    (3, True): [  # 28 evaluated images
        49.67550400441866, 44.09212921527867, 70.51877408881158, 61.173438911174706, 49.07978057295038,
        67.19259130194845, 67.82980040015374, 68.34782191500643, 61.32520483480107, 60.84426540539124,
        68.27165106219329, 62.007951109727934, 62.16667703190579, 65.87783645485251, 60.47166849174239,
        61.25833965335713,
    ],
}

# argsort of this probe array, as numpy ordered it when REFERENCE was made (ties-order fingerprint).
TIE_PROBE = np.round(np.random.default_rng(7).random(64), 1)
TIE_PROBE_ORDER: list[int] = [
    58, 19, 16, 49, 1, 27, 41, 5, 17, 2, 8, 56, 43, 38, 7, 45, 34, 62, 28, 59, 0, 15, 22, 18, 51, 61, 44, 60,
    47, 30, 48, 42, 14, 26, 25, 9, 29, 13, 36, 57, 50, 53, 40, 54, 4, 11, 12, 10, 63, 31, 21, 20, 39, 33, 55,
    35, 3, 52, 46, 37, 32, 24, 23, 6,
]


def _ties_sorted_like_reference() -> bool:
    return TIE_PROBE.argsort()[::-1].tolist() == TIE_PROBE_ORDER


@pytest.mark.parametrize("seed,ties", sorted(REFERENCE))
def test_matches_poseval_reference(tmp_path, seed, ties):
    if ties and not _ties_sorted_like_reference():
        pytest.skip("numpy orders equal scores differently here than where the reference was made; poseval's "
                    "own result on tied scores changes the same way")
    gt_dir, pred_dir = write_fixture(tmp_path, seed, ties)
    result = evaluate_paths(gt_dir, pred_dir, presence="poseval")
    reference = REFERENCE[(seed, ties)]
    for j, name in enumerate(JOINT_NAMES):
        ref = reference[j]
        got = result.per_joint[name]
        assert (math.isnan(ref) and math.isnan(got)) or got == pytest.approx(ref, abs=1e-6), name
    assert result.groups["Mean"] == pytest.approx(reference[15], abs=1e-6)


def test_fixtures_exercise_the_hard_cases(tmp_path):
    """The fixture really contains what the docstring promises (so the cross-check covers it)."""
    gt_dir, pred_dir = write_fixture(tmp_path, 1, True)
    result = evaluate_paths(gt_dir, pred_dir, presence="poseval")
    c = result.counts
    assert c["videos"] == 5 and result.num_images > 20
    assert c["gt_joints_ignored"] > 0 and c["pred_joints_ignored"] > 0
    assert c["pred_frames_not_evaluated"] > 0  # predictions in unlabeled / empty frames
    assert c["pred_joints_without_score"] > 0 and c["v0_slots_with_position"] > 0
    assert c["degenerate_head_boxes"] == 1
    assert c["pred_persons"] > c["gt_persons"] * 0.8


def perturb_real_predictions(gt_dir: Path, out_dir: Path, seed: int) -> Path:
    """Predictions for real PoseTrack18 files: every annotated person's joints moved by seeded noise, seeded
    scores, and one false-positive person per frame; written as PoseTrack18 files named like the GT files."""
    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(gt_dir.glob("*.json")):
        data = json.loads(path.read_text())
        anns = []
        for ann in data["annotations"]:
            kps = np.asarray(ann.get("keypoints") or [0.0] * 51, dtype=np.float64).reshape(17, 3)
            head = ann.get("bbox_head") or [0, 0, 40, 40]
            sigma = rng.choice([0.05, 0.15, 0.4]) * math.hypot(head[2], head[3])
            moved = kps.copy()
            moved[:, :2] += rng.normal(0, sigma, (17, 2))
            moved[kps[:, 2] == 0] = 0.0
            anns.append({**{k: ann[k] for k in ("image_id", "track_id", "category_id")},
                         "keypoints": _flat(moved), "scores": [float(s) for s in rng.random(17)]})
        for k, im in enumerate(data["images"]):
            if im.get("is_labeled"):
                fp = np.concatenate([rng.uniform([0, 0], [im["width"], im["height"]], (17, 2)), np.ones((17, 1))], 1)
                anns.append({"image_id": im["id"], "track_id": 900 + k, "category_id": 1, "keypoints": _flat(fp),
                             "scores": [float(s) for s in rng.random(17)]})
        (out_dir / path.name).write_text(json.dumps({"images": data["images"], "annotations": anns,
                                                     "categories": data["categories"]}))
    return out_dir


# poseval's apAll on the real PoseTrack18 sample files (../shared/data/posetrack18_samples/annotations/val) against
# `perturb_real_predictions(seed)`, printed by the same reference script.
REAL_REFERENCE: dict[int, list[float]] = {
    1: [
        50.90909090909091, 39.030303030303024, 33.58974358974359, 33.49112426035503, 48.45238095238095,
        32.04545454545455, 35.192837465564736, 49.353741496598644, 19.29499072356215, 42.698412698412696,
        40.833333333333336, 29.220779220779214, 38.8608776844071, 18.181818181818183, 24.16512059369202,
        35.68800057903307,
    ],
    2: [
        53.86363636363636, 51.24999999999999, 35.34798534798534, 41.97802197802198, 76.75, 59.87012987012987,
        51.23966942148761, 67.49999999999999, 42.0280612244898, 46.64050235478807, 16.333333333333332,
        67.06293706293707, 30.612244897959183, 75.64102564102564, 34.015151515151516, 50.00884660072972,
    ],
}


@pytest.mark.realdata
@pytest.mark.parametrize("seed", sorted(REAL_REFERENCE))
def test_matches_poseval_on_real_posetrack18_files(tmp_path, seed):
    from conftest import shared_data

    gt_dir = shared_data("posetrack18_samples", "annotations", "val")
    pred_dir = perturb_real_predictions(gt_dir, tmp_path / "pred", seed)
    result = evaluate_paths(gt_dir, pred_dir, presence="poseval")
    reference = REAL_REFERENCE[seed]
    got = [result.per_joint[n] for n in JOINT_NAMES] + [result.groups["Mean"]]
    for ref, value in zip(reference, got):
        assert (math.isnan(ref) and math.isnan(value)) or value == pytest.approx(ref, abs=1e-6)
