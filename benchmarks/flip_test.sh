#!/bin/bash
# Flip-test gain of `stdpose predict`, measured on the synthetic `tiny` preset (a SHORT smoke measurement, not the
# bench numbers of docs/estimation.md): train the estimation demo model for 4 epochs, predict the val videos with
# ground-truth boxes with and without --flip-test, and evaluate both. Writes benchmarks/results/flip_test.md.
# usage: benchmarks/flip_test.sh WORK_DIR   (run from the repository root; 1 torch thread)
set -euo pipefail
work=${1:?usage: benchmarks/flip_test.sh WORK_DIR}
repo=$(pwd)
export OMP_NUM_THREADS=1
stdpose="${PYTHON:-python} -m stdpose.cli"
mkdir -p "$work" && cd "$work"
[ -f synthetic/synth_info.json ] || $stdpose synth --preset tiny --seed 0 --out synthetic
$stdpose train "$repo/configs/synthetic_estimation.yaml" --set "data.train={annotations: synthetic/annotations/train, image_root: synthetic}" \
    "data.val={annotations: synthetic/annotations/val, image_root: synthetic}" output_dir=train trainer.max_epochs=4 \
    trainer.enable_progress_bar=false > train.log 2>&1
ckpt=train/checkpoints/last.ckpt
for flip in "" "--flip-test"; do
    name=plain; [ -n "$flip" ] && name=flip
    $stdpose predict --video synthetic/annotations/val --image-root synthetic --gt-boxes synthetic/annotations/val \
        --checkpoint $ckpt --out pred_$name --labeled-only --eval synthetic/annotations/val --no-progress $flip \
        > predict_$name.txt 2>&1
done
{
  echo "# Flip test on the synthetic tiny preset (smoke measurement)"
  echo
  echo "Command: \`PYTHON=.venv/bin/python benchmarks/flip_test.sh WORK\` (estimation demo config, 4 epochs on the tiny"
  echo "preset's 4 train videos, ground-truth boxes on its 2 val videos, labeled frames only; 1 torch thread)."
  echo
  for name in plain flip; do echo "## $name"; echo; echo '```'; grep -A3 "Method" predict_$name.txt | head -4; echo '```'; echo; done
} > "$repo/benchmarks/results/flip_test.md"
cat "$repo/benchmarks/results/flip_test.md"
