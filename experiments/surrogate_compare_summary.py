"""Search comparisons on a surrogate beside the same comparisons on the table it was fitted on.

For every ``<name>-table`` / ``<name>-surrogate`` pair of ``compare`` outputs in DIR (written by
``experiments/run_surrogate_compare.sh``): each optimizer's mean regret at 10 / 33 / 100
evaluations on both, their ranks, and whether the ranking agrees (Kendall's tau between the
two orderings of the optimizers' mean regret, and the winner on each).  Regret on the surrogate
is the surrogate's own best mean over the space minus the mean prediction of the search's
incumbent (the architecture with the best noisy draw so far: the draws are what the optimizers
saw); the column "on the table" looks that incumbent up in the exhaustive table, so it says how
good the architectures found on the surrogate really are.  Over all
targets, per budget: the mean Kendall tau with a permutation test (every target's ranking
replaced by a random one, 100,000 draws: how often is the mean tau as high?) and how many
targets keep the winner, with a binomial test against a random winner (1 in the number of
optimizers).

Writes ``DIR/summary.md``, ``DIR/ranking.csv`` and ``DIR/<name>-regret.png`` (mean regret with
its standard error over seeds; solid: table, dashed: surrogate).

    python experiments/surrogate_compare_summary.py docs/results/surrogate/compare
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from nasbench_xfer.evaluate.search import REGRET_BAND, incumbent_values  # noqa: E402  (band: one s.e.)
from nasbench_xfer.evaluate.stats import paired_wilcoxon  # noqa: E402
from nasbench_xfer.store import Store  # noqa: E402

BUDGETS = (10, 33, 100)


def table_regret(traj: pd.DataFrame, store: Path, target: str) -> pd.DataFrame:
    """Regret on the table of the architectures a surrogate search evaluated (best so far by
    the surrogate's answers, scored by the table's value of that architecture)."""
    with Store.open(store) as st:
        info = st.task_info(target)
        sign = 1.0 if info["higher_is_better"] else -1.0
        specs = traj["spec"].unique().tolist()
        true = dict(zip(specs, st.lookup(target, specs)))
        ev = st.evaluations(target)
        best = sign * (sign * ev.groupby("arch_id")["val_metric"].mean()).max()
    out = traj.sort_values(["optimizer", "seed", "step"]).copy()
    out["true_val"] = out["spec"].map(true)
    # the architecture the search holds as best at each step (its own best by what it saw)
    out["true_regret"] = sign * (best - incumbent_values(out, out["true_val"]))
    return out


def _tau_rows(a: np.ndarray) -> np.ndarray:
    """Kendall's tau (no ties) of each row of ``a`` (draws x m ranks) against 0, 1, .., m-1."""
    m = a.shape[1]
    i, j = np.triu_indices(m, 1)
    return np.sign(a[:, j] - a[:, i]).sum(axis=1) / (m * (m - 1) / 2)


def pooled_agreement(rows: pd.DataFrame, draws: int = 100_000, seed: int = 0) -> list[str]:
    """Markdown rows: per budget, the mean tau over targets with its permutation p-value and
    the number of targets with the same winner with its binomial p-value."""
    rng = np.random.default_rng(seed)
    out = []
    for b, g in rows.groupby("budget"):
        null = np.zeros(draws)
        for m in g["optimizers"]:
            null += _tau_rows(np.argsort(rng.random((draws, int(m))), axis=1))
        null /= len(g)
        mean_tau = float(g["kendall_tau"].mean())
        p_tau = float((np.sum(null >= mean_tau - 1e-12) + 1) / (draws + 1))
        same = int(g["same_winner"].sum())
        p_win = float(stats.binomtest(same, len(g), 1.0 / float(g["optimizers"].mean()),
                                      alternative="greater").pvalue)
        out.append(f"| {b} | {len(g)} | {mean_tau:.2f} (min {g['kendall_tau'].min():.2f}) | {p_tau:.2g} | "
                   f"{same} of {len(g)} | {p_win:.2g} |")
    return out


def rank_shift(ranks: pd.DataFrame) -> list[str]:
    """Markdown: each optimizer's mean rank on the table and on the surrogate over every target
    and budget, with a paired Wilcoxon test of the difference (does the surrogate flatter it?)."""
    out = ["Each optimizer's mean rank (1 = lowest regret) over every target and budget, on the table and on "
           "the surrogate, with the Wilcoxon signed-rank test of the paired differences (two-sided; a "
           "target's three budgets are not independent cells, so read it as a guide): an optimizer the "
           "surrogate flatters ranks better there.", "",
           "| optimizer | cells | mean rank on table | mean rank on surrogate | p (Wilcoxon) |",
           "|---|---|---|---|---|"]
    for o, g in ranks.groupby("optimizer"):
        p = paired_wilcoxon(g["rank_surrogate"].to_numpy(), g["rank_table"].to_numpy()).pvalue
        out.append(f"| {o} | {len(g)} | {g['rank_table'].mean():.2f} | {g['rank_surrogate'].mean():.2f} | {p:.2g} |")
    return out


