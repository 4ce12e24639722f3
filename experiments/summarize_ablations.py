"""One table over all ablations in docs/results/ablation/ (the paper's Figure 3 per target):
does zero-target correlation rise with source size, does transfer ever hurt, where do the
curves meet?

    python experiments/summarize_ablations.py > docs/results/ablation/overview.md

All on Pearson correlation over the held-out architectures (the paper's metric).  Splits
are shared by every setting, so transfer is judged per split (paired): for a source size
s > 0 and target size m, the difference d = r(s, m) - r(0, m) over the 10 splits; "hurts"
means mean(d) < 0 by more than two standard errors, "helps" more than two standard errors
above 0.  The curves "meet" at the smallest target size from which the largest source
size no longer helps significantly.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1] / "docs" / "results" / "ablation"


def load_runs(path: Path) -> pd.DataFrame:
    lines = path.read_text().splitlines()[1:]
    runs = pd.DataFrame([json.loads(l) for l in lines if l.strip()])
    return runs[runs["status"] == "ok"]


def paired(runs: pd.DataFrame, s: int, m: int) -> tuple[float, float]:
    """Mean and standard error over splits of r(s, m) - r(0, m)."""
    a = runs[(runs.source_size == s) & (runs.target_size == m)].set_index("split")["pearson"]
    b = runs[(runs.source_size == 0) & (runs.target_size == m)].set_index("split")["pearson"]
    d = (a - b).dropna()
    if len(d) < 2:
        return float("nan"), float("nan")
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))


def summarize(d: Path) -> dict:
    runs = load_runs(d / "runs.jsonl")
    spec = json.loads((d / "runs.jsonl").read_text().splitlines()[0])["spec"]
    srcs = [s for s in spec["source_sizes"] if s > 0]
    tgts = [m for m in spec["target_sizes"] if m > 0]
    mean = runs.groupby(["source_size", "target_size"])["pearson"].mean()
    row = {"ablation": d.name, "fits": len(runs)}
    zero = [mean.get((s, 0), np.nan) for s in srcs]
    row["zero-target r (" + "/".join(map(str, srcs)) + " per source)"] = " / ".join(f"{v:.3f}" for v in zero)
    row["rises"] = "yes" if all(b > a for a, b in zip(zero, zero[1:])) else "no"
    row[f"no transfer r @{tgts[0]} / @{tgts[-1]}"] = (f"{mean.get((0, tgts[0]), np.nan):.3f} / "
                                                    f"{mean.get((0, tgts[-1]), np.nan):.3f}")
    hurts, helps = [], 0
    for s in srcs:
        for m in tgts:
            mu, se = paired(runs, s, m)
            if mu < -2 * se:
                hurts.append(f"{s}@{m} ({mu:+.3f})")
            elif mu > 2 * se:
                helps += 1
    row["transfer helps (cells)"] = f"{helps} of {len(srcs) * len(tgts)}"
    row["transfer hurts"] = ", ".join(hurts) if hurts else "never"
    big = srcs[-1]
    meet = next((m for k, m in enumerate(tgts)
                 if all(not (paired(runs, big, m2)[0] > 2 * paired(runs, big, m2)[1]) for m2 in tgts[k:])), None)
    row[f"curves meet (source {big} vs none)"] = f"at {meet}" if meet is not None else f"not by {tgts[-1]}"
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
