#!/usr/bin/env bash
# Which of XferNAS's search defaults buys its advantage over the paper's configuration
# (docs/results/paper-config/)?  Each run reverts ONE default of the package's XferNAS to the
# paper's / NAO's choice and keeps the others, on TransNAS-Bench-101 targets, budget 33, the 10
# seeds of docs/results/compare-rank/ (same source samples, so the searches pair by seed with
# its default XferNAS); `default` re-runs the defaults as a reproduction check.
# experiments/search_defaults_summary.py tests each reversion against the defaults.
#   bash experiments/run_search_defaults.sh                      # jigsaw class_object segmentsemantic
#   bash experiments/run_search_defaults.sh normal room_layout   # chosen targets
source "$(dirname "$0")/common.sh"
out=${OUT:-docs/results/search-defaults}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(jigsaw class_object segmentsemantic)
declare -A variants=(
  [default]=""
  [proposal-ascent]="proposal=ascent"
  [proposal-nao-one-step]="proposal=ascent ascent_steps=1 ascent_filter=False"
  [scores-raw]="scores=raw"
  [head-paper]="head=paper residual_shrinkage=0"
  [no-shrinkage]="residual_shrinkage=0"
  [no-hedge]="hedge=False"
  [cold-refits]="warm_start=False"
)
for t in "${targets[@]}"; do
  for v in default proposal-ascent proposal-nao-one-step scores-raw head-paper no-shrinkage no-hedge cold-refits; do
    opts=()
    for kv in ${variants[$v]}; do opts+=(--option "xfernas.$kv"); done
    [ -f "$out/transnas-$t/$v/trajectories.parquet" ] && continue
    $X compare -s runs/transnas.h5 -t "$t" -O xfernas --budget 33 --seeds 10 "${opts[@]}" \
      -o "$out/transnas-$t/$v" -j 2
  done
done
