"""`stdpose propagate`: fill every frame of a sparsely-labeled video with propagated poses (and score them)."""

from __future__ import annotations

import argparse

NAME = "propagate"
HELP = "propagate labeled poses to every frame of a video (STDPose or a baseline), optionally scoring them"
DESCRIPTION = """\
Propagate the poses of the labeled frames of a video to the frames between them.

Inputs: the video (--video: an mp4/avi file or a folder of frame images) and a label file (--labels: PoseTrack18/21
JSON, PoseTrack17 JSON, COCO keypoints - CVAT's "COCO Keypoints 1.0" export included, tracks from
attributes.track_id - or CVAT for video 1.1 XML with skeleton tracks, --cvat-map naming the skeleton's nodes) with
some frames labeled. Each person is followed by track id from one labeled frame to the next (persons without ids
are matched by pose similarity after optical-flow motion compensation when --video is given); unlabeled frames get
its box interpolated between the labels (or matched from --detections).

Bounded: a track is filled only between its first and last label; the summary says how many (track, frame) pairs
before / after were left out. --extend N fills at most N frames past them, with scores falling with the distance.

Output (--out): the labels' format (or --out-format; an .xml --out is CVAT for video 1.1 in the layout CVAT's
importer reads: every filled frame a keyframe, propagated skeletons with the attributes propagated, score,
method). Labeled frames keep their human labels; each propagated person has per-keypoint "scores", the "track_id"
of the labeled person it came from, "propagated": true, the "method" and the two labeled frames it came from
("from_labels"). A file that lists only labeled frames is expanded to every frame of the video (without --video:
to PoseTrack18's nframes).
--overlay also writes a video with the poses drawn (labels solid, propagated poses hollow).

Evaluation (--interval T [--eval]): on a fully labeled file, only the labels of every T-th frame are kept
(--protocol posewarper, the paper's: the first kept label is frame 3 of the labeled run, then every T-th, and the
run's last frame when it is more than 3 frames away; --protocol every: frames 0, T, 2T, ...); tracks are extended
as far as the farthest scored frame (at most 3 for posewarper). The dropped labels are the ground truth: --eval checks
first that they can be scored, then prints the PoseTrack mAP table (Head ... Ankle, Mean); files without head
boxes use the head-size fallback of docs/evaluation.md, named in the table's title.

Methods (--method): stdpose (a trained propagation checkpoint, --checkpoint), auto (optical flow where it is
reliable, interpolation where it is not; no weights needed), flow (Farneback optical flow), linear (interpolation
between the two labels), nearest (copy of the nearer label). Default: stdpose with --checkpoint, else auto.
nearest and linear need no video unless --overlay is given.

Review (--review-below S): propagated joints scored below S are flagged in the output ("review",
"review_joints"), faded and ringed red in --overlay, and listed with crops in --review-sheet (.html or .jpg).

Data sets (--labels FOLDER): every label file of the folder (a PoseTrack split) is propagated, one output file per
video in the --out folder; --video is then the root the frames are under; --workers N runs N videos at a time;
--gt-out DIR writes the labels --interval dropped so `stdpose evaluate --gt DIR --pred OUT` scores exactly the
propagated frames. Under torchrun or SLURM the videos are sharded over the ranks (docs/propagation.md).

examples:
  stdpose propagate --video clip.mp4 --labels clip.json --checkpoint model.ckpt --out clip_full.json
  stdpose propagate --video clip.mp4 --labels annotations.xml --method flow --out clip_full.xml
  stdpose propagate --video frames/ --labels clip.json --checkpoint model.ckpt --out out.json --overlay out.mp4
  stdpose propagate --video frames/ --labels full.json --method linear --interval 7 --eval --out pred.json
  stdpose propagate --video clip.mp4 --labels clip.json --method flow --review-below 0.4 --review-sheet r.html \
      --out full.json
  stdpose propagate --labels annotations/val --video ROOT --method flow --interval 7 --out pred/ --gt-out gt/ \
      --workers 4
"""

METHODS = ("stdpose", "auto", "flow", "linear", "nearest")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video", metavar="V", help="video file (mp4, avi, ...) or folder of frame images")
    parser.add_argument("--labels", metavar="L", required=True,
                        help="label file: PoseTrack18/21 JSON, PoseTrack17 JSON, COCO keypoints JSON (CVAT's COCO "
                        "export too) or CVAT for video 1.1 XML; or a folder of them (data-set mode)")
    parser.add_argument("--out", metavar="O", required=True,
                        help="output label file (the input's format); a folder in data-set mode")
    parser.add_argument("--method", choices=METHODS, default=None,
                        help="propagation method (default: stdpose when --checkpoint is given, else auto)")
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
    parser.add_argument("--extend", metavar="N", type=int, default=None,
                        help="fill at most N frames before a track's first and after its last label, scores "
                        "falling with the distance (default 0: only between labels; with --interval the "
                        "farthest scored frame, at most 3 for posewarper)")
    parser.add_argument("--out-format", choices=("posetrack18", "coco", "cvat_video", "posetrack17"), default=None,
                        help="output format (default: the labels' format; an --out ending in .xml: cvat_video)")
    parser.add_argument("--cvat-map", metavar="MAP", default=None,
                        help="CVAT skeleton node names -> PoseTrack slots: posetrack, coco, or a JSON/YAML file "
                        "{node: slot} (default: detected from the node names)")
    parser.add_argument("--head-size", choices=("auto", "box"), default="auto",
                        help="--eval: head boxes, else (auto, default) the documented fallback from head_top/"
                        "head_bottom or the person box for files without any head box; box: require head boxes")
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


