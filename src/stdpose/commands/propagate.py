"""`stdpose propagate`: fill every frame of a sparsely-labeled video with propagated poses (and score them)."""

from __future__ import annotations

import argparse

NAME = "propagate"
HELP = "propagate labeled poses to every frame of a video (STDPose or a baseline), optionally scoring them"
DESCRIPTION = """\
Propagate the poses of the labeled frames of a video to all its other frames.

Inputs: the video (--video: an mp4/avi file or a folder of frame images) and a label file (--labels: PoseTrack18/21
JSON, PoseTrack17 JSON or COCO keypoints) with some frames labeled, persons carrying boxes and track ids. Each
person is followed by track id from one labeled frame to the next; unlabeled frames get its box interpolated
between the labels (or matched from --detections).

Output (--out): the same format as the labels, with every frame filled. Labeled frames keep their human labels;
each propagated person has per-keypoint "scores", the "track_id" of the labeled person it came from, "propagated":
true, the "method" and the two labeled frames it came from ("from_labels"). A file that lists only labeled frames
(COCO) is expanded to every frame of the video. --overlay also writes a video with the poses drawn (labels solid,
propagated poses hollow).

Evaluation (--interval T [--eval]): on a fully labeled file, only the labels of every T-th frame are kept
(--protocol posewarper, the paper's: the first kept label is frame 3 of the labeled run, then every T-th, and the
run's last frame when it is more than 3 frames away; --protocol every: frames 0, T, 2T, ...). The dropped labels
are the ground truth: --eval prints the PoseTrack mAP table (Head ... Ankle, Mean) of the propagated poses.

Methods (--method): stdpose (a trained propagation checkpoint, --checkpoint), flow (Farneback optical flow),
linear (interpolation between the two labels), nearest (copy of the nearer label). nearest and linear need no
video unless --overlay is given.

Review (--review-below S): propagated joints scored below S are flagged in the output ("review",
"review_joints"), faded and ringed red in --overlay, and listed with crops in --review-sheet (.html or .jpg).

Data sets (--labels FOLDER): every label file of the folder (a PoseTrack split) is propagated, one output file per
video in the --out folder; --video is then the root the frames are under; --workers N runs N videos at a time;
--gt-out DIR writes the labels --interval dropped so `stdpose evaluate --gt DIR --pred OUT` scores exactly the
propagated frames. Under torchrun or SLURM the videos are sharded over the ranks (docs/propagation.md).

examples:
  stdpose propagate --video clip.mp4 --labels clip.json --checkpoint model.ckpt --out clip_full.json
  stdpose propagate --video frames/ --labels clip.json --checkpoint model.ckpt --out out.json --overlay out.mp4
  stdpose propagate --video frames/ --labels full.json --method linear --interval 7 --eval --out pred.json
  stdpose propagate --video clip.mp4 --labels clip.json --method flow --review-below 0.4 --review-sheet r.html \
      --out full.json
  stdpose propagate --labels annotations/val --video ROOT --method flow --interval 7 --out pred/ --gt-out gt/ \
      --workers 4
"""

