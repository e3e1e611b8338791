"""`stdpose pseudolabel`: sparse labels -> propagation model -> pseudo-labels -> estimation model (paper Table 3)."""

from __future__ import annotations

import argparse

NAME = "pseudolabel"
HELP = "train an estimation model from sparse labels plus pseudo-labels made by a propagation model"
DESCRIPTION = """\
The paper's pseudo-label experiment (Table 3) as one command, driven by a YAML config (configs/pseudolabel_*.yaml):

  1. sparse        keep only every T-th human label (pseudolabel.interval) inside the label window of each
                   training video (pseudolabel.middle_frames: the 30 labeled frames in the middle, as the paper)
  2. propagation   train a propagation model on those sparse labels (the `propagation:` experiment)
  3. pseudolabels  propagate the kept labels to every other frame of each window; pseudo poses are marked
                   "propagated": true; joints scoring below pseudolabel.score_threshold are dropped
  4. estimation    train an estimation model on labels + pseudo-labels (the `estimation:` experiment)

Every stage keeps its output under the output directory (sparse/annotations, propagation/checkpoints,
pseudolabels/annotations, estimation/checkpoints) and writes stage.json when it is complete. Running the command
again skips completed stages and continues an interrupted training (--redo STAGE starts that stage and the later
ones again). summary.json collects the labeled fraction, the pseudo-labels' mAP against the dropped labels (when
the training file has them) and the estimation model's validation mAP.

pseudolabel.estimation_data: labels trains stage 4 on the sparse human labels only (the "labels every T alone"
baseline); with pseudolabel.interval: 1 that is the all-labels reference.

examples:
  stdpose synth --preset tiny --out outputs/synthetic
  stdpose pseudolabel configs/pseudolabel_synthetic.yaml
  stdpose pseudolabel configs/pseudolabel_synthetic.yaml --set pseudolabel.interval=2 --output-dir outputs/pl_T2
  stdpose pseudolabel configs/pseudolabel_posetrack17.yaml --set pseudolabel.interval=4 --redo estimation
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG", help="pipeline YAML, e.g. configs/pseudolabel_synthetic.yaml")
    parser.add_argument("--set", dest="overrides", metavar="KEY=VALUE", nargs="+", action="extend", default=[],
                        help="override config values with dotted keys, e.g. pseudolabel.interval=4 "
                        "propagation.trainer.max_epochs=2 estimation.data.batch_size=8 (values read as YAML)")
    parser.add_argument("--output-dir", metavar="DIR", default=None,
                        help="where every stage's output goes (overrides output_dir in the config)")
    parser.add_argument("--redo", metavar="STAGE", choices=("sparse", "propagation", "pseudolabels", "estimation"),
                        help="run this stage and every later one again, even if they completed before")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config (both stage experiments filled in) and exit")


def run(args: argparse.Namespace) -> int:
    from stdpose.engine.config import dump_config
    from stdpose.engine.pseudolabel import PseudoLabelPipeline, load_pseudolabel_config

    cfg = load_pseudolabel_config(args.config, args.overrides, output_dir=args.output_dir)
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0

    def say(text: str) -> None:
        print(f"stdpose pseudolabel: {text}", flush=True)

    pipeline = PseudoLabelPipeline(cfg, say=say)
    if args.redo:
        pipeline.redo(args.redo)
    try:
        result = pipeline.run()
    except KeyboardInterrupt:
        say(f"interrupted; run the same command again to continue (completed stages are kept in {pipeline.out})")
        return 130
    s = result.summary
    say(f"stages run: {', '.join(result.stages_run) or 'none'}; skipped (done before): "
        f"{', '.join(result.stages_skipped) or 'none'}")
    say(f"labeled frames kept: {s['sparse']['labels_kept']} of {s['sparse']['window_frames']} "
        f"({100 * s['sparse']['labeled_fraction']:.1f}%)")
    quality = (s.get("pseudolabels") or {}).get("quality")
    if quality:
        say(f"pseudo-label mAP against the dropped labels: {quality['groups']['Mean']:.1f}")
    est = s["estimation"]
    if est.get("val_mAP") is not None:
        say(f"estimation model: {est['checkpoint']} (val mAP {est['val_mAP']:.2f})")
    else:
        say(f"estimation model: {est['checkpoint']}")
    say(f"summary: {result.output_dir / 'summary.json'}")
    return 0
