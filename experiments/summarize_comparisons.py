"""Tables over all comparisons in docs/results/compare/: regret at budgets 10, 33 and 100 (mean
over seeds, metric units) and where XferNAS wins, ties or loses against every other optimizer.

    python experiments/summarize_comparisons.py > docs/results/compare/overview.md

Win/tie/loss: a two-sided Wilcoxon signed-rank test on the per-seed regrets of XferNAS and the
other optimizer at that budget, paired by seed (a seed draws the same source knowledge for every
optimizer), with Holm's correction over each target's table (every opponent x budget); Holm
p < 0.05 with XferNAS's regrets lower (median difference, mean where the median is 0) is a win,
higher a loss, anything else a tie.  With 10 seeds the smallest two-sided Wilcoxon p is 0.002,
so after Holm over 15 tests only near-unanimous differences are called; a tie means "not
distinguishable with these seeds", not "equal".  best-on-source-oracle is a reference line
(it knows the target's table), not a competitor.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from nasbench_xfer.evaluate.search import paired_tests, regrets_at

ROOT = Path(__file__).resolve().parents[1] / "docs" / "results" / "compare"
BUDGETS = (10, 33, 100)
FOCUS = "xfernas"


def load(d: Path) -> pd.DataFrame:
    pq = d / "trajectories.parquet"
    return pd.read_parquet(pq) if pq.exists() else pd.read_csv(d / "trajectories.csv")


def main() -> None:
    dirs = sorted(p for p in ROOT.iterdir() if (p / "trajectories.parquet").exists()
                  or (p / "trajectories.csv").exists())
    mean_rows, verdict_rows = [], []
    tally: dict[tuple[str, int], dict[str, int]] = {}
    for d in dirs:
        traj = load(d)
        opts = list(dict.fromkeys(traj["optimizer"]))
        seeds = traj.groupby("optimizer")["seed"].nunique()
        m_row = {"target": d.name, "seeds": "/".join(str(v) for v in sorted(set(seeds)))}
        v_row = {"target": d.name}
        for b in BUDGETS:
            r = regrets_at(traj, b)
            means = r.groupby("optimizer")["regret"].mean()
            for o in opts:
                m_row[(o, b)] = means.get(o, float("nan"))
            real = [o for o in opts if "oracle" not in o]
            best = min(means.get(o, float("inf")) for o in real)
            m_row[("best", b)] = ", ".join(o for o in real if means.get(o, float("inf")) <= best + 1e-12)
        if FOCUS in opts:
            tests = paired_tests(traj, FOCUS, [b for b in BUDGETS if b <= traj["step"].max()])
            for _, t in tests.iterrows():
                v_row[(t.opponent, t.budget)] = f"{t.call} ({t.p_holm:.2g})"
                tally.setdefault((t.opponent, t.budget), {"win": 0, "tie": 0, "loss": 0})[t.call] += 1
        mean_rows.append(m_row)
        verdict_rows.append(v_row)
    opts = [o for o in dict.fromkeys(k[0] for r in mean_rows for k in r if isinstance(k, tuple)) if o != "best"]
    others = [o for o in opts if o != FOCUS]

    print("# Search comparisons: overview\n")
    print(__doc__.split("\n\n")[0].replace("Tables over", "Over") + "\n")
    print("## Regret\n")
    print("Table's best minus the best validation metric found, metric units, mean over the seeds, "
          "after 10 / 33 / 100 evaluations (TransNAS-Bench-101 has no test metric; these are "
          "validation regrets).\n")
    head = ["target", "seeds"] + [f"{o} @10 / @33 / @100" for o in opts] + ["lowest @10", "lowest @33", "lowest @100"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in mean_rows:
        cells = [r["target"], r["seeds"]]
        cells += [" / ".join(f"{r.get((o, b), float('nan')):.3g}" for b in BUDGETS) for o in opts]
        cells += [r[("best", b)] for b in BUDGETS]
        print("| " + " | ".join(cells) + " |")

    print(f"\n## {FOCUS} against each optimizer (paired Wilcoxon, Holm per target)\n")
    print(" ".join(__doc__.split("\n\n")[2].split()) + "\n")
    head = ["target"] + [f"vs {o} @10 / @33 / @100 (Holm p)" for o in others]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in verdict_rows:
        print("| " + " | ".join([r["target"]] + [" / ".join(r.get((o, b), "-") for b in BUDGETS)
                                                 for o in others]) + " |")
    print(f"\nTally over {len(verdict_rows)} targets (win / tie / loss for {FOCUS}):\n")
    print("| opponent | " + " | ".join(f"@{b}" for b in BUDGETS) + " |")
    print("|---|" + "---|" * len(BUDGETS))
    for o in others:
        cells = [" / ".join(str(tally.get((o, b), {}).get(k, 0)) for k in ("win", "tie", "loss")) for b in BUDGETS]
        print(f"| {o} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
