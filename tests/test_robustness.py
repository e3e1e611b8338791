"""Bad input, hostile files and kills (issue 12): one test per reported case. Each gives a one-line error (exit 2)
naming the file and the problem, or a documented, counted skip/clip; never a traceback, a silently wrong result,
an overwritten input or a path outside its root. Checkpoint kills and SIGTERM: test_checkpoint_lifecycle.py;
metric rules: test_eval_parity_rules.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest_engine import REPO, tiny_overrides

from stdpose.cli import main
from stdpose.data.formats import read_annotations, read_posetrack17, read_posetrack18, write_posetrack18
from stdpose.data.records import Frame, Person, Video
from stdpose.errors import ConfigError, DataError
from stdpose.skeleton import EVALUATED_SLOTS, NUM_SLOTS

DEMO = REPO / "configs" / "synthetic_demo.yaml"



def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)


def _pose(dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    kps = np.zeros((NUM_SLOTS, 3))
    for i, slot in enumerate(EVALUATED_SLOTS):
        kps[slot] = (20 + dx + 3 * (i % 4), 8 + dy + 2 * i, 1.0)
    return kps


def _labels(n: int, labeled: list[int], name: str = "clip", dx=None, size=None) -> Video:
    """A video of n frames named clip/000000.jpg..., one person (track 1) on each labeled frame."""
    frames = []
    for i in range(n):
        persons = [Person(keypoints=_pose(dx=(dx or {}).get(i, 0.0)), track_id=1, bbox=None, bbox_head=(0, 0, 4, 4))
                   ] if i in labeled else []
        frames.append(Frame(index=i, file_name=f"images/{name}/{i:06d}.jpg", persons=persons,
                            is_labeled=i in labeled, width=size[0] if size else None,
                            height=size[1] if size else None))
    return Video(name=name, frames=frames, vid_id="000001")


def _frame_folder(folder: Path, n: int, size=(64, 48), names=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = np.full((size[1], size[0], 3), 40 + 5 * i, np.uint8)
        cv2.imwrite(str(folder / (names[i] if names else f"{i:06d}.png")), img)
    return folder


def _pt18(tmp_path: Path, images: list[dict], annotations: list[dict] | None = None) -> Path:
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations or [],
                                "categories": [{"id": 1, "name": "person"}]}))
    return path


# ------------------------------------------------------------------ silent wrong results
def test_booleans_given_as_strings_or_numbers(tmp_path):
    images = [{"file_name": f"images/v/{i:06d}.jpg", "id": i, "vid_id": "1", "frame_id": i,
               "is_labeled": flag} for i, flag in enumerate(["false", "true", 0, 1, "FALSE", True, "0", None])]
    frames = read_posetrack18(_pt18(tmp_path, images))[0].frames
    assert [f.is_labeled for f in frames] == [False, True, False, True, False, True, False, False]
    for bad in ("maybe", 2, [0, 1], {}):
        images = [{"file_name": "images/v/000000.jpg", "id": 0, "vid_id": "1", "is_labeled": bad}]
        with pytest.raises(DataError, match="is_labeled must be true or false"):
            read_posetrack18(_pt18(tmp_path, images))
    pt17 = tmp_path / "pt17.json"
    pt17.write_text(json.dumps({"annolist": [{"image": [{"name": "a/000000.jpg"}], "annorect": [],
                                              "is_labeled": ["false"]}]}))
    assert read_posetrack17(pt17)[0].frames[0].is_labeled is False


def test_propagated_poses_outside_the_frame_are_clipped_and_counted(tmp_path, capsys):
    # labels slightly outside the 64x48 frame (annotators click past the border; within the tolerance) at both
    # ends: the poses in between lie outside too, and are clipped onto the frame with a note
    video = _labels(5, [0, 4], dx={0: -30.0, 4: -30.0})
    write_posetrack18(video, tmp_path / "labels.json")
    frames = _frame_folder(tmp_path / "frames", 5)
    code, out, err = _cli(capsys, "propagate", "--labels", str(tmp_path / "labels.json"), "--video", str(frames),
                          "--out", str(tmp_path / "out.json"), "--method", "linear", "--no-progress")
    assert code == 0, err
    assert "propagated joint(s)" in out and "clipped onto it" in out
    result = read_annotations(tmp_path / "out.json")[0]
    for frame in result.frames[1:4]:
        xy = frame.persons[0].keypoints[frame.persons[0].annotated, :2]
        assert xy[:, 0].min() >= 0 and xy[:, 0].max() <= 63 and xy[:, 1].max() <= 47
    assert result.frames[0].persons[0].keypoints[EVALUATED_SLOTS[0], 0] == -10.0  # human labels untouched


def test_labels_far_outside_the_frame_are_refused(tmp_path, capsys):
    write_posetrack18(_labels(5, [0, 4], dx={4: 1e30}), tmp_path / "labels.json")
    frames = _frame_folder(tmp_path / "frames", 5)
    code, _, err = _cli(capsys, "propagate", "--labels", str(tmp_path / "labels.json"), "--video", str(frames),
                        "--out", str(tmp_path / "out.json"), "--method", "linear", "--no-progress")
    _one_line_error(code, err, "labels.json", "frame 4", "lies outside the 64x48 image")
    assert not (tmp_path / "out.json").exists()


def test_zero_or_negative_label_boxes_are_noted(tmp_path, capsys):
    video = _labels(5, [0, 4])
    write_posetrack18(video, tmp_path / "labels.json")
    data = json.loads((tmp_path / "labels.json").read_text())
    data["annotations"][0]["bbox"] = [10, 10, 0, -5]
    (tmp_path / "labels.json").write_text(json.dumps(data))
    code, out, err = _cli(capsys, "propagate", "--labels", str(tmp_path / "labels.json"), "--out",
                          str(tmp_path / "out.json"), "--method", "linear", "--no-progress")
    assert code == 0, err
    assert "1 labeled box(es) with zero or negative size were not used" in out


def test_predict_clips_boxes_partly_outside_and_skips_boxes_outside():
    from test_predict import BOX, EST_CONFIG, BlobModel, _frames

    from stdpose.engine.predict import Estimator

    video = Video(name="clip", frames=[Frame(index=i, file_name=f"clip/{i:06d}.jpg", width=160, height=120)
                                       for i in range(5)])
    est = Estimator(BlobModel(), EST_CONFIG, progress=False)
    boxes = {1: [(BOX, 0.9), ((5000.0, 5000.0, 60.0, 90.0), 0.9), ((-30.0, 10.0, 100.0, 90.0), 0.9)]}
    out = est.predict_video(video, _frames(), boxes)
    s = est.last_stats
    assert (s.boxes_in, s.boxes_outside, s.boxes_clipped, s.persons) == (3, 1, 1, 2)
    assert any("entirely outside skipped" in n for n in s.notes)
    for person in out.frames[1].persons:
        assert 0 <= person.bbox[0] and person.bbox[0] + person.bbox[2] <= 160


@pytest.mark.parametrize("case", ["reversed", "unrelated", "missing"])
def test_frame_folder_names_that_differ_from_the_labels(case, tmp_path):
    from stdpose.propagation.alignment import align_labels

    video = _labels(4, [0, 1, 2, 3])
    label_names = [f"{i:06d}.jpg" for i in range(4)]
    folder = {"reversed": label_names[::-1], "unrelated": [f"img_{c}.jpg" for c in "abcd"],
              "missing": label_names[:3] + ["000009.jpg"]}[case]
    alignment = align_labels(video, 4, folder)
    if case == "reversed":  # matched by name, not by position: label frame 3 is the folder's first frame
        assert [Path(f.file_name).name for f in alignment.video.frames] == folder
        assert any("orders the labels' file names differently" in n for n in alignment.notes)
    else:
        assert alignment.video_index == [0, 1, 2, 3]
        assert any("are not in the frame folder" in n and "matched by position" in n for n in alignment.notes)


def test_interval_on_labels_that_are_already_sparse_keeps_every_human_label(tmp_path, capsys):
    write_posetrack18(_labels(22, [0, 7, 14, 21]), tmp_path / "labels.json")
    frames = _frame_folder(tmp_path / "frames", 22)
    code, _, err = _cli(capsys, "propagate", "--labels", str(tmp_path / "labels.json"), "--video", str(frames),
                        "--out", str(tmp_path / "out.json"), "--method", "linear", "--interval", "7",
                        "--no-progress")
    _one_line_error(code, err, "--interval 7", "[7, 14, 21]", "without --interval")
    assert not (tmp_path / "out.json").exists()


def test_predict_refuses_two_videos_with_the_same_name(tmp_path):
    from stdpose.commands.predict import _write_outputs

    videos = [_labels(2, [0], name="same"), _labels(2, [0], name="same")]
    with pytest.raises(ConfigError, match="two videos are named 'same'"):
        _write_outputs(videos, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ data loss
def test_outputs_that_resolve_to_an_input_are_refused(tmp_path, capsys):
    write_posetrack18(_labels(5, [0, 4]), tmp_path / "labels.json")
    before = (tmp_path / "labels.json").read_bytes()
    (tmp_path / "link.json").symlink_to(tmp_path / "labels.json")
    os.link(tmp_path / "labels.json", tmp_path / "hard.json")
    frames = _frame_folder(tmp_path / "frames", 5)
    cases = [
        ["propagate", "--labels", "labels.json", "--out", "labels.json", "--method", "linear"],
        ["propagate", "--labels", "labels.json", "--out", "link.json", "--method", "linear"],
        ["propagate", "--labels", "labels.json", "--out", "hard.json", "--method", "linear"],
        ["propagate", "--labels", "labels.json", "--out", "./sub/../labels.json", "--method", "linear"],
        ["propagate", "--labels", "labels.json", "--video", "frames", "--out", "o.json", "--overlay", "frames",
         "--method", "linear"],
        ["evaluate", "--gt", "labels.json", "--pred", "labels.json", "--json", "link.json"],
        ["predict", "--video", "frames", "--checkpoint", "c.ckpt", "--gt-boxes", "labels.json", "--out",
         "labels.json"],
        ["export", "--checkpoint", "labels.json", "--out", "labels.json"],
    ]
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for argv in cases:
            code, _, err = _cli(capsys, *argv)
            _one_line_error(code, err, "is the same file as", "overwrite the input")
    finally:
        os.chdir(cwd)
    assert (tmp_path / "labels.json").read_bytes() == before
    assert len(list(frames.iterdir())) == 5


@pytest.mark.parametrize("where", ["folder", "under_file", "unwritable"])
def test_output_paths_that_cannot_be_written(where, tmp_path, capsys):
    write_posetrack18(_labels(5, [0, 4]), tmp_path / "labels.json")
    (tmp_path / "afile").write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    out = {"folder": tmp_path, "under_file": tmp_path / "afile" / "out.json", "unwritable": locked / "o.json"}[where]
    if where == "unwritable" and os.access(locked, os.W_OK):
        pytest.skip("running as a user who can write anywhere (root)")
    code, _, err = _cli(capsys, "propagate", "--labels", str(tmp_path / "labels.json"), "--out", str(out),
                        "--method", "linear")
    _one_line_error(code, err, "--out", {"folder": "is a folder", "under_file": "is a file, not a folder",
                                         "unwritable": "permission denied"}[where])


_KILLED_WRITER = """
import sys, time
from stdpose.atomic import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_text("half")
    print("writing", flush=True)
    time.sleep(60)
