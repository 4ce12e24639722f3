#!/usr/bin/env bash
# The surrogate-versus-table comparisons behind docs/results/surrogate/compare/ (NAS-Bench-301's
# test of a surrogate benchmark): the default surrogate (lgb) fitted on a random 20% of each task
# (--holdout 0.8, seed 0), then the same `compare` (every default optimizer, the same 10 seeds,
# budget 100, 200 source architectures per source task) once on the exhaustive table and once on
# the surrogate; experiments/surrogate_compare_summary.py puts them side by side.
#   bash experiments/run_surrogate_compare.sh                  # the default targets
#   bash experiments/run_surrogate_compare.sh jigsaw nbg:cora  # chosen ones
#   KINDS=surrogate bash experiments/run_surrogate_compare.sh  # only the surrogate side
source "$(dirname "$0")/common.sh"
out=docs/results/surrogate/compare
mkdir -p "$out" runs/surrogate
[ -f runs/surrogate/transnas-lgb-20.surr ] || \
  $X surrogate fit -s runs/transnas.h5 --holdout 0.8 --seed 0 -o runs/surrogate/transnas-lgb-20.surr
[ -f runs/surrogate/nbg-lgb-20.surr ] || \
  $X surrogate fit -s runs/nbg.h5 -t "$(echo $NBG_FULL | tr ' ' ,)" --holdout 0.8 --seed 0 \
    -o runs/surrogate/nbg-lgb-20.surr
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(class_object jigsaw class_scene normal room_layout segmentsemantic autoencoder \
                                      nbg:cora nbg:citeseer nbg:arxiv)
for t in "${targets[@]}"; do
  if [[ $t == nbg:* ]]; then
    name=${t#nbg:}
    for kind in ${KINDS:-table surrogate}; do
      src=runs/nbg.h5; [ $kind = surrogate ] && src=runs/surrogate/nbg-lgb-20.surr
      $X compare -s "$src" -t "$name" --sources "$(nbg_sources "$name")" --budget 100 --seeds 10 \
        -o "$out/nbg-$name-$kind" -j 2
    done
  else
    for kind in ${KINDS:-table surrogate}; do
      src=runs/transnas.h5; [ $kind = surrogate ] && src=runs/surrogate/transnas-lgb-20.surr
      $X compare -s "$src" -t "$t" --budget 100 --seeds 10 -o "$out/transnas-$t-$kind" -j 2
    done
  fi
done
python experiments/surrogate_compare_summary.py "$out"
