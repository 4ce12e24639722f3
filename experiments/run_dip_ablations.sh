#!/usr/bin/env bash
# The reduced ablations behind docs/results/ablation-dip/ (issue 11: does the default transfer
# predictor lose the sources' knowledge when the first target evaluations arrive?): source sizes
# 0,50,100,150 per task, target sizes 0,10,25, SPLITS splits (default 5), 50 held out, one
# process per target (so the hedged predictor's memoised member fits are shared by its cells).
# Each run resumes if interrupted, and a larger SPLITS extends a folder by the new splits only
# (split k is drawn from k alone): the committed folders were run with 5 splits, and those whose
# overview rows say 10 were then extended with SPLITS=10.  PREDICTOR (default xfernas) and OUT
# (default docs/results/ablation-dip) pick the model and the folder;
# docs/results/ablation-dip-joint/ was made with PREDICTOR=xfernas-joint (then the default).
#   SPLITS=10 bash experiments/run_dip_ablations.sh nbg:arxiv   # extend one folder to 10 splits
#   bash experiments/run_dip_ablations.sh            # the targets below
#   bash experiments/run_dip_ablations.sh jigsaw     # one TransNAS target
source "$(dirname "$0")/common.sh"
PREDICTOR="${PREDICTOR:-xfernas}"
OUT="${OUT:-docs/results/ablation-dip}"
SPLITS="${SPLITS:-5}"
G=(--source-sizes 0,50,100,150 --target-sizes 0,10,25 --splits "$SPLITS" --predictor "$PREDICTOR" -j 1)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(jigsaw nbg:cora class_object autoencoder nbg:citeseer class_scene room_layout
                                     segmentsemantic normal nbg:pubmed nbg:cs nbg:photo nbg:computers nbg:physics
                                     nbg:arxiv)
for t in "${targets[@]}"; do
  if [[ $t == nbg:* ]]; then
    name=${t#nbg:}
    $X ablation -s runs/nbg.h5 -t "$name" --sources "$(nbg_sources "$name")" "${G[@]}" -o "$OUT/nbg-$name"
  else
    $X ablation -s runs/transnas.h5 -t "$t" "${G[@]}" -o "$OUT/transnas-$t"
  fi
done
