"""`stdpose evaluate`: PoseTrack mAP exactly as poseval computes it, or COCO OKS AP, printed and saved as JSON."""

from __future__ import annotations

import argparse
import math

NAME = "evaluate"
HELP = "PoseTrack mAP (poseval-compatible) or COCO keypoint AP of predictions against ground truth"
DESCRIPTION = """\
Evaluate predicted poses against ground truth.

--format posetrack (default): the PoseTrack multi-person pose estimation AP of the official evaluation (poseval):
PCKh@0.5 with the head size from the ground-truth head box, predictions assigned to ground-truth persons per image,
joints inside ignore regions removed, per-joint AP from the keypoint scores; printed as the Head, Shoulder, Elbow,
Wrist, Hip, Knee, Ankle, Mean table. GT and PRED are each a PoseTrack18/21 or PoseTrack17 JSON file or a folder of
per-video files; videos are paired by name and frames by file name, and only labeled frames are evaluated.

--head-size auto: ground truth without any head box (hand-made or CVAT files) is scored with the documented
fallback (from head_top/head_bottom, else the person box), named in the notes; never used when head boxes exist.

--format coco: COCO keypoint AP/AR (OKS) by pycocotools; GT is a COCO keypoint file, PRED a COCO results list or
a COCO keypoint file (e.g. `stdpose propagate`'s COCO output; images matched by file_name, a missing score taken
from the per-joint scores, else 1).

examples:
  stdpose evaluate --gt data/posetrack18/annotations/val --pred out/predictions --json out/map.json
  stdpose evaluate --gt person_keypoints_val2017.json --pred results.json --format coco
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, help="ground truth: a JSON file or a folder of per-video files")
    parser.add_argument("--pred", required=True, help="predictions: a JSON file or a folder of per-video files")
    parser.add_argument("--json", metavar="OUT", help="also write the result as JSON to this file")
    parser.add_argument("--format", choices=("posetrack", "coco"), default="posetrack",
                        help="metric: PoseTrack mAP (default) or COCO OKS AP")
    parser.add_argument("--presence", choices=("poseval", "visible"), default="poseval",
                        help="posetrack: a keypoint counts unless it is (0, 0, 0) as in poseval (default), or "
                             "only when its visibility v > 0")
    parser.add_argument("--lenient", action="store_true",
                        help="posetrack: skip predicted videos/frames that are not in the ground truth and count "
                             "ground-truth videos without predictions as missed, instead of stopping")
    parser.add_argument("--labeled-only", action="store_true",
                        help="posetrack: evaluate only frames whose is_labeled is true (poseval, the default, "
                             "evaluates every frame that holds persons); named in the table header when used")
    parser.add_argument("--head-size", choices=("box", "auto"), default="box",
                        help="posetrack: PCKh head size from the head boxes (box, default, as poseval), or for a "
                        "ground truth without any head box the documented fallback (auto; docs/evaluation.md)")
    parser.add_argument("--per-joint", action="store_true", help="posetrack: also print AP/precision/recall per joint")
    parser.add_argument("--markdown", action="store_true", help="print tables as Markdown")
    parser.add_argument("--title", default=None, help="row label for the table (default: the predictions' name)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from stdpose.atomic import atomic_write_json
    from stdpose.paths import check_outputs

    check_outputs({"--json": args.json}, {"--gt": args.gt, "--pred": args.pred})
    label = args.title or Path(args.pred).name
    if args.format == "coco":
        from stdpose.eval.coco_oks import evaluate_coco_oks

        stats = evaluate_coco_oks(args.gt, args.pred)
        print(_coco_table(stats, markdown=args.markdown))
        payload = {"metric": "COCO keypoint AP (OKS), percent", "stats": _json_floats(stats)}
    else:
        from stdpose.eval.posetrack_map import evaluate_paths

        result = evaluate_paths(args.gt, args.pred, presence=args.presence, strict=not args.lenient,
                                labeled_only=args.labeled_only,
                                head_size_mode=args.head_size)
        counts = result.counts
        title = (f"PoseTrack mAP: {result.num_images} evaluated frames in {counts['videos']} videos, "
                 f"{counts['gt_persons']} GT / {counts['pred_persons']} predicted persons")
        if args.labeled_only:
            title += " (--labeled-only: frames with is_labeled false are not evaluated; poseval evaluates them)"
        print(result.format_table(title=title, label=label, markdown=args.markdown))
        if args.per_joint:
            print()
            print(result.format_per_joint(markdown=args.markdown))
        for note in result.notes:
            print(f"note: {note}")
        payload = result.to_dict()
    if args.json:
        payload["inputs"] = {"gt": str(args.gt), "pred": str(args.pred), "format": args.format}
        atomic_write_json(args.json, payload, indent=2)
        print(f"wrote {args.json}")
    return 0


def _json_floats(stats: dict[str, float]) -> dict[str, float | None]:
    return {k: (None if math.isnan(v) else v) for k, v in stats.items()}


def _coco_table(stats: dict[str, float], markdown: bool) -> str:
    names = list(stats)
    values = ["nan" if math.isnan(v) else f"{v:.1f}" for v in stats.values()]
    if markdown:
        return "\n".join(["| " + " | ".join(names) + " |", "|" + "|".join(" --- " for _ in names) + "|",
                          "| " + " | ".join(values) + " |"])
    widths = [max(len(n), len(v)) for n, v in zip(names, values)]
    return "\n".join(["  ".join(n.rjust(w) for n, w in zip(names, widths)),
                      "  ".join(v.rjust(w) for v, w in zip(values, widths))])
