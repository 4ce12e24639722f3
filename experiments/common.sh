# Shared set-up of the experiment scripts (sourced, not run): the CLI to call, the imported
# stores, and the NAS-Bench-Graph task list.  $X is the CLI (override with $NASBENCH_XFER,
# e.g. NASBENCH_XFER="env PYTHONPATH=. python -m nasbench_xfer" from a source tree).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
X="${NASBENCH_XFER:-nasbench-xfer}"
mkdir -p runs
[ -f runs/transnas.h5 ] || $X import transnas --out runs/transnas.h5
[ -f runs/nbg.h5 ] || $X import nas-bench-graph --out runs/nbg.h5
NBG_FULL="cora citeseer pubmed cs physics photo computers arxiv"

# nbg_sources NAME: every NAS-Bench-Graph task but NAME, comma-separated
nbg_sources() { echo $NBG_FULL | tr ' ' '\n' | grep -vx "$1" | paste -sd,; }