"""


def test_temp_file_of_a_writer_killed_mid_write_is_removed_by_the_next_write(tmp_path):
    from stdpose.atomic import atomic_write_text

    target = tmp_path / "out.json"
    target.write_text("old")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(target)], env=env, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    left = [p for p in tmp_path.iterdir() if p != target]
    assert len(left) == 1 and target.read_text() == "old"  # the old output survived, a temp file is left
    atomic_write_text(target, "new")
    assert sorted(tmp_path.iterdir()) == [target] and target.read_text() == "new"


def test_train_refuses_an_incomplete_synth_data_set(tiny_synthetic, tmp_path, capsys):
    import shutil

    data = tmp_path / "synth"
    shutil.copytree(tiny_synthetic, data)
    info = json.loads((data / "synth_info.json").read_text())
    (data / "synth_info.json").write_text(json.dumps({**info, "complete": False}))
    code, _, err = _cli(capsys, "train", str(DEMO), "--output-dir", str(tmp_path / "run"), "--set",
                        *tiny_overrides(data))
    _one_line_error(code, err, "incomplete", "stdpose synth --out")


# ------------------------------------------------------------------ tracebacks -> one line
@pytest.mark.parametrize("case", ["list_image_id", "list_ann_image_id", "string_score", "string_region",
                                  "deep_json"])
def test_malformed_label_values_are_one_line_errors(case, tmp_path, capsys):
    image = {"file_name": "images/v/000000.jpg", "id": 1, "vid_id": "1", "is_labeled": True}
    ann = {"image_id": 1, "keypoints": [0] * 51, "track_id": 0}
    if case == "list_image_id":
        image["id"] = [1, 2]
    elif case == "list_ann_image_id":
        ann["image_id"] = [1]
    elif case == "string_score":
        ann["score"] = "high"
    elif case == "string_region":
        image.update(ignore_regions_x=[["a", "b", "c"]], ignore_regions_y=[[1, 2, 3]])
    path = _pt18(tmp_path, [image], [ann])
    if case == "deep_json":
        path.write_text("[" * 100000 + "]" * 100000)
    code, _, err = _cli(capsys, "evaluate", "--gt", str(path), "--pred", str(path))
    _one_line_error(code, err, "labels.json")


@pytest.mark.parametrize("argv, needle", [
    (["synth", "--seed", "-1", "--out", "OUT"], "--seed must be a whole number >= 0"),
    (["demo", "--seed", "-3", "--out", "OUT"], "--seed must be a whole number >= 0"),
])
def test_negative_seed(argv, needle, tmp_path, capsys):
    code, _, err = _cli(capsys, *[str(tmp_path / "o") if a == "OUT" else a for a in argv])
    _one_line_error(code, err, needle)


@pytest.fixture(scope="module")
def estimation_checkpoint(tiny_synthetic, tmp_path_factory):
    from test_predict import _checkpoint

    return _checkpoint(tmp_path_factory.mktemp("ckpt") / "est.ckpt", tiny_synthetic)


@pytest.mark.parametrize("device, needle", [("tpu:9", "not a torch device"), ("xla", "only cpu, cuda and mps"),
                                            ("cuda", "CUDA is not available")])
def test_unusable_device_is_one_line(device, needle, estimation_checkpoint, tiny_synthetic, tmp_path, capsys):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    code, _, err = _cli(capsys, "predict", "--video", str(tiny_synthetic / "annotations" / "val"), "--image-root",
                        str(tiny_synthetic), "--checkpoint", str(estimation_checkpoint), "--gt-boxes",
                        str(tiny_synthetic / "annotations" / "val"), "--out", str(tmp_path / "o.json"),
                        "--device", device, "--no-progress")
    _one_line_error(code, err, needle)


def test_checkpoint_whose_config_disagrees_with_its_weights(estimation_checkpoint, tmp_path, capsys):
    ckpt = torch.load(estimation_checkpoint, weights_only=True)
    ckpt["hyper_parameters"]["config"]["model"]["backbone"] = "tiny"  # the weights are the nano model's
    torch.save(ckpt, tmp_path / "bad.ckpt")
    code, _, err = _cli(capsys, "export", "--checkpoint", str(tmp_path / "bad.ckpt"), "--out",
                        str(tmp_path / "m.onnx"))
    _one_line_error(code, err, "bad.ckpt", "weights do not fit")


@pytest.mark.parametrize("kind", ["garbage", "truncated", "other_task"])
def test_resume_from_an_unusable_checkpoint_is_one_line(kind, estimation_checkpoint, tiny_synthetic, tmp_path,
                                                         capsys):
    ckpt = tmp_path / "x.ckpt"
    if kind == "garbage":
        ckpt.write_bytes(os.urandom(4096))
    elif kind == "truncated":
        data = estimation_checkpoint.read_bytes()
        ckpt.write_bytes(data[: len(data) // 2])
    else:  # an estimation checkpoint, resumed by a propagation run
        ckpt.write_bytes(estimation_checkpoint.read_bytes())
    code, _, err = _cli(capsys, "train", str(DEMO), "--output-dir", str(tmp_path / "run"), "--resume", str(ckpt),
                        "--set", *tiny_overrides(tiny_synthetic))
    _one_line_error(code, err, "x.ckpt", "checkpoint of a estimation model" if kind == "other_task"
                    else "cannot read checkpoint")


def test_corrupt_frame_met_by_a_dataloader_worker_is_one_line(tiny_synthetic, tmp_path, capsys):
    import shutil

    data = tmp_path / "synth"
    shutil.copytree(tiny_synthetic, data)
    for jpg in (data / "images" / "train").rglob("*.jpg"):
        jpg.write_bytes(b"not a jpeg")
    code, _, err = _cli(capsys, "train", str(DEMO), "--output-dir", str(tmp_path / "run"), "--set",
                        *tiny_overrides(data, {"data.num_workers": 1, "trainer.max_epochs": 1,
                                               "trainer.limit_train_batches": 1}))
    _one_line_error(code, err, ".jpg")


# ------------------------------------------------------------------ hostile label files
def test_file_names_and_video_ids_cannot_leave_their_root(tmp_path):
    from stdpose.data.video import VideoFrames
    from stdpose.engine.pseudolabel import _video_file
    from stdpose.paths import confined

    root = tmp_path / "root"
    for bad in ("../outside.jpg", "/etc/passwd", "a/../../b.jpg"):
        video = Video(name="v", frames=[Frame(index=0, file_name=bad)], source="labels.json")
        with pytest.raises(DataError, match="labels.json: file_name"):
            VideoFrames(video, root)
    assert confined(root, "images/a/../b.jpg", "file_name") == root / "images/a/../b.jpg"  # stays inside
    for name in ("../../evil", "/tmp/evil", ".."):
        with pytest.raises(DataError, match="video name"):
            _video_file(tmp_path / "out", Video(name=name, frames=[], source="labels.json"))


def test_predict_does_not_write_outside_out_for_a_hostile_vid_id(tmp_path, capsys):
    from stdpose.commands.predict import _write_outputs

    video = _labels(2, [0], name="../../escaped")
    with pytest.raises(DataError, match="video name '../../escaped'"):
        _write_outputs([video], tmp_path / "out" / "deep")
    assert not (tmp_path / "escaped.json").exists()


# ------------------------------------------------------------------ packaging
def test_python_dash_m_stdpose(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run([sys.executable, "-m", "stdpose", "--version"], env=env, capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("stdpose ")


def test_shipped_config_names_resolve_outside_a_clone(tmp_path, monkeypatch):
    from stdpose.engine.config import load_config
    from stdpose.yaml_io import packaged_config_names

    monkeypatch.chdir(tmp_path)  # no configs/ folder here
    assert {"synthetic_demo", "posetrack18_propagation"} <= set(packaged_config_names())
    for name in ("synthetic_demo", "synthetic_demo.yaml", "configs/synthetic_demo.yaml"):
        assert load_config(name)["data"]["task"] == "propagation"


def test_built_wheel_contains_the_configs(tmp_path):
    import shutil
    import zipfile

    # build from a copy: setuptools writes build/ and *.egg-info into the source tree
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    wheel = next(tmp_path.glob("stdpose-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {Path(n).name for n in names if n.startswith("stdpose/configs/") and n.endswith(".yaml")}
    assert {p.name for p in (REPO / "configs").glob("*.yaml")} <= shipped
    assert "stdpose/__main__.py" in names




class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("kind", ["garbage", "pickle"])
def test_inference_checkpoint_garbage_or_pickle_is_one_line(kind, tmp_path, capsys):
    ckpt = tmp_path / "x.ckpt"
    marker = tmp_path / "pwned"
    if kind == "garbage":
        ckpt.write_bytes(b"PK\x03\x04" + os.urandom(2000))
    else:
        torch.save({"state_dict": {}, "payload": _Payload(marker)}, ckpt)
    code, _, err = _cli(capsys, "export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.onnx"))
    _one_line_error(code, err, "x.ckpt", "cannot read checkpoint")
    assert not marker.exists()
