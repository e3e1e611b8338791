"""`stdpose predict`: video pose estimation with a trained estimation model, from detected or ground-truth boxes."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "predict"
HELP = "estimate poses in videos from person boxes (detections or ground truth) with a trained estimation model"
DESCRIPTION = """\
Estimate the pose of every person box in a video with a model trained for estimation (data.task: estimation):
each box is cropped (enlarged 25%) from frames t-1, t, t+1 and the model needs no labels at inference.

Input (--video):
  - a video file (mp4, avi, ...) or a folder of frame images: one video. Boxes from --boxes are matched by
    image_id = 0-based frame index (for a folder named like PoseTrack's <video id>_..., by PoseTrack's image
    ids when no image_id is a frame index), unless --gt-boxes/--eval give a label file: then by its image ids;
  - a PoseTrack annotation JSON file or a folder of them (PoseTrack17/18/21): every video in it, frames read
    from --image-root / file_name. Boxes from --boxes are matched by image id (the file's ids, or PoseTrack's
    1<video id><frame> convention for PoseTrack17), or by file name when the box file has a "file_name".
Boxes: --boxes FILE (COCO results JSON: image_id, bbox [x, y, w, h], score; boxes scoring below --box-threshold,
default 0.2, are dropped) or --gt-boxes LABELS (the annotated persons' boxes, score 1; only labeled frames).

Output (--out): PoseTrack18 JSON. A path ending in .json gets every video in one file, otherwise a folder with
one <video>.json per video. Each person: 17 keypoints (v = 1), per-keypoint "scores" = heatmap maximum x box
score, "score", "bbox", "propagated": true. --eval GT prints the PoseTrack mAP table (Head ... Ankle, Mean) and
writes it as JSON beside the output (<out>.map.json for a file, <folder>.map.json for a folder).

Switches (docs/estimation.md has measured effects):
  --flip-test     also run the mirrored crops and average the heatmaps (1.9x / 1.7x the time; +1.4 / +1.6 mAP
                  with detected / ground-truth boxes on the synthetic bench videos,
                  benchmarks/results/predict_options.md)
  --oks-nms 0.9   drop a pose whose OKS with a higher-scoring pose on the same frame exceeds 0.9 (removes
                  duplicates from overlapping detections; no effect with ground-truth boxes)
  --labeled-only  predict only the frames the annotation file marks labeled (what --eval scores; faster)

examples:
  stdpose predict --video clip.mp4 --boxes clip_boxes.json --checkpoint est.ckpt --out clip_poses.json \\
      --overlay clip_poses.mp4
  stdpose predict --video data/posetrack18/annotations/val --image-root data/posetrack18 \\
      --boxes val_boxes.json --checkpoint est.ckpt --out preds/ --flip-test --oks-nms 0.9 \\
      --labeled-only --eval data/posetrack18/annotations/val
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video", metavar="V", required=True,
                        help="video file, frame folder, or PoseTrack annotation JSON file / folder of them")
    parser.add_argument("--image-root", metavar="DIR",
                        help="folder the annotation files' file_name paths are relative to (annotation input)")
    parser.add_argument("--checkpoint", metavar="C", required=True, help="trained estimation checkpoint (.ckpt)")
    parser.add_argument("--out", metavar="O", required=True, help="output .json file, or a folder (one file/video)")
    boxes = parser.add_mutually_exclusive_group(required=True)
    boxes.add_argument("--boxes", metavar="B", help="person detections, COCO results JSON (image_id, bbox, score)")
    boxes.add_argument("--gt-boxes", metavar="LABELS",
                       help="use the boxes of the annotated persons in this label file (file or folder)")
    parser.add_argument("--box-threshold", type=float, default=0.2,
                        help="drop detections scoring below this (default 0.2, as DCPose)")
    parser.add_argument("--flip-test", action="store_true", help="average with the mirrored input's heatmaps")
    parser.add_argument("--oks-nms", type=float, default=None, metavar="THR",
                        help="per-frame OKS non-maximum suppression at this OKS threshold (e.g. 0.9); off by default")
    parser.add_argument("--labeled-only", action="store_true",
                        help="predict only frames marked labeled in the annotations (the frames --eval scores)")
    parser.add_argument("--eval", metavar="GT", help="ground-truth annotations to score the predictions against")
    parser.add_argument("--overlay", metavar="OUT.mp4", help="also write a video with the poses drawn (one video)")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1)")
    parser.add_argument("--batch-size", type=int, default=32, help="persons per network call (default 32)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _is_annotation_input(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() == ".json"
    return path.is_dir() and any(path.glob("*.json"))


def _by_name(videos: list) -> dict:
    out = {}
    for v in videos:
        out[v.name] = v
        if v.vid_id is not None:
            out.setdefault(str(v.vid_id), v)
    return out


def _inputs(args: argparse.Namespace, labels: list | None) -> list[tuple]:
    """[(work video, frame source, labels video or None)] for the --video input."""
    from stdpose.data.formats import read_annotations
    from stdpose.data.records import Frame, Video
    from stdpose.data.video import ImageListReader, VideoFrames, open_frames
    from stdpose.errors import ConfigError, DataError
    from stdpose.propagation.alignment import AlignedFrames, align_labels, reference_size

    source = Path(args.video)
    if not source.exists():
        raise DataError(source, "no such video, frame folder or annotation file")
    if _is_annotation_input(source):
        if not args.image_root:
            raise ConfigError("--image-root is required when --video is an annotation file or folder (the frames "
                              "are read from IMAGE_ROOT/<file_name>)")
        by_name = _by_name(labels or [])
        out = []
        for video in read_annotations(source):
            if not video.frames:
                continue
            out.append((video, VideoFrames(video, args.image_root), by_name.get(video.name)))
        if not out:
            raise DataError(source, "holds no video with frames")
        return out
    reader = open_frames(source)
    if labels:
        if len(labels) > 1:
            raise ConfigError(f"--video is one video but the label file holds {len(labels)} videos; pass the "
                              "label file of this video only")
        names = [f.name for f in reader.files] if isinstance(reader, ImageListReader) else None
        alignment = align_labels(labels[0], len(reader), names)
        work = alignment.video
        size, _ = reference_size(work, lambda i: reader[alignment.video_index[i]])
        return [(work, AlignedFrames(reader, alignment.video_index, size), work)]
    name = source.stem if source.is_file() else source.name
    frames = [Frame(index=i, file_name=f"{name}/{i:06d}.jpg", is_labeled=True) for i in range(len(reader))]
    digits = name.split("_")[0]
    vid_id = digits if digits.isdigit() else None  # PoseTrack folders: 000342_mpii_test -> video id 000342
    return [(Video(name=name, frames=frames, vid_id=vid_id, source=str(source)), reader, None)]


def _write_outputs(videos: list, out: Path) -> list[Path]:
    from stdpose.data.formats import write_posetrack18

    if out.suffix.lower() == ".json":
        write_posetrack18(videos, out)
        return [out]
    from stdpose.paths import confined, refuse_duplicate_names, safe_file_name

    refuse_duplicate_names([v.name for v in videos], "--out", out)
    paths = []
    for v in videos:
        path = confined(out, f"{safe_file_name(v.name, 'video name', v.source)}.json", "video name", v.source)
        write_posetrack18(v, path)
        paths.append(path)
    return paths


def run(args: argparse.Namespace) -> int:
    from collections import Counter

    from stdpose.atomic import atomic_write_json
    from stdpose.data.formats import read_annotations, read_detections
    from stdpose.engine.predict import Estimator, boxes_from_detections, boxes_from_labels
    from stdpose.errors import ConfigError

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    if not 0.0 <= args.box_threshold <= 1.0:
        raise ConfigError(f"--box-threshold must lie in [0, 1], got {args.box_threshold}")
    if args.oks_nms is not None and not 0.0 < args.oks_nms <= 1.0:
        raise ConfigError(f"--oks-nms must lie in (0, 1], got {args.oks_nms}")
    from stdpose.paths import check_outputs

    out_is_file = Path(args.out).suffix.lower() == ".json"
    check_outputs({"--out": args.out if out_is_file else None, "--overlay": args.overlay},
                  {"--video": args.video, "--boxes": args.boxes, "--gt-boxes": args.gt_boxes, "--eval": args.eval,
                   "--checkpoint": args.checkpoint, "--image-root": args.image_root},
                  folders={"--out": None if out_is_file else args.out})
    gt_box_labels = read_annotations(args.gt_boxes) if args.gt_boxes else None
    gt = read_annotations(args.eval) if args.eval else None
    inputs = _inputs(args, gt_box_labels or gt)
    if args.overlay and len(inputs) > 1:
        raise ConfigError(f"--overlay draws one video, but the input holds {len(inputs)}; predict one video file or "
                          "one annotation file to draw it")
    estimator = Estimator.from_checkpoint(
        args.checkpoint, device=args.device, batch_size=args.batch_size, flip_test=args.flip_test,
        box_score_threshold=args.box_threshold, oks_nms=args.oks_nms, progress=not args.no_progress,
    )
    skipped: Counter = Counter()
    detections = read_detections(args.boxes, skipped) if args.boxes else None
    plain_video = not _is_annotation_input(Path(args.video)) and not (gt_box_labels or gt)
    gt_by_name = _by_name(gt_box_labels or [])
    bar = None
    if not args.no_progress and len(inputs) > 1:
        from tqdm import tqdm

        bar = tqdm(total=len(inputs), desc="videos", unit="video")
    predictions, totals = [], Counter()
    for video, frames, labels in inputs:
        if detections is not None:
            boxes = boxes_from_detections(video, detections, by_frame_index=plain_video)
            if plain_video and not boxes and video.vid_id is not None:
                # a PoseTrack frame folder with a PoseTrack box file: ids 1<video id><frame>, not frame indices
                boxes = boxes_from_detections(video, detections)
        else:
            source = labels if labels is not None else gt_by_name.get(video.name)
            boxes = boxes_from_labels(source) if source is not None else {}
        only = video.labeled_indices() if args.labeled_only else None
        pred = estimator.predict_video(video, frames, boxes, frames_to_predict=only)
        predictions.append(pred)
        for key, value in estimator.last_stats.as_dict().items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                totals[key] += value
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    out = Path(args.out)
    written = _write_outputs(predictions, out)
    where = written[0] if len(written) == 1 else f"{out}/ ({len(written)} files)"
    print(f"predict: {int(totals['persons'])} pose(s) on {sum(p.num_frames for p in predictions)} frame(s) of "
          f"{len(predictions)} video(s) -> {where}")
    print(f"  boxes: {int(totals['boxes_in'])} given, {int(totals['below_threshold'])} below --box-threshold "
          f"{args.box_threshold}, {int(totals['invalid_boxes'])} unusable, {int(totals['boxes_outside'])} outside "
          f"the image, {int(totals['boxes_clipped'])} clipped to it, {int(totals['nms_removed'])} removed by "
          f"OKS-NMS; {totals['seconds']:.1f} s")
    if skipped:
        print("  detection file: skipped " + ", ".join(f"{n} {k}" for k, n in sorted(skipped.items())))
    if not totals["boxes_in"]:
        print("  note: no box matched any frame (check image ids / --gt-boxes); the output holds no person")

    if args.overlay:
        from stdpose.viz import write_overlay_video

        path = write_overlay_video(_full_video(inputs[0][0], predictions[0]), inputs[0][1], args.overlay,
                                   progress=not args.no_progress)
        print(f"  overlay -> {path}")
    if gt is not None:
        from stdpose.eval.posetrack_map import evaluate_posetrack

        gt_by = _by_name(gt)
        pairs = [(gt_by[p.name], p) for p in predictions if p.name in gt_by]
        if not pairs:
            raise ConfigError(f"none of the predicted videos is in --eval {args.eval} (names differ)")
        result = evaluate_posetrack([g for g, _ in pairs], [p for _, p in pairs], strict=False)
        print(result.format_table(title=f"PoseTrack mAP, {len(pairs)} video(s)", label="STDPose"))
        # beside the output, never inside an output folder (it would be read back as a prediction file)
        is_file = out.suffix.lower() == ".json"
        target = out.with_suffix(".map.json") if is_file else out.with_name(out.name + ".map.json")
        atomic_write_json(target, {"videos": len(pairs), "flip_test": args.flip_test, "oks_nms": args.oks_nms,
                                   "box_threshold": args.box_threshold, **result.to_dict()}, indent=1)
        print(f"  mAP table -> {target}")
    return 0


def _full_video(video, pred):
    """The prediction spread over every frame of the video (frames not predicted drawn without poses)."""
    import dataclasses

    by_index = {f.index: f for f in pred.frames}
    frames = [by_index.get(f.index, dataclasses.replace(f, persons=[])) for f in video.frames]
    return dataclasses.replace(pred, frames=frames)
