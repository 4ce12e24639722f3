"""Surrogate benchmarks validated on exhaustive tables, as NAS-Bench-301 validated its own.

For each fraction (default 5% and 20%) of every task's architectures, fits the ``ensemble``
surrogate (seed 0; ``--holdout 1 - fraction``) and scores its two parts and itself on the
architectures it never saw.  The parts are exactly the ``lgb`` and ``xfer`` kinds fitted alone
with the same seed (the ensemble fits them the same way and averages them), so one fit gives
all three rows.

* (a) per task: Spearman, Kendall, Kendall among the true top 10%, R² on the held-out rest;
* (b) the transferability matrix (Spearman between every two tasks over the held-out
  architectures common to all tasks) of the table beside each surrogate's, with the mean and
  largest absolute difference of the off-diagonal entries and the Spearman correlation of
  the two matrices' off-diagonal entries (does the surrogate keep which tasks are related?).

Writes ``<out>/<label>/validation.csv``, ``transferability.csv`` and
``transferability_<pct>.png``, then ``<out>/validation.md`` over every label found there.

    python experiments/surrogate_validation.py runs/transnas.h5 --label transnas
    python experiments/surrogate_validation.py runs/nbg.h5 --label nbg \
        --tasks cora,citeseer,pubmed,cs,physics,photo,computers,arxiv
    python experiments/surrogate_validation.py --summary-only      # rewrite validation.md
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from nasbench_xfer.store import Store  # noqa: E402
from nasbench_xfer.surrogate import fit_surrogate, validation_figures  # noqa: E402

KINDS = ("lgb", "xfer", "ensemble")


def part_predictions(sb, task: str, tokens: np.ndarray) -> dict[str, np.ndarray]:
    """Mean prediction of the ensemble's tree part, network part and the ensemble itself."""
    trees, nets = sb.shared_model.members(task, tokens)
    lgb, xfer = trees.mean(axis=0), nets.mean(axis=0)
    return {"lgb": lgb, "xfer": xfer, "ensemble": 0.5 * (lgb + xfer)}   # the ensemble's mean (predict_task)


def per_arch_means(st: Store, task: str) -> pd.Series:
    ev = st.evaluations(task)
    ev = ev[(ev["status"] == "ok") & np.isfinite(ev["val_metric"].astype(float))]
    return ev.groupby("arch_id")["val_metric"].mean()


def off_diagonal(mat: np.ndarray) -> np.ndarray:
    return mat[~np.eye(len(mat), dtype=bool)]


def run(store: Path, label: str, tasks: list[str] | None, fractions: list[float], out: Path) -> None:
    out = out / label
    out.mkdir(parents=True, exist_ok=True)
    val_rows, tr_rows, mats_by_frac = [], [], {}
    for frac in fractions:
        t0 = time.perf_counter()
        sb = fit_surrogate(store, tasks, model="ensemble", params={"xfer": {"device": "cpu"}},
                           holdout=round(1.0 - frac, 6), seed=0, log=print)
        fit_s = time.perf_counter() - t0
        chosen = sb.tasks
        common = None
        with Store.open(store) as st:
            truth = {t: per_arch_means(st, t) for t in chosen}
            for t in chosen:
                held = sb.held_out(t)
                y = truth[t].loc[held].to_numpy(dtype=float)
                tokens = sb.features.arch_tokens(st.archs(held))
                for kind, pred in part_predictions(sb, t, tokens).items():
                    v = validation_figures(y, pred, sb.info()["tasks"][t]["higher_is_better"])
                    val_rows.append({"table": label, "fraction": frac, "kind": kind, "task": t,
                                     "fitted_on": sb.validation(t)["fitted_on"], "held_out": v["n"],
                                     "spearman": v["spearman"], "kendall": v["kendall"],
                                     "kendall_top10": v["kendall_top10"], "r2": v["r2"],
                                     "fit_seconds_all_tasks": fit_s})
                common = set(held.tolist()) if common is None else common & set(held.tolist())
            ids = np.asarray(sorted(common or ()), dtype=np.int64)
            tokens = sb.features.arch_tokens(st.archs(ids))
        cols = {"table": np.stack([truth[t].loc[ids].to_numpy(dtype=float) for t in chosen])}
        preds = {t: part_predictions(sb, t, tokens) for t in chosen}
        for kind in KINDS:
            cols[kind] = np.stack([preds[t][kind] for t in chosen])
        mats = {k: stats.spearmanr(v, axis=1)[0] if len(chosen) > 2 else
                np.array([[1.0, stats.spearmanr(v[0], v[1])[0]], [stats.spearmanr(v[0], v[1])[0], 1.0]])
                for k, v in cols.items()}
        mats_by_frac[frac] = (chosen, mats, len(ids))
        for i, a in enumerate(chosen):
            for j, b in enumerate(chosen):
                if i < j:
                    tr_rows.append({"table": label, "fraction": frac, "task_a": a, "task_b": b, "archs": len(ids),
                                    **{f"spearman_{k}": float(mats[k][i, j]) for k in mats}})
    pd.DataFrame(val_rows).to_csv(out / "validation.csv", index=False)
    pd.DataFrame(tr_rows).to_csv(out / "transferability.csv", index=False)
    for frac, (chosen, mats, n) in mats_by_frac.items():
        plot_matrices(chosen, mats, n, f"{label}: surrogates fitted on {frac:.0%} of each task",
                      out / f"transferability_{round(frac * 100)}.png")