def _out_format(args: argparse.Namespace) -> str | None:
    if args.out_format:
        return args.out_format
    if str(args.out).lower().endswith(".xml"):
        return "cvat_video"
    return None  # the labels' format


def _check_common_flags(args: argparse.Namespace) -> None:
    """The checks (and the default --method) of one-video and data-set mode alike, before either reads a file."""
    from stdpose.errors import ConfigError

    if args.method is None:  # the default: the trained model when there is one, else the weight-free auto
        args.method = "stdpose" if args.checkpoint else "auto"
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.method == "stdpose" and not args.checkpoint:
        raise ConfigError("--method stdpose needs --checkpoint (a trained propagation model); or choose "
                          "--method flow|linear|nearest")
    if args.checkpoint and args.method != "stdpose":
        raise ConfigError(f"--checkpoint is only used by --method stdpose (got --method {args.method})")
    if args.review_below is not None:
        from stdpose.propagation.review import check_threshold

        check_threshold(args.review_below)
    if args.gt_out and args.interval is None:
        raise ConfigError("--gt-out needs --interval T: the labels it drops are the ground truth it writes")


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from stdpose.errors import ConfigError

    _check_common_flags(args)
    if Path(args.labels).is_dir():  # data-set mode: every video of a folder of label files
        from stdpose.propagation.dataset_mode import run_command

        return run_command(args)
    from stdpose.api import FRAME_METHODS, plan_notes, run_propagation
    from stdpose.data.formats import write_annotations
    from stdpose.paths import check_outputs

    check_outputs({"--out": args.out, "--overlay": args.overlay},
                  {"--labels": args.labels, "--video": args.video, "--detections": args.detections,
                   "--checkpoint": args.checkpoint})
    needs_frames = args.method in FRAME_METHODS
    if (needs_frames or args.overlay) and not args.video:
        raise ConfigError(f"--video is required for --method {args.method}" if needs_frames
                          else "--overlay needs --video")
    if args.eval and args.interval is None:
        raise ConfigError("--eval needs --interval T: the labels it drops are the ground truth it scores against")
    if args.review_sheet and (args.review_below is None or not args.video):
        raise ConfigError("--review-sheet needs --review-below S (which poses to list) and --video (the crops)")
    if args.workers != 1:
        raise ConfigError("--workers is for a folder of label files (--labels FOLDER)")

    run = run_propagation(
        args.video, args.labels, args.method, args.checkpoint, args.interval, protocol=args.protocol,
        extend=args.extend, one_sided=args.one_sided, detections=args.detections, node_map=args.cvat_map,
        video_name=args.video_name, evaluate=args.eval, head_size_mode=args.head_size, device=args.device,
        batch_size=args.batch_size, progress=not args.no_progress)
    out, frames, labeled, notes, summary = run.output, run.frames, run.labeled, run.notes, run.summary
    review = None
    if args.review_below is not None:  # marks `out`, whose persons `run.result` shares
        from stdpose.propagation.review import mark_for_review

        review = mark_for_review(out, args.review_below)
    write_annotations(run.result, args.out, _out_format(args), node_map=args.cvat_map)
    if args.gt_out:
        write_annotations(run.ground_truth, Path(args.gt_out) / Path(args.out).name, _out_format(args),
                          node_map=args.cvat_map)

    unlabeled = [f for f in out.frames if not f.is_labeled]
    poses = int(summary.get("propagated_poses", 0))
    empty = sum(1 for f in unlabeled if not f.persons)
    print(f"{args.method}: {poses} propagated pose(s) on {len(unlabeled)} unlabeled frame(s) from "
          f"{len(labeled)} labeled frame(s) of video {out.name} -> {args.out}")
    if frames is not None and frames.resized:
        sizes = sorted({f"{w}x{h}" for w, h in frames.resized.values()})
        notes.append(f"{len(frames.resized)} frame(s) of another size ({', '.join(sizes)}) were resized to "
                     f"{frames.size[0]}x{frames.size[1]} ({frames.size_from}), the pixel grid of the labels")
    notes.extend(plan_notes(summary, args.one_sided))
    stats = summary.get("stats") or {}
    notes.extend(stats.get("notes", []))
    if empty:
        notes.append(f"{empty} unlabeled frame(s) got no pose (no labeled person's track covers them)")
    if run.alignment is not None and run.alignment.missing:
        notes.append(f"{len(run.alignment.missing)} frame(s) of the labels are not in the video: written unchanged")
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

        gt = run.ground_truth
        res = evaluate_posetrack([gt], [out], head_size_mode=args.head_size)
        print(res.format_table(title=f"PoseTrack mAP of the {len(gt.labeled_indices())} dropped labeled frame(s) "
                               f"(T={args.interval}, {args.protocol}; {run.head_note})", label=args.method))
        for note in res.notes:
            print(f"  eval note: {note}")
    if args.overlay:
        from stdpose.viz import DEFAULT_DIM_BELOW, encode_overlay_video

        dim = args.review_below if args.review_below is not None else DEFAULT_DIM_BELOW
        written = encode_overlay_video(out, frames, args.overlay, progress=not args.no_progress, dim_below=dim)
        print(f"overlay video: {written.path} ({written.codec_name}, {written.frames} frames"
              + (f", upscaled x{written.upscale}" if written.upscale > 1 else "") + ")")
    return 0
