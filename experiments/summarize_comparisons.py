"""One table over all comparisons in docs/results/compare/: regret at budgets 33 and 100
(mean over seeds, metric units) and the winner at each budget.

    python experiments/summarize_comparisons.py > docs/results/compare/overview.md
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1] / "docs" / "results" / "compare"


def main() -> None:
    rows = []
    for d in sorted(p for p in ROOT.iterdir() if (p / "summary.csv").exists()):
        s = pd.read_csv(d / "summary.csv").set_index("optimizer")
        row = {"target": d.name}
        for b in (33, 100):
            col = f"regret@{b}_mean"
            if col not in s:
                continue
            for opt, v in s[col].items():
                row[f"{opt}@{b}"] = v
            best = s[col].min()
            row[f"best@{b}"] = ", ".join(o for o, v in s[col].items() if v <= best + 1e-12)
        rows.append(row)
    table = pd.DataFrame(rows)
    opts = [c.split("@")[0] for c in table.columns if c.endswith("@33") and not c.startswith("best@")]
    print("Regret (table's best minus the best found, metric units; mean over 10 seeds) after 33 "
          "and 100 evaluations.\n")
    head = ["target"] + [f"{o} @33 / @100" for o in opts] + ["best @33", "best @100"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for _, r in table.iterrows():
        cells = [r["target"]] + [f"{r[f'{o}@33']:.3g} / {r[f'{o}@100']:.3g}" for o in opts]
        cells += [r["best@33"], r["best@100"]]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