def plot_matrices(tasks: list[str], mats: dict[str, np.ndarray], n: int, title: str, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = {"table": "table (truth)", "lgb": "lgb surrogate", "xfer": "xfer surrogate",
             "ensemble": "ensemble surrogate"}
    lo = min(float(np.nanmin(m)) for m in mats.values())
    fig, axes = plt.subplots(1, len(mats), figsize=(3.4 * len(mats) + 1, 3.8), constrained_layout=True)
    im = None
    for ax, (k, m) in zip(axes, mats.items()):
        im = ax.imshow(m, vmin=min(0.0, lo), vmax=1.0, cmap="viridis")
        ax.set_title(names[k], fontsize=10)
        ax.set_xticks(range(len(tasks)), tasks, rotation=90, fontsize=7)
        ax.set_yticks(range(len(tasks)), tasks if ax is axes[0] else [], fontsize=7)
        for i in range(len(tasks)):
            for j in range(len(tasks)):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=5.5,
                        color="white" if m[i, j] < 0.6 else "black")
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="Spearman between tasks")
    fig.suptitle(f"{title} ({n:,} held-out architectures common to all tasks)", fontsize=10)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def summary(out: Path) -> None:
    vals = [pd.read_csv(p) for p in sorted(out.glob("*/validation.csv"))]
    trs = [pd.read_csv(p) for p in sorted(out.glob("*/transferability.csv"))]
    if not vals:
        return
    v, tr = pd.concat(vals), pd.concat(trs)
    lines = ["# Surrogate validation on exhaustive tables", "",
             "Generated by `python experiments/surrogate_validation.py` (module doc: the commands). The `ensemble` "
             "surrogate (seed 0) fitted on a random 5% / 20% of each task's architectures; its parts `lgb` and "
             "`xfer` are exactly those kinds fitted alone with the same seed (`lgb` with its default target, "
             "`quantile`: the trees fit normal scores). Figures on the architectures the "
             "surrogate never saw (one split, seed 0: no spread over splits is measured).", "",
             "## (a) Held-out figures, mean over tasks (min - max in brackets)", "",
             "| table | fitted on | kind | tasks | Spearman | Kendall | Kendall top 10% | R² |",
             "|---|---|---|---|---|---|---|---|"]

    def cell(s: pd.Series) -> str:
        return f"{s.mean():.3f} ({s.min():.2f} - {s.max():.2f})"

    for (table, frac, kind), g in v.groupby(["table", "fraction", "kind"], sort=False):
        lines.append(f"| {table} | {frac:.0%} | {kind} | {len(g)} | {cell(g['spearman'])} | {cell(g['kendall'])} "
                     f"| {cell(g['kendall_top10'])} | {cell(g['r2'])} |")
    lines += ["", "## (b) Transferability: Spearman between tasks, table vs surrogate", "",
              "Off-diagonal entries of the task-by-task Spearman matrix over the held-out architectures common to "
              "all tasks: mean and largest absolute difference from the table's, and the Spearman correlation of "
              "the surrogate's entries with the table's (1: the same tasks look related).", "",
              "| table | fitted on | kind | task pairs | table's mean | surrogate's mean | mean abs diff | "
              "max abs diff | Spearman of entries |", "|---|---|---|---|---|---|---|---|---|"]
    for (table, frac), g in tr.groupby(["table", "fraction"], sort=False):
        for kind in KINDS:
            d = (g[f"spearman_{kind}"] - g["spearman_table"]).abs()
            rho = stats.spearmanr(g[f"spearman_{kind}"], g["spearman_table"])[0] if len(g) > 2 else float("nan")
            lines.append(f"| {table} | {frac:.0%} | {kind} | {len(g)} | {g['spearman_table'].mean():.3f} | "
                         f"{g[f'spearman_{kind}'].mean():.3f} | {d.mean():.3f} | {d.max():.3f} | {rho:.3f} |")
    lines += ["", "## Per task", "", "| table | fitted on | task | held out | Spearman lgb / xfer / ensemble | "
              "Kendall lgb / xfer / ensemble | Kendall top 10% lgb / xfer / ensemble | R² lgb / xfer / ensemble |",
              "|---|---|---|---|---|---|---|---|"]
    for (table, frac, task), g in v.groupby(["table", "fraction", "task"], sort=False):
        g = g.set_index("kind")

        def three(col: str, g=g) -> str:
            return " / ".join(f"{g.loc[k, col]:.3f}" for k in KINDS)
        lines.append(f"| {table} | {frac:.0%} | {task} | {int(g['held_out'].iloc[0]):,} | {three('spearman')} | "
                     f"{three('kendall')} | {three('kendall_top10')} | {three('r2')} |")
    (out / "validation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("store", nargs="?")
    ap.add_argument("--label")
    ap.add_argument("--tasks", default=None)
    ap.add_argument("--fractions", default="0.05,0.2")
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "surrogate"))
    ap.add_argument("--summary-only", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if not args.summary_only:
        if not args.store or not args.label:
            ap.error("give STORE and --label (or --summary-only)")
        run(Path(args.store), args.label, args.tasks.split(",") if args.tasks else None,
            [float(f) for f in args.fractions.split(",")], out)
    summary(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
