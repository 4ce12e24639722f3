#!/usr/bin/env bash
# The ablations behind docs/results/ablation/ (paper defaults: source sizes 0,50,100,150 per task,
# target sizes 0..150, 10 splits, 50 held out, XferNAS predictor). Each run resumes if interrupted.
#   bash experiments/run_ablations.sh            # all targets
#   bash experiments/run_ablations.sh jigsaw     # one TransNAS target
source "$(dirname "$0")/common.sh"
mkdir -p docs/results/ablation
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(class_scene jigsaw room_layout segmentsemantic normal autoencoder class_object nbg:cora nbg:citeseer)
for t in "${targets[@]}"; do
  if [[ $t == nbg:* ]]; then
    name=${t#nbg:}
    $X ablation -s runs/nbg.h5 -t "$name" --sources "$(nbg_sources "$name")" -o "docs/results/ablation/nbg-$name" -j 2
  else
    $X ablation -s runs/transnas.h5 -t "$t" -o "docs/results/ablation/transnas-$t" -j 2
  fi
done
