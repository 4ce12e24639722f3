"""Tables and figures across comparisons: `nasbench-xfer aggregate DIR...`.

Each DIR is a `compare` output folder (its ``trajectories.parquet`` or ``.csv``); the folder
name labels the target.  :func:`aggregate` returns, for budgets 10/33/100 (those the runs
reach):

* ``regret``  - mean regret per target, optimizer and budget (metric units: compare across
  optimizers within a target, never across targets);
* ``ranks``   - per budget, each optimizer's rank within each target by mean regret (1 =
  lowest; ties share their mean rank) and the mean rank over targets;
* ``friedman`` - per budget, Friedman's test over targets (do the optimizers differ at all?)
  and the Nemenyi post-hoc p-values between every pair (scikit-posthocs), which the
  critical-difference diagram draws: optimizers joined by a bar are not distinguishable
  at ``alpha`` over these targets;
* ``tally``   - the focus optimizer's paired Wilcoxon win/tie/loss per opponent and budget
  (:func:`~nasbench_xfer.evaluate.search.paired_tests`, Holm-corrected within each target).

Reference lines (optimizer names ending in ``-oracle``: they know the target's table) are
kept in the regret table and left out of the ranks, Friedman's test and the diagram.  The
paired tests do include them (the focus against the oracle line is reported in the tally, and
each target's Holm family counts those tests: 5 opponents x 3 budgets = 15 with the default
optimizers, as ``compare``'s summary says), which makes the other calls slightly more
conservative than a family without them.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from scipy import stats

from nasbench_xfer.evaluate.runs import new_figure, save_figure
from nasbench_xfer.evaluate.search import is_reference_line, paired_tests, read_trajectories, regrets_at

__all__ = ["load_comparisons", "aggregate", "aggregate_markdown", "plot_critical_difference", "write_aggregate",
           "BUDGETS"]

BUDGETS = (10, 33, 100)


def load_comparisons(dirs: Sequence[str | os.PathLike]) -> dict[str, pd.DataFrame]:
    """{folder name: trajectories} of `compare` output folders (clear error for anything else)."""
    out: dict[str, pd.DataFrame] = {}
    for d in map(Path, dirs):
        traj = read_trajectories(d)
        name = d.resolve().name
        if name in out:
            raise ValueError(f"two folders are named {name!r}: rename one (the folder name labels the target)")
        out[name] = traj
    if not out:
        raise ValueError("no compare output folders given")
    return out


def _posthocs() -> Any:
    try:
        import scikit_posthocs
    except ImportError:
        raise ImportError("the Nemenyi test and critical-difference diagrams need scikit-posthocs: "
                          "pip install 'nasbench_xfer[analysis]'") from None
    return scikit_posthocs


def aggregate(trajs: dict[str, pd.DataFrame], focus: str = "xfernas",
              budgets: Sequence[int] = BUDGETS, alpha: float = 0.05) -> dict[str, Any]:
    """See the module docstring.  Budgets beyond a comparison's own are left out for it."""
    found = sorted({o for traj in trajs.values() for o in traj["optimizer"].unique()})
    if trajs and focus not in found:
        raise ValueError(f"focus optimizer {focus!r} (--focus) is in none of the comparisons; "
                         f"their optimizers: {', '.join(found)}")
    regret_rows, rank_rows, tally_rows = [], [], []
    for target, traj in trajs.items():
        top = int(traj["step"].max())
        bs = [b for b in budgets if b <= top]
        for b in bs:
            means = regrets_at(traj, b).groupby("optimizer", sort=False)["regret"].mean()
            for opt, v in means.items():
                regret_rows.append({"target": target, "optimizer": opt, "budget": b, "regret": float(v)})
            real = means[[o for o in means.index if not is_reference_line(o)]]
            for opt, r in zip(real.index, stats.rankdata(real.to_numpy())):
                rank_rows.append({"target": target, "optimizer": opt, "budget": b, "rank": float(r)})
        if focus in set(traj["optimizer"]):
            tests = paired_tests(traj, focus, bs, alpha)
            for _, t in tests.iterrows():
                tally_rows.append({"target": target, "opponent": t.opponent, "budget": int(t.budget),
                                   "call": t.call, "p_holm": float(t.p_holm)})
    regret = pd.DataFrame(regret_rows)
    ranks = pd.DataFrame(rank_rows)
    tally = pd.DataFrame(tally_rows, columns=["target", "opponent", "budget", "call", "p_holm"])
    friedman: dict[int, dict[str, Any]] = {}
    for b, g in ranks.groupby("budget"):
        wide = g.pivot(index="target", columns="optimizer", values="rank").dropna(axis=0)
        entry: dict[str, Any] = {"targets": int(len(wide)), "mean_rank": wide.mean().sort_values()}
        if wide.shape[0] >= 2 and wide.shape[1] >= 3:
            reg = regret[(regret.budget == b) & ~regret.optimizer.map(is_reference_line)]
            vals = reg.pivot(index="target", columns="optimizer", values="regret").loc[wide.index, wide.columns]
            entry["friedman_p"] = float(stats.friedmanchisquare(*[vals[c] for c in vals.columns]).pvalue)
            sp = _posthocs()
            entry["nemenyi"] = sp.posthoc_nemenyi_friedman(vals.to_numpy())
            entry["nemenyi"].index = entry["nemenyi"].columns = list(vals.columns)
        friedman[int(b)] = entry
    order = list(dict.fromkeys(o for traj in trajs.values() for o in traj["optimizer"]))
    if focus in order:
        order = [focus] + [o for o in order if o != focus]
    return {"regret": regret, "ranks": ranks, "friedman": friedman, "tally": tally, "focus": focus,
            "alpha": alpha, "order": order}


