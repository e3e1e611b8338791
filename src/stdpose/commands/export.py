"""`stdpose export`: a trained checkpoint to an ONNX model for deployment."""

from __future__ import annotations

import argparse

NAME = "export"
HELP = "export a trained checkpoint to ONNX (verified against PyTorch)"
DESCRIPTION = """\
Export a checkpoint written by `stdpose train` to ONNX. The graph takes the cropped frame triplet
`frames` (B, 3, 3, H, W) [left, key, right] (RGB, ImageNet-normalised) and, for propagation models, the two
labeled frames' label heatmaps `aux_heatmaps` (B, 2, J, H/4, W/4); it outputs `heatmaps` (B, J, H/4, W/4).
The batch size is dynamic. The exported file is checked with onnxruntime against PyTorch before it is kept.

example:
  stdpose export --checkpoint outputs/train/synthetic_demo/checkpoints/last.ckpt --out outputs/stdpose.onnx
  (training also keeps the best epoch as checkpoints/best-epochNNN-val_mAP<score>.ckpt)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a .ckpt written by `stdpose train`")
    parser.add_argument("--out", required=True, help="where to write the .onnx file")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset version (default 18)")


def run(args: argparse.Namespace) -> int:
    from stdpose.engine.checkpoints import load_model_from_checkpoint
    from stdpose.engine.export import export_onnx
    from stdpose.paths import check_outputs

    check_outputs({"--out": args.out}, {"--checkpoint": args.checkpoint})
    model, config = load_model_from_checkpoint(args.checkpoint)
    report = export_onnx(model, config, args.out, opset=args.opset)
    print(f"wrote {report.path} (inputs: {', '.join(report.inputs)}; output: heatmaps)")
    print(f"onnxruntime vs PyTorch on a batch of 3: max abs difference {report.max_abs_diff:.2e} "
          f"(heatmap peak {report.max_heatmap:.3f}); export took {report.seconds:.1f} s")
    return 0
