#!/usr/bin/env bash
# The search comparisons behind docs/results/compare/: every optimizer, budget 100 (the
# summaries also report budgets 10 and 33: no optimizer looks at the budget, so the first 33
# evaluations of a budget-100 search are the budget-33 search), 10 seeds, 200 random
# architectures per source task (the paper's source knowledge size).
# Predictor fits inside the searches use 20 epochs / at least 300 steps and a refit every
# 10 target evaluations, the same for xfernas and nao, to keep 900 searches within CPU hours.
#   bash experiments/run_comparisons.sh              # all targets
#   bash experiments/run_comparisons.sh jigsaw       # one TransNAS target
source "$(dirname "$0")/common.sh"
mkdir -p docs/results/compare
FIT=(--option xfernas.refit_every=10 --option xfernas.epochs=20 --option xfernas.min_steps=300
     --option nao.refit_every=10 --option nao.epochs=20 --option nao.min_steps=300)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(class_scene class_object jigsaw room_layout segmentsemantic normal autoencoder nbg:cora nbg:citeseer)
for t in "${targets[@]}"; do
  if [[ $t == nbg:* ]]; then
    name=${t#nbg:}
    $X compare -s runs/nbg.h5 -t "$name" --sources "$(nbg_sources "$name")" --budget 100 --seeds 10 "${FIT[@]}" \
      -o "docs/results/compare/nbg-$name" -j 2
  else
    $X compare -s runs/transnas.h5 -t "$t" --budget 100 --seeds 10 "${FIT[@]}" \
      -o "docs/results/compare/transnas-$t" -j 2
  fi
done