def regret_at(traj: pd.DataFrame, col: str, budget: int) -> pd.Series:
    at = traj[traj["step"] <= budget].sort_values("step").groupby(["optimizer", "seed"])[col].last()
    return at.groupby("optimizer").mean()


def main(argv=None) -> int:
    root = Path((argv or sys.argv[1:] or ["docs/results/surrogate/compare"])[0])
    names = sorted(p.name[:-len("-table")] for p in root.glob("*-table")
                   if (root / f"{p.name[:-len('-table')]}-surrogate").is_dir())
    ranks: list[dict] = []
    rows, lines = [], ["# Search comparisons: surrogate beside table", "",
                       "Generated by `python experiments/surrogate_compare_summary.py` (see its module doc) from the "
                       "`compare` outputs beside it (`experiments/run_surrogate_compare.sh`): the default surrogate "
                       "(`lgb`) fitted on a random 20% of each task, the same optimizers, seeds (10), budget (100) "
                       "and source-knowledge size as on the table. Mean regret over seeds; rank 1 = lowest.", ""]
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns
    for name in names:
        spec = json.loads((root / f"{name}-table" / "spec.json").read_text())
        target = spec["target"]
        tab = pd.read_parquet(root / f"{name}-table" / "trajectories.parquet")
        sur = pd.read_parquet(root / f"{name}-surrogate" / "trajectories.parquet")
        sur = table_regret(sur, REPO / spec["store"], target)
        lines += [f"## {name} (target {target})", "",
                  "| budget | optimizer | regret on table | rank | regret on surrogate | rank | "
                  "surrogate search's choice, on the table |", "|---|---|---|---|---|---|---|"]
        for b in BUDGETS:
            rt, rs, rtrue = regret_at(tab, "regret", b), regret_at(sur, "regret", b), regret_at(sur, "true_regret", b)
            opts = sorted(rt.index)
            kt, ks = rt.loc[opts].rank(method="min"), rs.loc[opts].rank(method="min")
            tau, p = stats.kendalltau(rt.loc[opts], rs.loc[opts])
            for o in opts:
                ranks.append({"name": name, "budget": b, "optimizer": o, "rank_table": kt[o], "rank_surrogate": ks[o]})
            for o in sorted(opts, key=lambda o: rt[o]):
                lines.append(f"| {b} | {o} | {rt[o]:.3f} | {int(kt[o])} | {rs[o]:.3f} | {int(ks[o])} "
                             f"| {rtrue[o]:.3f} |")
            best_t, best_s = rt.idxmin(), rs.idxmin()
            rows.append({"name": name, "target": target, "budget": b, "optimizers": len(opts), "kendall_tau": tau,
                         "p": p, "best_on_table": best_t, "best_on_surrogate": best_s,
                         "same_winner": best_t == best_s})
            lines.append(f"| {b} | **agreement** | Kendall tau {tau:.2f} (p = {p:.2f}) | | winner: "
                         f"{best_s} | | table's winner: {best_t} |")
        lines.append("")
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        long = pd.concat([tab[["optimizer", "seed", "step", "regret"]].assign(on="table"),
                          sur[["optimizer", "seed", "step", "regret"]].assign(on="surrogate")], ignore_index=True)
        n = long.groupby(["optimizer", "on"])["seed"].nunique()
        sns.lineplot(data=long, x="step", y="regret", hue="optimizer", hue_order=sorted(long["optimizer"].unique()),
                     style="on", style_order=["table", "surrogate"], estimator="mean", errorbar=REGRET_BAND,
                     drawstyle="steps-post", err_kws={"step": "post", "alpha": 0.12, "linewidth": 0}, ax=ax)
        ax.set_yscale("symlog", linthresh=1e-2, linscale=0.3)
        ax.set_ylim(bottom=0)
        ax.set_xscale("log")
        ax.set_xlabel("evaluations (log scale)")
        ax.set_ylabel("regret (log scale above 0.01)")
        ax.set_title(f"{name}: table (solid) vs 20% surrogate (dashed)\nline: mean over "
                     f"{'/'.join(str(k) for k in sorted(set(n)))} seeds; band: ± 1 standard error (seaborn)",
                     fontsize=9)
        ax.legend(fontsize=6, ncol=2)
        fig.tight_layout()
        fig.savefig(root / f"{name}-regret.png", dpi=130)
        plt.close(fig)
    ranking = pd.DataFrame(rows)
    ranking.to_csv(root / "ranking.csv", index=False)
    pooled = ["## Over all targets", "",
              "Per budget: the mean Kendall tau between the table's and the surrogate's ranking of the "
              "optimizers, with a permutation test (each target's surrogate ranking replaced by a random one; "
              "100,000 draws; one-sided), and the targets whose winner is the same on both, with a binomial "
              "test against a random winner (probability 1 / number of optimizers; one-sided).", "",
              "| budget | targets | mean Kendall tau | p (permutation) | same winner | p (binomial) |",
              "|---|---|---|---|---|---|", *pooled_agreement(ranking), "",
              *rank_shift(pd.DataFrame(ranks)), ""]
    lines[4:4] = pooled
    (root / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
