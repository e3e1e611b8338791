"""Data-set mode of `stdpose propagate`: every video of a folder of label files (a PoseTrack split), in parallel.

    stdpose propagate --labels annotations/val --video ROOT --method flow --interval 7 \
        --out pred/ --gt-out gt/ --workers 4
    stdpose evaluate --gt gt/ --pred pred/          # Table 1 over the split, no training code involved

Unit of work = one video: a worker reads its label file's video, decodes its frames (lazily, in order, through
the usual `FrameReader` with its small LRU cache, so each frame is decoded about once and memory stays bounded by
one video's working set per worker), propagates, and writes one output file (and, with `gt_out`, the labels the
protocol dropped: the ground truth of exactly the propagated frames). Results do not depend on the number of
workers or ranks: each video is processed alone, deterministically, and written to its own file.

Where the frames are (`find_frames`), for a video whose label file lists frames `images/val/<seq>/000000.jpg`:
`ROOT/images/val/<seq>/` (the PoseTrack layout: ROOT is the data root the file names are relative to), else
`ROOT/<video name>/` or `ROOT/<label file stem>/` (a frame folder), else `ROOT/<name>.mp4|.avi|...` (a video file).

Past one machine (`distributed_rank`): under torchrun or SLURM (`RANK`/`WORLD_SIZE`, or `SLURM_PROCID`/`SLURM_NTASKS`)
the videos are sharded over the ranks (`shard`, balanced by frame count, deterministic), each rank runs its share
(with its own `--workers`), and rank 0 gathers the per-video summaries through torch.distributed (gloo on CPU, NCCL
when the device is a GPU). `--device cuda` becomes `cuda:<LOCAL_RANK>` on each rank.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from stdpose.data.records import Video
from stdpose.errors import ConfigError, DataError, StdposeError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
FRAME_CACHE = 32  # decoded frames kept per worker: the frames of a gap at T <= 30 stay cached across its tracks


@dataclass(frozen=True)
class DatasetOptions:
    """How every video is propagated (the per-video flags of `stdpose propagate`)."""

    method: str = "linear"
    checkpoint: str | None = None
    device: str = "cpu"
    batch_size: int = 32
    one_sided: str = "half"
    interval: int | None = None
    protocol: str = "posewarper"
    extend: int | None = None  # as `stdpose.api.run_propagation`: None = 0, or the protocol's reach with interval
    review_below: float | None = None
    review_sheet_dir: str | None = None


@dataclass
class VideoJob:
    """One video to propagate: its labels, where its frames are (None: not needed), where its results go."""

    video: Video
    label_file: Path
    frames: Path | None
    out_file: Path
    gt_file: Path | None = None

    @property
    def weight(self) -> int:
        """Frames of the video: the unit of the progress bar and of the rank balancing."""
        return max(1, self.video.num_frames)


@dataclass
class VideoResult:
    """What propagating one video did (small: sent back from workers and ranks)."""

    name: str
    out_file: str
    frames: int
    labeled: int
    propagated_poses: int
    scored_frames: int = 0
    flagged_poses: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def find_frames(video: Video, label_file: Path, root: Path) -> Path:
    """The frame folder or video file of `video` under `root` (see the module docstring), or DataError."""
    candidates: list[Path] = []
    if video.frames and video.frames[0].file_name:
        candidates.append(root / Path(video.frames[0].file_name).parent)
    for name in dict.fromkeys([video.name, label_file.stem]):
        candidates.append(root / name)
        candidates.extend(root / f"{name}{suffix}" for suffix in VIDEO_SUFFIXES)
    for path in candidates:
        try:
            path.resolve().relative_to(root.resolve())
        except ValueError:  # a file name with '..' must not lead outside the root
            continue
        if path.is_dir() and path != root or path.is_file():
            return path
    raise DataError(label_file, f"no frames of video '{video.name}' under {root} (looked for "
                                f"{', '.join(str(p.relative_to(root)) for p in candidates[:3])}, ...)")


def plan_jobs(labels_dir: str | Path, out_dir: str | Path, video_root: str | Path | None,
              gt_out: str | Path | None = None) -> list[VideoJob]:
    """One job per video of every *.json in `labels_dir` (sorted); output file = the label file's name (or
    `<video name>.json` when a file holds several videos). `video_root` None: methods that need no frames."""
    from stdpose.data.formats import read_annotations

    labels_dir, out_dir = Path(labels_dir), Path(out_dir)
    files = sorted(p for p in labels_dir.iterdir() if p.suffix == ".json" and p.is_file())
    if not files:
        raise DataError(labels_dir, "folder holds no .json label files")
    for folder, what in ((out_dir, "--out"), (Path(gt_out) if gt_out else None, "--gt-out")):
        if folder is not None and folder.resolve() == labels_dir.resolve():
            raise ConfigError(f"{what} {folder} is the labels folder: the inputs would be overwritten")
    jobs: list[VideoJob] = []
    names: dict[str, Path] = {}
    for f in files:
        videos = read_annotations(f)
        for video in videos:
            name = f.name if len(videos) == 1 else f"{video.name}.json"
            if name in names:
                raise DataError(f, f"two videos would be written to {out_dir / name} (also from {names[name]})")
            names[name] = f
            frames = find_frames(video, f, Path(video_root)) if video_root is not None else None
            jobs.append(VideoJob(video, f, frames, out_dir / name, Path(gt_out) / name if gt_out else None))
    return jobs


def shard(jobs: Sequence[VideoJob], rank: int, world_size: int) -> list[VideoJob]:
    """The jobs of `rank`: videos dealt out biggest first to the rank with the fewest frames so far (ties: lower
    rank), the same on every rank; in the input order within a rank."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"bad rank {rank} of world size {world_size}")
    load = [0] * world_size
    owner: dict[int, int] = {}
    for k in sorted(range(len(jobs)), key=lambda k: (-jobs[k].weight, k)):
        r = min(range(world_size), key=lambda r: (load[r], r))
        owner[k] = r
        load[r] += jobs[k].weight
    return [job for k, job in enumerate(jobs) if owner[k] == rank]


