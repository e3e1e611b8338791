"""Data-set mode of `stdpose propagate` (--labels FOLDER): parallel and distributed runs write the same files as one
process; --gt-out + `stdpose evaluate` gives the protocol's own score; frames are decoded once per video."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, run_propagate

from stdpose.cli import main
from stdpose.data.formats import read_annotations
from stdpose.data.video import ImageListReader, VideoFrames
from stdpose.propagation.dataset_mode import DatasetOptions, VideoJob, plan_jobs, propagate_job, shard
from stdpose.propagation.flow import FlowPropagator
from stdpose.propagation.protocol import evaluate_propagators


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def sequential(tiny_synthetic, tmp_path_factory):
    """One-process flow run over the tiny train split at T=7: (out dir, gt dir, printed text)."""
    base = tmp_path_factory.mktemp("seq")
    argv = ["propagate", "--no-progress", "--labels", str(tiny_synthetic / "annotations" / "train"), "--video",
            str(tiny_synthetic), "--method", "flow", "--interval", "7", "--review-below", "0.5",
            "--review-sheet", str(base / "sheets"), "--out", str(base / "out"), "--gt-out", str(base / "gt")]
    assert main(argv) == 0
    return base / "out", base / "gt"


def test_one_output_file_per_video_and_the_dropped_labels(tiny_synthetic, sequential):
    out, gt = sequential
    labels = sorted(p.name for p in (tiny_synthetic / "annotations" / "train").glob("*.json"))
    assert sorted(p.name for p in out.iterdir()) == labels == sorted(p.name for p in gt.iterdir())
    for name in labels:
        source = read_annotations(tiny_synthetic / "annotations" / "train" / name)[0]
        pred, truth = read_annotations(out / name)[0], read_annotations(gt / name)[0]
        assert pred.num_frames == truth.num_frames == source.num_frames
        # gt holds exactly the frames that were propagated (labeled in the source, not kept)
        kept = set(pred.labeled_indices())
        assert set(truth.labeled_indices()) == set(source.labeled_indices()) - kept
        assert all(p.propagated for i in truth.labeled_indices() for p in pred.frames[i].persons)
        assert any(p.extra.get("review") for f in pred.frames for p in f.persons)
    # one review sheet per video with flagged poses
    assert sorted(p.name for p in (out.parent / "sheets").iterdir()) == [n.replace(".json", ".jpg") for n in labels]


def test_gt_out_and_evaluate_give_the_protocols_own_score(tiny_synthetic, sequential, tmp_path, capsys):
    out, gt = sequential
    assert main(["evaluate", "--gt", str(gt), "--pred", str(out), "--json", str(tmp_path / "m.json")]) == 0
    capsys.readouterr()
    tool = json.loads((tmp_path / "m.json").read_text())
    videos = read_annotations(tiny_synthetic / "annotations" / "train")
    own = evaluate_propagators(videos, lambda v: VideoFrames(v, tiny_synthetic), {"flow": FlowPropagator()}, 7)["flow"]
    assert own.num_images == tool["num_images"] > 0
    for group, value in own.groups.items():
        assert tool["groups"][group] == pytest.approx(value, abs=1e-9), group


def test_workers_write_the_same_files_as_one_process(tiny_synthetic, sequential, tmp_path, capsys):
    rc, text, err = run_propagate(capsys, "--labels", tiny_synthetic / "annotations" / "train", "--video",
                                  tiny_synthetic, "--method",
                         "flow", "--interval", "7", "--review-below", "0.5", "--workers", "2",
                         "--out", tmp_path / "out", "--gt-out", tmp_path / "gt")
    assert rc == 0, err
    assert "4 video(s)" in text and "2 worker(s)" in text
    assert _files(tmp_path / "out") == _files(sequential[0])
    assert _files(tmp_path / "gt") == _files(sequential[1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_under_torchrun_write_the_same_files_as_one_process(tiny_synthetic, sequential, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src"), "PYTHONWARNINGS": "ignore"}
    for key in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "SLURM_NTASKS", "SLURM_PROCID"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(_free_port()), "-m", "stdpose.cli", "propagate", "--no-progress", "--labels",
           str(tiny_synthetic / "annotations" / "train"), "--video", str(tiny_synthetic), "--method", "flow",
           "--interval", "7",
           "--review-below", "0.5", "--out", str(tmp_path / "out"), "--gt-out", str(tmp_path / "gt")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.stdout.count("4 video(s)") == 1 and "on 2 ranks" in proc.stdout  # rank 0 prints the summary
    assert _files(tmp_path / "out") == _files(sequential[0])
    assert _files(tmp_path / "gt") == _files(sequential[1])


def test_shards_cover_every_video_once_and_balance_frames(tiny_synthetic, tmp_path):
    jobs = plan_jobs(tiny_synthetic / "annotations" / "train", tmp_path / "o", None)
    for world in (1, 2, 3, 5):
        parts = [shard(jobs, r, world) for r in range(world)]
        names = [j.video.name for part in parts for j in part]
        assert sorted(names) == sorted(j.video.name for j in jobs)
        loads = [sum(j.weight for j in part) for part in parts]
        assert max(loads) - min(loads) <= max(j.weight for j in jobs)


def test_frames_are_decoded_once_per_video(tiny_synthetic, tmp_path, monkeypatch):
    decoded: list[tuple[str, int]] = []
    original = ImageListReader._decode

    def counting(self, index):
        decoded.append((str(self.path), index))
        return original(self, index)

    monkeypatch.setattr(ImageListReader, "_decode", counting)
    job = plan_jobs(tiny_synthetic / "annotations" / "train", tmp_path / "o", tiny_synthetic)[0]
    result = propagate_job(job, DatasetOptions(method="flow", interval=7), FlowPropagator())
    assert result.frames == job.video.num_frames and result.propagated_poses > 0
    assert len(decoded) == len(set(decoded)) and len(decoded) <= job.video.num_frames


def test_bad_data_set_input_is_a_one_line_error(tiny_synthetic, tmp_path, capsys):
    labels = tiny_synthetic / "annotations" / "train"
    cases = [
        (["--out", tmp_path / "x.json"], "--out must be a folder"),
        (["--out", tmp_path / "o", "--gt-out", tmp_path / "g"], "--gt-out needs --interval"),
        (["--out", tmp_path / "o", "--overlay", tmp_path / "o.mp4"], "--overlay is for one video"),
        (["--out", labels, "--interval", "7"], "the labels folder"),
        (["--out", tmp_path / "o", "--workers", "0"], "--workers must be at least 1"),
        (["--out", tmp_path / "o", "--out-format", "coco"], "--out-format is for one video"),
        (["--out", tmp_path / "o", "--cvat-map", "coco"], "--cvat-map is for one video"),
        (["--out", tmp_path / "o", "--checkpoint", tmp_path / "m.ckpt"], "only used by --method stdpose"),
    ]
    for extra, message in cases:
        rc, _, err = run_propagate(capsys, "--labels", labels, "--method", "linear", *extra)
        assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, (extra, err)
    empty = tmp_path / "nowhere"
    empty.mkdir()
    rc, _, err = run_propagate(capsys, "--labels", labels, "--video", empty, "--method", "flow", "--out",
                               tmp_path / "o")
    assert rc == 2 and "no frames of video" in err
    assert not (tmp_path / "o").exists()  # nothing written when the plan fails


def test_extend_reaches_every_video_of_the_folder(tiny_synthetic, tmp_path, capsys):
    """--extend 0 fills nothing past the first/last kept label; the default with --interval fills what the
    protocol scores there."""
    labels = tiny_synthetic / "annotations" / "train"
    outside = {}
    for name, extra in (("default", []), ("zero", ["--extend", "0"])):
        rc, _, err = run_propagate(capsys, "--labels", labels, "--method", "linear", "--interval", "7",
                                   "--out", tmp_path / name, *extra)
        assert rc == 0, err
        count = 0
        for path in sorted((tmp_path / name).iterdir()):
            video = read_annotations(path)[0]
            first, last = video.labeled_indices()[0], video.labeled_indices()[-1]
            count += sum(len(f.persons) for f in video.frames if f.index < first or f.index > last)
        outside[name] = count
    assert outside["zero"] == 0 < outside["default"]


def test_video_job_weight_counts_frames(tiny_synthetic, tmp_path):
    job = plan_jobs(tiny_synthetic / "annotations" / "train", tmp_path / "o", tiny_synthetic)[0]
    assert isinstance(job, VideoJob) and job.weight == job.video.num_frames
    assert job.frames == tiny_synthetic / Path(job.video.frames[0].file_name).parent


def test_ranks_come_from_torchrun_or_slurm(monkeypatch):
    from stdpose.propagation.dataset_mode import RankInfo, distributed_rank

    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"):
        monkeypatch.delenv(key, raising=False)
    assert distributed_rank() == RankInfo(0, 1, 0)
    monkeypatch.setenv("SLURM_PROCID", "5")
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    assert distributed_rank() == RankInfo(5, 8, 1)
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert distributed_rank() == RankInfo(2, 4, 0)  # torchrun's variables win


def test_frame_paths_from_label_files_stay_under_the_root(tmp_path):
    from stdpose.data.records import Frame, Video
    from stdpose.errors import DataError
    from stdpose.propagation.dataset_mode import find_frames

    root = tmp_path / "root"
    (tmp_path / "outside" / "seq").mkdir(parents=True)
    root.mkdir()
    video = Video("seq", [Frame(0, "../outside/seq/000000.jpg", is_labeled=True)])
    with pytest.raises(DataError, match="no frames of video 'seq'"):
        find_frames(video, tmp_path / "seq.json", root)
    (root / "seq").mkdir()
    assert find_frames(video, tmp_path / "seq.json", root) == root / "seq"


def test_a_failing_rank_stops_every_rank_with_its_error(tiny_synthetic, tmp_path):
    import shutil

    labels, images = tmp_path / "labels", tmp_path / "data"
    labels.mkdir()
    for p in sorted((tiny_synthetic / "annotations" / "train").glob("*.json"))[:2]:
        shutil.copy(p, labels / p.name)
    shutil.copytree(tiny_synthetic / "images" / "train", images / "images" / "train")
    broken = sorted((images / "images" / "train").iterdir())[1]
    for f in broken.glob("*.jpg"):
        f.write_bytes(b"not an image")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src"), "PYTHONWARNINGS": "ignore"}
    for key in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "SLURM_NTASKS", "SLURM_PROCID"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(_free_port()), "-m", "stdpose.cli", "propagate", "--no-progress", "--labels", str(labels),
           "--video", str(images), "--method", "flow", "--interval", "7", "--out", str(tmp_path / "out")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    # both ranks stop with the broken video's error (one line each), none hangs in the gather
    assert proc.stderr.count("cannot decode image") >= 2, proc.stderr[-3000:]


def test_progress_bar_counts_frames_of_finished_videos(tiny_synthetic, tmp_path, monkeypatch):
    import tqdm

    from stdpose.propagation.dataset_mode import run_jobs

    seen: dict[str, list] = {"total": [], "updates": []}

    class Bar:
        def __init__(self, total=None, **kwargs):
            seen["total"].append(total)

        def update(self, n):
            seen["updates"].append(n)

        def set_postfix_str(self, text):
            pass

        def close(self):
            pass

    monkeypatch.setattr(tqdm, "tqdm", Bar)
    jobs = plan_jobs(tiny_synthetic / "annotations" / "train", tmp_path / "o", None)
    jobs[0].video.frames = jobs[0].video.frames[:10]  # videos of different lengths move the bar differently
    run_jobs(jobs, DatasetOptions(method="linear", interval=7), progress=True)
    assert seen["total"] == [sum(j.video.num_frames for j in jobs)]
    assert seen["updates"] == [j.video.num_frames for j in jobs] and seen["updates"][0] == 10


def test_gt_out_for_one_video_matches_its_eval(tiny_synthetic, tmp_path, capsys):
    labels = sorted((tiny_synthetic / "annotations" / "val").glob("*.json"))[0]
    rc, text, err = run_propagate(capsys, "--labels", labels, "--method", "linear", "--interval", "7", "--eval",
                         "--out", tmp_path / "pred.json", "--gt-out", tmp_path / "gt")
    assert rc == 0, err
    assert sorted(p.name for p in (tmp_path / "gt").iterdir()) == ["pred.json"]
    assert main(["evaluate", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred.json")]) == 0
    table = capsys.readouterr().out
    own = text.splitlines()[text.splitlines().index(next(ln for ln in text.splitlines() if ln.startswith("Method")))
                            + 1].split()[1:]
    tool = next(ln for ln in table.splitlines() if ln.startswith("pred.json")).split()[1:]
    assert own == tool and len(own) == 8


def test_an_error_in_a_worker_process_is_a_one_line_error(tiny_synthetic, tmp_path, capsys):
    import pickle
    import shutil

    from stdpose.data.video import FrameIndexError
    from stdpose.errors import DataError

    for err in (DataError("a.json", "bad"), FrameIndexError("v.mp4", "frame 9 out of range")):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err)
    labels, images = tmp_path / "labels", tmp_path / "data"
    labels.mkdir()
    for p in sorted((tiny_synthetic / "annotations" / "train").glob("*.json"))[:2]:
        shutil.copy(p, labels / p.name)
    shutil.copytree(tiny_synthetic / "images" / "train", images / "images" / "train")
    for f in sorted((images / "images" / "train").iterdir())[1].glob("*.jpg"):
        f.write_bytes(b"not an image")
    rc, _, err = run_propagate(capsys, "--labels", labels, "--video", images, "--method", "flow", "--interval", "7",
                      "--workers", "2", "--out", tmp_path / "out")
    assert rc == 2 and "cannot decode image" in err and len(err.strip().splitlines()) == 1, err
