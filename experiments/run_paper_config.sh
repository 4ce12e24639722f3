#!/usr/bin/env bash
# XferNAS and NAO configured as close to the paper and NAO's published code as the options go
# (README, "Paper fidelity"), on TransNAS-Bench-101 targets, budget 33, the 10 seeds of
# docs/results/compare-rank/ (whose first 33 evaluations pair with these by seed: the same
# source samples); experiments/paper_config_summary.py compares them.
#   bash experiments/run_paper_config.sh                      # jigsaw class_object segmentsemantic
#   bash experiments/run_paper_config.sh normal room_layout   # chosen targets
source "$(dirname "$0")/common.sh"
out=${OUT:-docs/results/paper-config}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(jigsaw class_object segmentsemantic)
paper=(--option xfernas.head=paper --option xfernas.residual_shrinkage=0 --option xfernas.scores=raw
       --option xfernas.hedge=False --option xfernas.warm_start=False --option xfernas.proposal=ascent
       --option xfernas.ascent_steps=1 --option xfernas.ascent_filter=False
       --option nao.proposal=ascent --option nao.warm_start=False --option nao.ascent_steps=1
       --option nao.ascent_filter=False)
for t in "${targets[@]}"; do
  $X compare -s runs/transnas.h5 -t "$t" -O xfernas,nao --budget 33 --seeds 10 "${paper[@]}" \
    -o "$out/transnas-$t" -j 2
done