METHODS = ("stdpose", "flow", "linear", "nearest")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video", metavar="V", help="video file (mp4, avi, ...) or folder of frame images")
    parser.add_argument("--labels", metavar="L", required=True,
                        help="label file: PoseTrack18/21 JSON, PoseTrack17 JSON or COCO keypoints JSON; or a folder "
                        "of them (data-set mode)")
    parser.add_argument("--out", metavar="O", required=True,
                        help="output label file (the input's format); a folder in data-set mode")
    parser.add_argument("--method", choices=METHODS, default="stdpose",
                        help="propagation method (default: stdpose, which needs --checkpoint)")
    parser.add_argument("--checkpoint", metavar="C", help="trained propagation checkpoint (`stdpose train`)")
    parser.add_argument("--interval", metavar="T", type=int, default=None,
                        help="keep only the labels of every T-th frame (see --protocol); the dropped labels are "
                        "the ground truth of --eval")
    parser.add_argument("--protocol", choices=("posewarper", "every"), default="posewarper",
                        help="which labels --interval keeps (default: posewarper, the paper's protocol)")
    parser.add_argument("--eval", action="store_true",
                        help="score the propagated poses against the labels --interval dropped (PoseTrack mAP)")
    parser.add_argument("--detections", metavar="FILE",
                        help="person boxes (COCO results JSON: image_id, bbox, score) for unlabeled frames; "
                        "default: boxes interpolated between the labels")
    parser.add_argument("--overlay", metavar="OUT.mp4", help="also write a video with the poses drawn")
    parser.add_argument("--video-name", metavar="NAME",
                        help="which video of a label file that holds several (its name or vid_id)")
    parser.add_argument("--one-sided", choices=("half", "full", "none"), default="half",
                        help="a person present in only one of two consecutive labeled frames is propagated up to "
                        "the midpoint between them (half, default), over the whole gap (full) or not at all")
    parser.add_argument("--device", default="cpu", help="torch device for --method stdpose (cpu, cuda, cuda:1)")
    parser.add_argument("--batch-size", type=int, default=32, help="person crops per network call (stdpose)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--verbose", action="store_true",
                        help="also print the library's log messages (the notes below the summary say the same)")
    review = parser.add_argument_group("review (docs/propagation.md, 'Scores and review')")
    review.add_argument("--review-below", metavar="S", type=float, default=None,
                        help="flag propagated joints scored below S (0..1) for review: every propagated person gets "
                        "\"review\" (bool) and \"review_joints\" (slot indices) in the output; the overlay fades "
                        "joints below S and rings them red")
    review.add_argument("--review-sheet", metavar="FILE",
                        help="write a review sheet of the flagged poses with crops: .html (a page listing every "
                        "flagged frame) or .jpg/.png (a contact sheet); with a folder of labels: a folder of one "
                        ".jpg per video. Needs --review-below and --video")
    data = parser.add_argument_group("data sets (--labels FOLDER)")
    data.add_argument("--workers", metavar="N", type=int, default=1,
                      help="with a folder of label files: propagate N videos at a time in N processes (default 1)")
    data.add_argument("--gt-out", metavar="DIR",
                      help="with --interval: write the labels --interval dropped (one file per video) to DIR, so "
                      "`stdpose evaluate --gt DIR --pred OUT` scores exactly the propagated frames")


def _pick_video(videos: list, name: str | None, path: str):
    from stdpose.errors import ConfigError, DataError

    if not videos:
        raise DataError(path, "holds no video")
    if name is None:
        if len(videos) > 1:
            names = ", ".join(v.name for v in videos[:8])
            raise ConfigError(f"{path} holds {len(videos)} videos ({names}{' ...' if len(videos) > 8 else ''}); "
                              "choose one with --video-name")
        return videos[0]
    for v in videos:
        if name in (v.name, str(v.vid_id)):
            return v
    raise ConfigError(f"no video named {name!r} in {path} (it has: {', '.join(v.name for v in videos[:8])})")


def _detections_by_frame(path: str, video, notes: list[str]) -> dict[int, list]:
    from stdpose.data.formats import read_detections
    from stdpose.propagation.tracks import detections_for_video

    dets = read_detections(path)
    out = {i: d for i, d in detections_for_video(video, dets).items() if d}
    ids = {f.image_id for f in video.frames}
    unmatched = sum(len(d) for i, d in dets.items() if i not in ids)
    notes.append(f"detections: {sum(len(d) for d in out.values())} boxes on {len(out)} frame(s)"
                 + (f"; {unmatched} box(es) with an image_id of no frame of this video ignored" if unmatched else ""))
    return out


def _write(video, path: str) -> None:
    from stdpose.propagation.dataset_mode import write_like_input

    write_like_input(video, path)