# ---------------------------------------------------------------------------------------------------------------
# one video


def build_propagator(options: DatasetOptions, progress: bool = False) -> Any:
    """The propagator of `options.method`, built once for all videos (`run_propagation` sets each one's extend)."""
    from stdpose.api import build_propagator as build

    return build(options.method, options.checkpoint, one_sided=options.one_sided, device=options.device,
                 batch_size=options.batch_size, progress=progress)


def propagate_job(job: VideoJob, options: DatasetOptions, propagator: Any) -> VideoResult:
    """Propagate one video and write its output (and its dropped labels): `stdpose.api.run_propagation`, the
    same steps as one-video mode, on a frame reader with a bounded cache."""
    from stdpose.api import run_propagation
    from stdpose.data.formats import write_annotations

    start = time.perf_counter()
    video = job.video
    result = VideoResult(video.name, str(job.out_file), video.num_frames, 0, 0)
    if not video.labeled_indices():  # nothing to propagate from: the video is written as it is (and counted)
        write_annotations(video, job.out_file)
        result.notes = ["no labeled frame to propagate from: written without propagated poses"]
        result.seconds = time.perf_counter() - start
        return result
    frames = None
    if job.frames is not None:
        from stdpose.data.video import open_frames

        frames = open_frames(job.frames, cache_size=FRAME_CACHE)
    run = run_propagation(frames, video, options.method, options.checkpoint, options.interval,
                          protocol=options.protocol, extend=options.extend, one_sided=options.one_sided,
                          propagator=propagator)
    out = run.output
    if options.review_below is not None:
        from stdpose.propagation.review import mark_for_review

        review = mark_for_review(out, options.review_below)  # marks `out`, which `run.result` shares persons with
        result.flagged_poses = review.flagged_poses
        if options.review_sheet_dir and review.flagged_poses:
            from stdpose.review_sheet import write_review_sheet

            sheet = Path(options.review_sheet_dir) / f"{job.out_file.stem}.jpg"
            write_review_sheet(out, run.frames, sheet, threshold=options.review_below)
    write_annotations(run.result, job.out_file)
    if job.gt_file is not None:
        if run.ground_truth is None:
            raise ConfigError("--gt-out needs --interval T: the dropped labels are the ground truth")
        write_annotations(run.ground_truth, job.gt_file)
        result.scored_frames = sum(1 for f in run.ground_truth.frames if f.is_labeled)
    result.frames, result.labeled = out.num_frames, len(run.labeled)
    result.propagated_poses = sum(len(f.persons) for f in out.frames if not f.is_labeled)
    result.seconds = time.perf_counter() - start
    result.notes = run.notes
    return result


