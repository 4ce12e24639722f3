#!/usr/bin/env bash
# The search comparisons behind docs/results/compare/: every optimizer of `compare`'s default list
# (xfernas, nao, random, best-on-source, tapas, and the best-on-source-oracle reference line),
# default options (xfernas/nao: hybrid proposals, a full first fit and warm-started refits every
# 5 evaluations), budget 100 (the summaries also report budgets 10 and 33: no optimizer looks
# at the budget, so the first 33 evaluations of a budget-100 search are the budget-33 search),
# 10 seeds, 200 random architectures per source task (the paper's source knowledge size).
#   bash experiments/run_comparisons.sh              # all targets
#   bash experiments/run_comparisons.sh jigsaw       # one TransNAS target
source "$(dirname "$0")/common.sh"
mkdir -p docs/results/compare
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(class_object jigsaw autoencoder class_scene room_layout segmentsemantic normal
                                     nbg:citeseer nbg:cora nbg:pubmed nbg:cs nbg:photo nbg:computers nbg:physics
                                     nbg:arxiv)
for t in "${targets[@]}"; do
  if [[ $t == nbg:* ]]; then
    name=${t#nbg:}
    $X compare -s runs/nbg.h5 -t "$name" --sources "$(nbg_sources "$name")" --budget 100 --seeds 10 \
      -o "docs/results/compare/nbg-$name" -j 2
  else
    $X compare -s runs/transnas.h5 -t "$t" --budget 100 --seeds 10 -o "docs/results/compare/transnas-$t" -j 2
  fi
done
# the overview across targets (ranks, Friedman, critical-difference diagrams, paired tallies)
$X aggregate docs/results/compare/transnas-* docs/results/compare/nbg-* -o docs/results/compare