def _build_propagator(args: argparse.Namespace, detections):
    from stdpose.errors import ConfigError

    progress = not args.no_progress
    if args.method == "stdpose":
        if not args.checkpoint:
            raise ConfigError("--method stdpose needs --checkpoint (a trained propagation model); or choose "
                              "--method flow|linear|nearest")
        from stdpose.propagation.learned import STDPosePropagator

        return STDPosePropagator.from_checkpoint(args.checkpoint, device=args.device, batch_size=args.batch_size,
                                                 progress=progress, one_sided=args.one_sided, detections=detections)
    if args.checkpoint:
        raise ConfigError(f"--checkpoint is only used by --method stdpose (got --method {args.method})")
    from stdpose.propagation.methods import get_propagator

    return get_propagator(args.method, one_sided=args.one_sided, detections=detections, progress=progress)


def run(args: argparse.Namespace) -> int:
    import logging

    # The library logs each unusual case as it meets it; this command prints them once, as notes, at the end.
    logger = logging.getLogger("stdpose")
    level = logger.level
    logger.setLevel(logging.INFO if args.verbose else logging.ERROR)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    finally:
        logger.setLevel(level)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    if Path(args.labels).is_dir():  # data-set mode: every video of a folder of label files
        from stdpose.propagation.dataset_mode import run_command

        return run_command(args)
    from stdpose.data.formats import read_annotations
    from stdpose.data.video import ImageListReader, open_frames
    from stdpose.errors import ConfigError, DataError
    from stdpose.propagation.alignment import AlignedFrames, align_labels, reference_size, restore_alignment
    from stdpose.propagation.protocol import sparsify

    needs_frames = args.method in ("stdpose", "flow")
    if (needs_frames or args.overlay) and not args.video:
        raise ConfigError(f"--video is required for --method {args.method}" if needs_frames
                          else "--overlay needs --video")
    if args.eval and args.interval is None:
        raise ConfigError("--eval needs --interval T: the labels it drops are the ground truth it scores against")
    if args.interval is not None and args.interval < 2:
        raise ConfigError(f"--interval must be at least 2 (one unlabeled frame between kept labels), got "
                          f"{args.interval}")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.method == "stdpose" and not args.checkpoint:
        raise ConfigError("--method stdpose needs --checkpoint (a trained propagation model); or choose "
                          "--method flow|linear|nearest")
    if args.review_below is not None:
        from stdpose.propagation.review import check_threshold

        check_threshold(args.review_below)
    if args.review_sheet and (args.review_below is None or not args.video):
        raise ConfigError("--review-sheet needs --review-below S (which poses to list) and --video (the crops)")
    if args.gt_out and args.interval is None:
        raise ConfigError("--gt-out needs --interval T: the labels it drops are the ground truth it writes")
    if args.workers != 1:
        raise ConfigError("--workers is for a folder of label files (--labels FOLDER)")

    video = _pick_video(read_annotations(args.labels), args.video_name, args.labels)
    notes: list[str] = []
    alignment, frames = None, None
    if args.video:
        reader = open_frames(args.video)
        names = [f.name for f in reader.files] if isinstance(reader, ImageListReader) else None
        alignment = align_labels(video, len(reader), names)
        notes.extend(alignment.notes)
        work = alignment.video
        size, size_from = reference_size(work, lambda i: reader[alignment.video_index[i]])
        frames = AlignedFrames(reader, alignment.video_index, size)
    else:
        work = video
    labeled = work.labeled_indices()
    if not labeled:
        raise DataError(args.labels, f"video {work.name} has no labeled frame (within the video) to propagate from")

    gt = None
    source = work
    if args.interval is not None:
        source, gt, labeled = sparsify(work, args.interval, args.protocol)
        scored = sum(1 for f in gt.frames if f.is_labeled)
        notes.append(f"--interval {args.interval} ({args.protocol}): kept the labels of frames {labeled}, dropped "
                     f"{scored} labeled frame(s) (the ground truth of --eval)")
        if args.interval >= work.num_frames:
            notes.append(f"the interval ({args.interval}) is longer than the video ({work.num_frames} frames): "
                         "every other frame is propagated from the kept label(s) alone")
        if not labeled:
            raise DataError(args.labels, "no label left after --interval (the labeled run is empty)")
    detections = _detections_by_frame(args.detections, work, notes) if args.detections else None
    propagator = _build_propagator(args, detections)

    out = propagator.propagate(source, frames, labeled)
    review = None
    if args.review_below is not None:
        from stdpose.propagation.review import mark_for_review

        review = mark_for_review(out, args.review_below)
    result = restore_alignment(out, alignment) if alignment is not None else out
    _write(result, args.out)
    if args.gt_out:
        _write(gt, str(Path(args.gt_out) / Path(args.out).name))

    summary = getattr(propagator, "last_summary", {}) or out.extra.get("propagation", {})
    unlabeled = [f for f in out.frames if not f.is_labeled]
    poses = sum(len(f.persons) for f in unlabeled)
    empty = sum(1 for f in unlabeled if not f.persons)
    print(f"{args.method}: {poses} propagated pose(s) on {len(unlabeled)} unlabeled frame(s) from "
          f"{len(labeled)} labeled frame(s) of video {work.name} -> {args.out}")
    if frames is not None and frames.resized:
        sizes = sorted({f"{w}x{h}" for w, h in frames.resized.values()})
        notes.append(f"{len(frames.resized)} frame(s) of another size ({', '.join(sizes)}) were resized to "
                     f"{frames.size[0]}x{frames.size[1]} ({size_from}), the pixel grid of the labels")
    if summary.get("one_sided_left") or summary.get("one_sided_right"):
        notes.append(f"{summary.get('one_sided_left', 0) + summary.get('one_sided_right', 0)} track(s) appear in "
                     f"only one of two consecutive labeled frames: propagated per --one-sided {args.one_sided}; "
                     f"{summary.get('one_sided_frames_skipped', 0)} (track, frame) pair(s) left without a pose")
    if summary.get("assigned_track_ids"):
        notes.append(f"{summary['assigned_track_ids']} labeled person(s) had no (or a duplicate) track id and "
                     "were followed by box overlap")
    stats = summary.get("stats") or {}
    notes.extend(stats.get("notes", []))
    if empty:
        notes.append(f"{empty} unlabeled frame(s) got no pose (no labeled person's track covers them)")
    if alignment is not None and alignment.missing:
        notes.append(f"{len(alignment.missing)} frame(s) of the labels are not in the video: written unchanged")
    for note in notes:
        print(f"  note: {note}")
    if review is not None:
        print(f"  {review.line()}")
    if args.review_sheet:
        from stdpose.review_sheet import write_review_sheet

        sheet = write_review_sheet(out, frames, args.review_sheet, threshold=args.review_below)
        print(f"  review sheet: {sheet.path} ({sheet.shown} of {len(sheet.items)} run(s) shown)")
    if stats:
        print(f"  backbone passes: {stats['backbone_images']} person crops for {stats['key_frames']} propagated "
              f"pose(s) in {stats['seconds']:.1f} s")

    if args.eval:
        from stdpose.eval.posetrack_map import evaluate_posetrack

        res = evaluate_posetrack([gt], [out])
        print(res.format_table(title=f"PoseTrack mAP of the {len(gt.labeled_indices())} dropped labeled frame(s) "
                               f"(T={args.interval}, {args.protocol})", label=args.method))
        for note in res.notes:
            print(f"  eval note: {note}")
    if args.overlay:
        from stdpose.viz import DEFAULT_DIM_BELOW, encode_overlay_video

        dim = args.review_below if args.review_below is not None else DEFAULT_DIM_BELOW
        written = encode_overlay_video(out, frames, args.overlay, progress=not args.no_progress, dim_below=dim)
        print(f"overlay video: {written.path} ({written.codec_name}, {written.frames} frames"
              + (f", upscaled x{written.upscale}" if written.upscale > 1 else "") + ")")
    return 0