# ---------------------------------------------------------------------------------------------------------------
# many videos: worker processes, progress, ranks

_WORKER: dict[str, Any] = {}


def _init_worker(options: DatasetOptions, threads: int) -> None:
    import cv2
    import torch

    torch.set_num_threads(max(1, threads))
    cv2.setNumThreads(max(1, threads))  # OpenCV's own pool (flow, resizing) would oversubscribe the cores too
    logging.getLogger("stdpose").setLevel(logging.ERROR)  # the parent prints the notes
    _WORKER["options"] = options
    _WORKER["propagator"] = build_propagator(options)


def _run_in_worker(job: VideoJob) -> VideoResult:
    return propagate_job(job, _WORKER["options"], _WORKER["propagator"])


def run_jobs(jobs: Sequence[VideoJob], options: DatasetOptions, workers: int = 1, progress: bool = True,
             desc: str = "videos") -> list[VideoResult]:
    """Propagate every job, in `workers` processes (1: in this process); results in the order of `jobs`.

    The progress bar counts frames of finished videos (a long video moves it further than a short one), so its
    ETA is remaining frames over the rate so far, not remaining videos over videos per second.
    """
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(j.weight for j in jobs), desc=desc, unit="frame", dynamic_ncols=True)
    results: dict[int, VideoResult] = {}

    def done(k: int, res: VideoResult) -> None:
        results[k] = res
        if bar is not None:
            bar.update(jobs[k].weight)
            bar.set_postfix_str(f"{len(results)}/{len(jobs)} videos, last {res.name}")

    try:
        if workers == 1 or len(jobs) <= 1:
            propagator = build_propagator(options)
            for k, job in enumerate(jobs):
                done(k, propagate_job(job, options, propagator))
        else:
            import multiprocessing

            threads = max(1, (os.cpu_count() or 1) // workers)
            # spawn: a fresh interpreter per worker (forking a process that holds torch threads can deadlock)
            ctx = multiprocessing.get_context("spawn")
            order = sorted(range(len(jobs)), key=lambda k: -jobs[k].weight)  # longest first: less idle at the end
            with ctx.Pool(min(workers, len(jobs)), initializer=_init_worker, initargs=(options, threads)) as pool:
                for k, res in zip(order, pool.imap(_run_in_worker, [jobs[k] for k in order], chunksize=1)):
                    done(k, res)
    finally:
        if bar is not None:
            bar.close()
    return [results[k] for k in range(len(jobs))]


@dataclass(frozen=True)
class RankInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


def distributed_rank() -> RankInfo:
    """This process's rank from torchrun (RANK, WORLD_SIZE, LOCAL_RANK) or SLURM (SLURM_PROCID, SLURM_NTASKS,
    SLURM_LOCALID); a single process when neither is set."""
    env = os.environ
    if "WORLD_SIZE" in env and "RANK" in env:
        return RankInfo(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    if "SLURM_NTASKS" in env and "SLURM_PROCID" in env and int(env["SLURM_NTASKS"]) > 1:
        return RankInfo(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0)))
    return RankInfo()


def run_dataset(jobs: Sequence[VideoJob], options: DatasetOptions, workers: int = 1,
                progress: bool = True) -> tuple[list[VideoResult], RankInfo]:
    """Run the jobs of this rank (all of them in a single process) and, under torch.distributed, gather every
    rank's results on every rank (in the order of `jobs`). Returns (results, rank info)."""
    info = distributed_rank()
    if info.world_size == 1:
        return run_jobs(jobs, options, workers, progress), info
    import torch
    import torch.distributed as dist

    device = options.device
    if device == "cuda" and torch.cuda.is_available():
        device = f"cuda:{info.local_rank}"
        torch.cuda.set_device(info.local_rank)
    backend = "nccl" if device.startswith("cuda") else "gloo"
    env = os.environ
    env.setdefault("RANK", str(info.rank))
    env.setdefault("WORLD_SIZE", str(info.world_size))
    if "MASTER_ADDR" not in env:
        raise ConfigError("distributed run without MASTER_ADDR (torchrun sets it; under SLURM export "
                          "MASTER_ADDR=<first node> and MASTER_PORT, see docs/propagation.md)")
    env.setdefault("MASTER_PORT", "29500")
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group(backend=backend)
    try:
        mine = shard(jobs, info.rank, info.world_size)
        error: str | None = None
        try:
            local = run_jobs(mine, replace(options, device=device), workers, progress and info.rank == 0,
                             desc=f"videos (rank 0 of {info.world_size})")
        except StdposeError as exc:  # tell the other ranks instead of leaving them waiting in the gather
            local, error = [], str(exc)
        gathered: list[Any] = [None] * info.world_size
        dist.all_gather_object(gathered, (error, [(str(j.out_file), r) for j, r in zip(mine, local)]))
    finally:
        if owned:
            dist.destroy_process_group()
    errors = [(r, e) for r, (e, _) in enumerate(gathered) if e]
    if errors:
        raise DataError(None, f"rank {errors[0][0]}: {errors[0][1]}")
    gathered = [part for _, part in gathered]
    by_file = {f: r for part in gathered for f, r in part}
    return [by_file[str(j.out_file)] for j in jobs], info


