#!/usr/bin/env bash
# Redraws every committed Figure 3 (docs/results/ablation*/*/figure3_*.png/.pdf) and the
# predictor overlays of docs/results/ablation-dip/overlay/ from the folders' per-split
# runs.jsonl with `nasbench-xfer figure3` (no refit), in the package's current style.
#   bash experiments/redraw_figure3.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
X="${NASBENCH_XFER:-nasbench-xfer}"
for d in docs/results/ablation*/*/; do
  d=${d%/}
  [ -f "$d/runs.jsonl" ] || continue
  for metric in spearman kendall pearson; do
    $X figure3 "$d" --metric "$metric" -o "$d/figure3_$metric" > /dev/null
  done
done
# the default (hedged) model against the jointly fitted one, per target both were run on
mkdir -p docs/results/ablation-dip/overlay
for d in docs/results/ablation-dip-joint/*/; do
  name=$(basename "$d")
  $X figure3 "docs/results/ablation-dip/$name" "docs/results/ablation-dip-joint/$name" \
     --label "xfernas (default, hedged)" --label "xfernas-joint" --source-sizes 0,50,150 \
     -o "docs/results/ablation-dip/overlay/$name-spearman" > /dev/null
done
echo "redrew Figure 3 of every folder under docs/results/ablation*/ and docs/results/ablation-dip/overlay/"
