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

from nasbench_xfer.evaluate.runs import save_figure
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


def _linkage(mat: pd.DataFrame) -> np.ndarray:
    """Average-linkage clustering of the tasks on ``1 - correlation`` (symmetrised; a missing
    value counts as 0), leaves in optimal order."""
    from scipy.cluster.hierarchy import linkage, optimal_leaf_ordering
    from scipy.spatial.distance import squareform

    sym = mat.to_numpy(dtype=float)
    sym = np.where(np.isfinite(sym), sym, 0.0)
    sym = (sym + sym.T) / 2
    dist = np.clip(1.0 - sym, 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    condensed = squareform(dist, checks=False)
    return optimal_leaf_ordering(linkage(condensed, method="average"), condensed)


def cluster_order(mat: pd.DataFrame) -> list[str]:
    """Tasks ordered by average-linkage clustering on ``1 - correlation`` (optimal leaf order),
    so tasks that transfer to each other sit together; the given order if fewer than 3."""
    from scipy.cluster.hierarchy import leaves_list

    names = list(mat.index)
    if len(names) < 3:
        return names
    return [names[i] for i in leaves_list(_linkage(mat))]


def plot_heatmap(corr: pd.DataFrame, stem: Path, metric: str = "spearman", title: str = "") -> None:
    """The task-by-task matrix as a seaborn ``clustermap`` (PNG + PDF): tasks ordered by the
    clustering of :func:`cluster_order`, its dendrogram drawn beside; a sequential colour scale
    from 0 when no value is negative, a diverging one around 0 otherwise; values written in the
    cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    mat = corr.pivot(index="task_a", columns="task_b", values=metric)
    order = list(dict.fromkeys(corr["task_a"]))
    mat = mat.loc[order, order].astype(float)
    vals = mat.to_numpy()
    negative = bool(np.nanmin(vals) < 0) if np.isfinite(vals).any() else False
    cmap, vmin = ("RdBu_r", -1.0) if negative else ("viridis", 0.0)
    z = _linkage(mat) if len(order) >= 3 else None
    size = 2.4 + 0.75 * len(order)
    grid = sns.clustermap(mat, row_linkage=z, col_linkage=z, row_cluster=z is not None,
                          col_cluster=z is not None, cmap=cmap, vmin=vmin, vmax=1.0, annot=True, fmt=".2f",
                          annot_kws={"fontsize": 8}, mask=~np.isfinite(vals), figsize=(size, size),
                          dendrogram_ratio=(0.12, 0.18), cbar_pos=(0.02, 0.93, 0.16, 0.02),
                          cbar_kws={"label": metric, "orientation": "horizontal"}, linewidths=0.5,
                          linecolor="white")
    grid.ax_heatmap.set_xlabel("task")
    grid.ax_heatmap.set_ylabel("task")
    plt.setp(grid.ax_heatmap.get_xticklabels(), rotation=45, ha="right")
    plt.setp(grid.ax_heatmap.get_yticklabels(), rotation=0)
    grid.ax_col_dendrogram.set_title(title or f"{metric} rank correlation between tasks "
                                     "(ordered by clustering)", fontsize=9)
    save_figure(grid.figure, stem, tight_layout=False)
