"""Tables over all comparisons in docs/results/compare/: regret at budgets 10, 33 and 100 (mean
over seeds, metric units) and where XferNAS wins, ties or loses against every other optimizer.

    python experiments/summarize_comparisons.py > docs/results/compare/overview.md

Win/tie/loss: a two-sided Mann-Whitney U test on the per-seed regrets of XferNAS and the other
optimizer at that budget (10 seeds each); p < 0.05 with XferNAS's regrets ranked lower (U below
n1*n2/2) is a win, p < 0.05 with them ranked higher a loss, anything else a tie.  No correction
for the many comparisons: at p < 0.05 about one in twenty ties would be called either way by
chance.  With 10 seeds per side this only calls large,
consistent differences; a tie means "not distinguishable with 10 seeds", not "equal".
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from scipy.stats import mannwhitneyu

ROOT = Path(__file__).resolve().parents[1] / "docs" / "results" / "compare"
BUDGETS = (10, 33, 100)
ALPHA = 0.05
FOCUS = "xfernas"


def regrets_at(traj: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Per (optimizer, seed): the best-so-far regret after ``budget`` evaluations."""
    upto = traj[traj["step"] <= budget].sort_values("step")
    return upto.groupby(["optimizer", "seed"], sort=False)["regret"].last().reset_index()


def verdict(mine: pd.Series, theirs: pd.Series) -> str:
    if len(mine) < 2 or len(theirs) < 2 or (mine.nunique() == 1 and theirs.nunique() == 1
                                            and mine.iloc[0] == theirs.iloc[0]):
        return "tie"
    res = mannwhitneyu(mine, theirs, alternative="two-sided")
    if res.pvalue >= ALPHA:
        return "tie"
    return "win" if res.statistic < len(mine) * len(theirs) / 2 else "loss"


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
        m_row, v_row = {"target": d.name}, {"target": d.name}
        for b in BUDGETS:
            r = regrets_at(traj, b)
            means = r.groupby("optimizer")["regret"].mean()
            for o in opts:
                m_row[(o, b)] = means.get(o, float("nan"))
            best = means.min()
            m_row[("best", b)] = ", ".join(o for o in opts if means.get(o, float("inf")) <= best + 1e-12)
            if FOCUS not in opts:
                continue
            mine = r[r["optimizer"] == FOCUS]["regret"]
            for o in opts:
                if o == FOCUS:
                    continue
                v = verdict(mine, r[r["optimizer"] == o]["regret"])
                v_row[(o, b)] = v
                tally.setdefault((o, b), {"win": 0, "tie": 0, "loss": 0})[v] += 1
        mean_rows.append(m_row)
        verdict_rows.append(v_row)
    opts = [o for o in dict.fromkeys(k[0] for r in mean_rows for k in r if isinstance(k, tuple)) if o != "best"]
    others = [o for o in opts if o != FOCUS]

    print("# Search comparisons: overview\n")
    print(__doc__.split("\n\n")[0].replace("Tables over", "Over") + "\n")
    print("## Regret\n")
    print("Table's best minus the best validation metric found, metric units, mean over the seeds, "
          "after 10 / 33 / 100 evaluations.\n")
    head = ["target"] + [f"{o} @10 / @33 / @100" for o in opts] + ["lowest @33", "lowest @100"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in mean_rows:
        cells = [r["target"]] + [" / ".join(f"{r.get((o, b), float('nan')):.3g}" for b in BUDGETS) for o in opts]
        cells += [r[("best", 33)], r[("best", 100)]]
        print("| " + " | ".join(cells) + " |")

    print(f"\n## {FOCUS} against each optimizer\n")
    print(__doc__.split("\n\n")[2].replace("\n", " ") + "\n")
    head = ["target"] + [f"vs {o} @10 / @33 / @100" for o in others]
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
