"""Which tasks carry knowledge to which: task-by-task rank correlations (NASTransfer-style view).

For every pair of tasks, Spearman and Kendall correlation of the validation
metric (mean over seeds) on the architectures both tasks share; for every task,
the single source task that ranks its architectures best.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from nasbench_xfer.evaluate.runs import new_figure, save_figure
from nasbench_xfer.store import Store


def rank_correlations(store: Store, tasks: Sequence[str] | None = None, min_shared: int = 10) -> pd.DataFrame:
    """Tidy table: task_a, task_b, shared, spearman, kendall (NaN where < ``min_shared`` shared)."""
    tasks = list(tasks or store.tasks)
    tables = {t: store.score_table(t) for t in tasks}  # lower-is-better metrics negated
    rows = []
    for a in tasks:
        for b in tasks:
            both = ~np.isnan(tables[a]) & ~np.isnan(tables[b])
            n = int(both.sum())
            if a == b:
                rho = tau = 1.0 if n >= 2 else np.nan
            elif n < min_shared:
                rho = tau = np.nan
            else:
                rho = stats.spearmanr(tables[a][both], tables[b][both]).statistic
                tau = stats.kendalltau(tables[a][both], tables[b][both]).statistic
            rows.append({"task_a": a, "task_b": b, "shared": n, "spearman": float(rho),
                         "kendall": float(tau)})
    return pd.DataFrame(rows)


def best_sources(corr: pd.DataFrame, metric: str = "spearman") -> pd.DataFrame:
    """For each task, the other task with the highest rank correlation."""
    off = corr[(corr["task_a"] != corr["task_b"]) & corr[metric].notna()]
    rows = []
    for task, g in off.groupby("task_a", sort=False):
        best = g.loc[g[metric].idxmax()]
        rows.append({"task": task, "best_source": best["task_b"], metric: best[metric],
                     "shared": int(best["shared"])})
    return pd.DataFrame(rows)


def cluster_order(mat: pd.DataFrame) -> list[str]:
    """Tasks ordered by average-linkage clustering on ``1 - correlation`` (optimal leaf order),
    so tasks that transfer to each other sit together; the given order if fewer than 3."""
    from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
    from scipy.spatial.distance import squareform

    names = list(mat.index)
    if len(names) < 3:
        return names
    sym = mat.to_numpy(dtype=float)
    sym = np.where(np.isfinite(sym), sym, 0.0)
    sym = (sym + sym.T) / 2
    dist = np.clip(1.0 - sym, 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    condensed = squareform(dist, checks=False)
    z = optimal_leaf_ordering(linkage(condensed, method="average"), condensed)
    return [names[i] for i in leaves_list(z)]


def plot_heatmap(corr: pd.DataFrame, stem: Path, metric: str = "spearman", title: str = "") -> None:
    """Heatmap of the task-by-task matrix, tasks ordered by clustering (PNG + PDF).  A
    sequential colour scale from 0 when no value is negative, a diverging one around 0
    otherwise."""
    mat = corr.pivot(index="task_a", columns="task_b", values=metric)
    order = list(dict.fromkeys(corr["task_a"]))
    order = cluster_order(mat.loc[order, order])
    mat = mat.loc[order, order]
    vals = mat.to_numpy(dtype=float)
    negative = bool(np.nanmin(vals) < 0) if np.isfinite(vals).any() else False
    cmap, vmin = ("RdBu_r", -1.0) if negative else ("viridis", 0.0)
    fig, ax = new_figure((1.4 + 0.75 * len(order), 1.0 + 0.65 * len(order)))
    im = ax.imshow(vals, vmin=vmin, vmax=1, cmap=cmap)
    ax.set_xticks(range(len(order)), order, rotation=45, ha="right")
    ax.set_yticks(range(len(order)), order)
    ax.set_xlabel("task")
    ax.set_ylabel("task")
    mid = (vmin + 1.0) / 2
    for i in range(len(order)):
        for j in range(len(order)):
            v = mat.iat[i, j]
            if np.isfinite(v):
                dark = (abs(v) > 0.6) if negative else (v < mid)
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
    fig.colorbar(im, ax=ax, label=f"{metric} rank correlation")
    ax.set_title(title or f"{metric} rank correlation between tasks (ordered by clustering)", fontsize=9)
    save_figure(fig, stem)