def aggregate_markdown(agg: dict[str, Any]) -> str:
    """The aggregate as Markdown: mean regret, mean ranks with Friedman's p, the focus's tally."""
    regret, focus = agg["regret"], agg["focus"]
    lines = ["# Aggregate over comparisons", ""]
    budgets = sorted(regret["budget"].unique())
    opts = agg["order"]
    lines += ["## Mean regret (metric units; compare within a row)", "",
              "| target | " + " | ".join(f"{o} @{'/'.join(map(str, budgets))}" for o in opts) + " |",
              "|---|" + "---|" * len(opts)]
    for target, g in regret.groupby("target", sort=False):
        cells = []
        for o in opts:
            v = g[g.optimizer == o].set_index("budget")["regret"]
            cells.append(" / ".join(f"{v[b]:.3g}" if b in v.index else "-" for b in budgets))
        lines.append(f"| {target} | " + " | ".join(cells) + " |")
    lines += ["", "## Mean rank over targets (1 = lowest regret; reference lines left out)", "",
              "Friedman's test asks whether the optimizers differ at all over these targets; the "
              "critical-difference diagrams (`cd_<budget>.png`) join the optimizers that the Nemenyi "
              "post-hoc test cannot tell apart.", "",
              "| budget | targets | " + " | ".join(o for o in opts if not is_reference_line(o)) + " | Friedman p |",
              "|---|---|" + "---|" * (len([o for o in opts if not is_reference_line(o)]) + 1)]
    for b, e in sorted(agg["friedman"].items()):
        mr = e["mean_rank"]
        cells = [f"{mr[o]:.2f}" if o in mr.index else "-" for o in opts if not is_reference_line(o)]
        p = f"{e['friedman_p']:.3g}" if "friedman_p" in e else "n/a (too few targets)"
        lines.append(f"| {b} | {e['targets']} | " + " | ".join(cells) + f" | {p} |")
    tally = agg["tally"]
    if len(tally):
        lines += ["", f"## {focus} against each opponent (paired Wilcoxon, Holm within each target)", "",
                  "win / tie / loss over the targets at Holm p < " + f"{agg['alpha']:g}.", "",
                  "| opponent | " + " | ".join(f"@{b}" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
        for opp, g in tally.groupby("opponent", sort=False):
            cells = []
            for b in budgets:
                c = g[g.budget == b]["call"].value_counts()
                cells.append(f"{c.get('win', 0)} / {c.get('tie', 0)} / {c.get('loss', 0)}" if len(g[g.budget == b])
                             else "-")
            lines.append(f"| {opp} | " + " | ".join(cells) + " |")
        opps = list(dict.fromkeys(tally["opponent"]))
        lines += ["", f"Per target: {focus}'s call against each opponent (Holm p in brackets).", "",
                  "| target | " + " | ".join(f"vs {o} " + " / ".join(f"@{b}" for b in budgets) for o in opps)
                  + " |", "|---|" + "---|" * len(opps)]
        for target, g in tally.groupby("target", sort=False):
            cells = []
            for o in opps:
                h = g[g.opponent == o].set_index("budget")
                cells.append(" / ".join(f"{h.loc[b, 'call']} ({h.loc[b, 'p_holm']:.2g})" if b in h.index else "-"
                                        for b in budgets))
            lines.append(f"| {target} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_critical_difference(agg: dict[str, Any], budget: int, stem: str | os.PathLike) -> bool:
    """The critical-difference diagram at ``budget`` (PNG + PDF); False when the budget has too
    few targets or optimizers for Friedman's test."""
    e = agg["friedman"].get(int(budget))
    if not e or "nemenyi" not in e:
        return False
    sp = _posthocs()
    fig, ax = new_figure(figsize=(6.4, 2.6))
    sp.critical_difference_diagram(e["mean_rank"], e["nemenyi"], ax=ax, alpha=agg["alpha"])
    ax.set_title(f"mean rank over {e['targets']} targets after {budget} evaluations (1 = best); "
                 f"Friedman p = {e['friedman_p']:.2g}; bars: Nemenyi p >= {agg['alpha']:g}", fontsize=8)
    save_figure(fig, stem)
    return True


def write_aggregate(dirs: Sequence[str | os.PathLike], out: str | os.PathLike,
                    focus: str = "xfernas") -> dict[str, Any]:
    """Everything :func:`aggregate` computes, written to ``out``: ``overview.md``, ``regret.csv``,
    ``ranks.csv``, ``tally.csv`` and ``cd_<budget>.png/.pdf``."""
    agg = aggregate(load_comparisons(dirs), focus=focus)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    agg["regret"].to_csv(out / "regret.csv", index=False)
    agg["ranks"].to_csv(out / "ranks.csv", index=False)
    agg["tally"].to_csv(out / "tally.csv", index=False)
    (out / "overview.md").write_text(aggregate_markdown(agg))
    agg["figures"] = [b for b in sorted(agg["friedman"]) if plot_critical_difference(agg, b, out / f"cd_{b}")]
    return agg

