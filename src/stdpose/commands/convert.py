"""`stdpose convert`: rewrite a label file in another format (e.g. PoseTrack18 -> CVAT for video XML)."""

from __future__ import annotations

import argparse

NAME = "convert"
HELP = "convert a label file between PoseTrack18, PoseTrack17, COCO, CVAT COCO and CVAT for video XML"
DESCRIPTION = """\
Read a label file in any format stdpose reads and write it in another, e.g. to bring existing labels into CVAT
(CVAT for video 1.1 XML with skeleton tracks; every labeled pose a keyframe) or CVAT's COCO style (tracks in
attributes.track_id). Nothing is propagated. Frames that are not labeled stay so.

examples:
  stdpose convert --labels keyframes_pt18.json --out annotations.xml
  stdpose convert --labels keyframes_pt18.json --out keyframes_cvat_coco.json --out-format cvat_coco --frames 795
  stdpose convert --labels annotations.xml --out labels_pt18.json --out-format posetrack18
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from stdpose.data.formats import FORMATS

    parser.add_argument("--labels", required=True, metavar="L", help="input label file")
    parser.add_argument("--out", required=True, metavar="O", help="output file")
    parser.add_argument("--out-format", choices=FORMATS,
                        default=None, help="output format (default: cvat_video for an .xml --out, else the input's)")
    parser.add_argument("--cvat-map", metavar="MAP", default=None,
                        help="CVAT skeleton node map: posetrack, coco or a JSON/YAML file {node: PoseTrack slot}")
    parser.add_argument("--frames", type=int, default=None, metavar="N",
                        help="list every frame of an N-frame video (a sparse file's skipped frames are added, "
                        "unlabeled; default: PoseTrack18's nframes for CVAT outputs)")
    parser.add_argument("--video-name", metavar="NAME", help="which video of a file that holds several")


def run(args: argparse.Namespace) -> int:
    from stdpose.api import load_labels
    from stdpose.data.formats import write_annotations
    from stdpose.errors import ConfigError
    from stdpose.paths import check_outputs
    from stdpose.propagation.alignment import align_labels, label_frame_count

    check_outputs({"--out": args.out}, {"--labels": args.labels, "--cvat-map": args.cvat_map})
    video = load_labels(args.labels, args.cvat_map, args.video_name)
    fmt = args.out_format or ("cvat_video" if str(args.out).lower().endswith(".xml") else None)
    frames = args.frames
    if frames is None and fmt in ("cvat_video", "cvat_coco"):
        frames = label_frame_count(video)
    if frames is not None and frames < 1:
        raise ConfigError(f"--frames must be at least 1, got {frames}")
    note = ""
    if frames is not None and frames != video.num_frames:
        alignment = align_labels(video, frames)
        video = alignment.video
        note = "; ".join(alignment.notes)
    write_annotations(video, args.out, fmt, node_map=args.cvat_map)
    labeled = video.labeled_indices()
    poses = sum(len(video.frames[i].persons) for i in labeled)
    print(f"{poses} labeled pose(s) on {len(labeled)} labeled frame(s) of {video.num_frames} -> {args.out}"
          + (f" ({fmt})" if fmt else ""))
    if note:
        print(f"  note: {note}")
    return 0
