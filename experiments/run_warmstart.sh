#!/usr/bin/env bash
# The warm-start check behind docs/results/warmstart/ (issue 11, goal 2): XferNAS against NAO and
# random search after 10 evaluations, with 30 seeds instead of the full comparison's 10.  With 10
# seeds and Holm's correction over the full comparison's 15 tests, a Wilcoxon test can only call
# a win when XferNAS is better on all 10 seeds (smallest two-sided p = 2/1024, times 15 = 0.029);
# this run tests the one hypothesis of the warm start (budget 10, two opponents, Holm over those 2
# tests) with the power to see it.  Same defaults as experiments/run_comparisons.sh: no optimizer
# looks at the budget, so seeds 0-9 here are exactly the first 10 evaluations of the committed
# budget-100 searches (experiments/warmstart_summary.py checks it).
#   bash experiments/run_warmstart.sh              # all seven TransNAS-Bench-101 targets
#   bash experiments/run_warmstart.sh jigsaw       # one target
#   OUT=docs/results/warmstart-rank EXTRA="--option xfernas.scores=rank" bash experiments/run_warmstart.sh
#                                                  # the same with other options, into another folder
source "$(dirname "$0")/common.sh"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(class_object jigsaw autoencoder class_scene room_layout segmentsemantic normal)
for t in "${targets[@]}"; do
  # shellcheck disable=SC2086  # EXTRA holds several words
  $X compare -s runs/transnas.h5 -t "$t" -O xfernas,nao,random --budget 10 --seeds 30 ${EXTRA:-} \
    -o "${OUT:-docs/results/warmstart}/transnas-$t" -j "${JOBS:-2}"
done
$X aggregate "${OUT:-docs/results/warmstart}"/transnas-* -o "${OUT:-docs/results/warmstart}"