# ---------------------------------------------------------------------------------------------------------------
# the command


def run_command(args: Any) -> int:
    """`stdpose propagate --labels FOLDER ...`: check the flags, run every video, print a summary (rank 0)."""
    for flag, value in (("--overlay", args.overlay), ("--detections", args.detections),
                        ("--video-name", args.video_name), ("--out-format", args.out_format),
                        ("--cvat-map", args.cvat_map)):
        if value:
            raise ConfigError(f"{flag} is for one video; with a folder of label files (--labels "
                              f"{args.labels}) leave it out")
    out = Path(args.out)
    if out.suffix == ".json" or out.is_file():
        raise ConfigError(f"--labels is a folder, so --out must be a folder (one file per video), got {out}")
    if args.eval and not args.gt_out:
        raise ConfigError("--eval over a folder needs --gt-out DIR (it scores OUT against the dropped labels there, "
                          "as `stdpose evaluate --gt DIR --pred OUT` does)")
    from stdpose.api import FRAME_METHODS

    if args.method in FRAME_METHODS and not args.video:
        raise ConfigError(f"--video ROOT (where the frames are) is required for --method {args.method}")
    needs_frames = args.method in FRAME_METHODS or args.review_sheet
    options = DatasetOptions(method=args.method, checkpoint=args.checkpoint, device=args.device,
                             batch_size=args.batch_size, one_sided=args.one_sided, interval=args.interval,
                             protocol=args.protocol, extend=args.extend, review_below=args.review_below,
                             review_sheet_dir=args.review_sheet)
    if args.review_sheet and args.review_below is None:
        raise ConfigError("--review-sheet needs --review-below S (which poses to list)")
    build_propagator(options)  # fail on a bad checkpoint before reading the whole split
    jobs = plan_jobs(args.labels, out, args.video if needs_frames else None, args.gt_out)
    start = time.perf_counter()
    results, info = run_dataset(jobs, options, workers=args.workers, progress=not args.no_progress)
    seconds = time.perf_counter() - start
    if info.rank != 0:
        return 0
    frames = sum(r.frames for r in results)
    poses = sum(r.propagated_poses for r in results)
    ranks = f" on {info.world_size} ranks" if info.world_size > 1 else ""
    print(f"{args.method}: {len(results)} video(s), {frames} frame(s), {poses} propagated pose(s) in "
          f"{seconds:.1f} s ({args.workers} worker(s){ranks}) -> {out}/")
    if args.gt_out:
        print(f"  dropped labels of {sum(r.scored_frames for r in results)} frame(s) -> {args.gt_out}/ "
              f"(stdpose evaluate --gt {args.gt_out} --pred {out})")
    if args.review_below is not None:
        flagged = sum(r.flagged_poses for r in results)
        print(f"  review: {flagged} of {poses} propagated pose(s) have a joint scored below {args.review_below:g}"
              + (f"; sheets in {args.review_sheet}/" if args.review_sheet and flagged else ""))
    noted = [r for r in results if r.notes]
    if noted:
        print(f"  note: {len(noted)} of the videos have notes" + ("" if args.verbose else " (--verbose lists them)"))
        if args.verbose:
            for r in noted:
                for note in r.notes:
                    print(f"    {r.name}: {note}")
    if args.eval:
        from stdpose.eval.posetrack_map import evaluate_paths

        res = evaluate_paths(args.gt_out, out, head_size_mode=args.head_size)
        print(res.format_table(title=f"PoseTrack mAP of the dropped labeled frames of {len(results)} video(s) "
                                     f"(T={args.interval}, {args.protocol})", label=args.method))
    return 0
