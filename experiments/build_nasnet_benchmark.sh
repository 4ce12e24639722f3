#!/usr/bin/env bash
# Build the package's own NASNet-space benchmark on a GPU, resumably.
#
#   experiments/build_nasnet_benchmark.sh DATA_ROOT OUT_DIR [SECONDS]
#
# Four real image tasks (CIFAR-10, Fashion-MNIST, MNIST, the 4-class Quickdraw set),
# the same 400 architectures on each (`--sample 400 --arch-seed 0`) under the
# `nb-proxy` protocol, the first 20 of them (5%) again with a second seed (noise),
# and the first 24 under `nb-proxy-3x` (3x longer: the proxy's fidelity).  One store
# per task in OUT_DIR (each append is atomic; a rerun skips what is stored), joined
# at the end with `merge` into OUT_DIR/nasnet-bench.h5.
#
# The 400 architectures are trained in 8 rounds of 50 (`--shard r/8`), each round on
# every task before the next begins, so a build cut short by its budget still holds
# the same architectures on every task.  TASKS (default: all four) limits a call to
# the tasks whose data it has (a GPU call carries at most 64 MiB of files).
#
# SECONDS bounds the whole call: no training starts after it (those in flight finish),
# so the script fits a limited GPU session; run it again to resume where it stopped.
# Trainings run K at a time on one GPU (K=16 by default) with the whole step captured
# as a CUDA graph; set CUDA_GRAPHS=--no-cuda-graphs to train eager.
# From a source tree: NASBENCH_XFER="env PYTHONPATH=. python3 -m nasbench_xfer".
set -euo pipefail
DATA="${1:?usage: $0 DATA_ROOT OUT_DIR [SECONDS]}"
OUT="${2:?usage: $0 DATA_ROOT OUT_DIR [SECONDS]}"
BUDGET="${3:-}"
X="${NASBENCH_XFER:-nasbench-xfer}"
K="${K:-16}"
GRAPHS="${CUDA_GRAPHS:---cuda-graphs}"
read -r -a TASK_LIST <<< "${TASKS:-cifar10 fashion_mnist mnist quickdraw}"
ROUNDS=8
mkdir -p "$OUT"
START=$(date +%s)

left() {  # seconds of the budget left (a large number without one)
  if [ -z "$BUDGET" ]; then echo 100000000; else echo $(( BUDGET - ($(date +%s) - START) )); fi
}

train() {  # DATASET SAMPLE SEEDS PROTOCOL [SHARD]
  local d="$1" n="$2" seeds="$3" proto="$4" shard="${5:-0/1}" extra=()
  [ "$d" = quickdraw ] && extra=(--num-classes 4)
  local t; t=$(left)
  if [ "$t" -le 0 ]; then echo "budget spent: stopping before $d/$proto shard $shard"; exit 0; fi
  $X train "$OUT/$d.h5" -d "$d" --data "$DATA" "${extra[@]}" --sample "$n" --arch-seed 0 \
     --seeds "$seeds" -p "$proto" --shard "$shard" -k "$K" $GRAPHS --time-limit "$t"
}

for r in $(seq 0 $((ROUNDS - 1))); do
  for d in "${TASK_LIST[@]}"; do train "$d" 400 0 nb-proxy "$r/$ROUNDS"; done
done
for d in "${TASK_LIST[@]}"; do train "$d" 20 1 nb-proxy; done
for d in "${TASK_LIST[@]}"; do train "$d" 24 0 nb-proxy-3x; done
if [ "$(left)" -gt 0 ] && [ "${#TASK_LIST[@]}" -eq 4 ]; then
  $X merge "$OUT"/cifar10.h5 "$OUT"/fashion_mnist.h5 "$OUT"/mnist.h5 "$OUT"/quickdraw.h5 \
     -o "$OUT/nasnet-bench.h5" --overwrite
  $X validate "$OUT/nasnet-bench.h5"
fi
