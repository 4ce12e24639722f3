"""One table over all ablations in docs/results/ablation/ (the paper's Figure 3 per target):
does zero-target correlation rise with source size, does transfer ever hurt, where do the
curves meet?

    python experiments/summarize_ablations.py > docs/results/ablation/overview.md

All on Pearson correlation over the held-out architectures (the paper's metric).  Splits
are shared by every setting, so transfer is judged per split (paired): for a source size
s > 0 and target size m, the difference d = r(s, m) - r(0, m) over the splits; a two-sided
paired t-test at the 5% level calls it "helps" (mean(d) > 0) or "hurts" (mean(d) < 0).  No
correction for the 18 cells of an ablation: about one spurious call per ablation is expected
by chance, so a single isolated "hurts" is weak evidence.  The curves "meet" at the smallest
target size from which the largest source size no longer helps significantly (at that size
and every larger one); "never apart" if it never helps.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parents[1] / "docs" / "results" / "ablation"


def load_runs(path: Path) -> pd.DataFrame:
    lines = path.read_text().splitlines()[1:]
    runs = pd.DataFrame([json.loads(l) for l in lines if l.strip()])
    return runs[runs["status"] == "ok"]


def paired(runs: pd.DataFrame, s: int, m: int) -> tuple[float, str]:
    """Mean over splits of r(s, m) - r(0, m) and the paired t-test's call: helps/hurts/tie/unknown."""
    a = runs[(runs.source_size == s) & (runs.target_size == m)].set_index("split")["pearson"]
    b = runs[(runs.source_size == 0) & (runs.target_size == m)].set_index("split")["pearson"]
    d = (a - b).dropna()
    if len(d) < 2:
        return float("nan"), "unknown"
    p = stats.ttest_1samp(d, 0.0).pvalue
    call = "tie" if not p < 0.05 else ("helps" if d.mean() > 0 else "hurts")
    return float(d.mean()), call


def summarize(d: Path) -> dict:
    runs = load_runs(d / "runs.jsonl")
    spec = json.loads((d / "runs.jsonl").read_text().splitlines()[0])["spec"]
    srcs = sorted(s for s in spec["source_sizes"] if s > 0)
    tgts = sorted(m for m in spec["target_sizes"] if m > 0)
    mean = runs.groupby(["source_size", "target_size"])["pearson"].mean()
    row = {"ablation": d.name, "fits": len(runs)}
    zero = [mean.get((s, 0), np.nan) for s in srcs]
    row["zero-target r (" + "/".join(map(str, srcs)) + " per source)"] = " / ".join(f"{v:.3f}" for v in zero)
    row["rises"] = "yes" if all(b > a for a, b in zip(zero, zero[1:])) else "no"
    row[f"no transfer r @{tgts[0]} / @{tgts[-1]}"] = (f"{mean.get((0, tgts[0]), np.nan):.3f} / "
                                                    f"{mean.get((0, tgts[-1]), np.nan):.3f}")
    hurts, helps, unknown = [], 0, 0
    for s in srcs:
        for m in tgts:
            mu, call = paired(runs, s, m)
            if call == "hurts":
                hurts.append(f"{s}@{m} ({mu:+.3f})")
            helps += call == "helps"
            unknown += call == "unknown"
    row["transfer helps (cells)"] = f"{helps} of {len(srcs) * len(tgts)}" + (f" ({unknown} missing)" if unknown else "")
    row["transfer hurts (source@target)"] = ", ".join(hurts) if hurts else "never"
    big = srcs[-1]
    calls = [paired(runs, big, m)[1] for m in tgts]
    if "helps" not in calls:
        meet = "never apart"
    elif calls[-1] in ("helps", "unknown"):
        meet = f"not by {tgts[-1]}"
    else:
        last_help = max(k for k, c in enumerate(calls) if c == "helps")
        meet = f"at {tgts[last_help + 1]}"
    row[f"curves meet (source {big} vs none)"] = meet
    return row


def main() -> None:
    rows = [summarize(d) for d in sorted(ROOT.iterdir()) if (d / "table.csv").exists()]
    print("# Ablations: overview\n")
    print(__doc__.split("\n\n")[0] + "\n")
    print(__doc__.split("\n\n")[2].replace("\n", " ") + "\n")
    table = pd.DataFrame(rows)
    print("| " + " | ".join(table.columns) + " |")
    print("|" + "---|" * len(table.columns))
    for _, r in table.iterrows():
        print("| " + " | ".join(str(v) for v in r) + " |")


if __name__ == "__main__":
    main()
