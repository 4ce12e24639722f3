"""Could a different phase-1 selection rule make the warm start show on every target?

XferNAS's first evaluations are the universal network's top picks (the sources' consensus as
learned from 200 evaluations per source).  On TransNAS-Bench-101 ``room_layout`` and
``segmentsemantic`` that warm start does not beat NAO after 10 evaluations
(``docs/results/warmstart-rank/``).  Before blaming the greedy top-k, this script scores other
ways to spend the first ``k`` evaluations on the *same* fitted consensus, none of which looks at
the target:

* ``top``: the ``k`` best predicted (phase 1 of XferNAS on a table, without its gradient-ascent
  proposals);
* ``top-q``: ``k`` drawn uniformly from the best predicted fraction ``q`` of the table (1%, 2%)
  - the expected regret over the draws, exact (order statistics, as random search's);
* ``diverse-d``: greedy, the best predicted architecture that differs in at least ``d`` tokens
  (Hamming distance of the space's encoding) from every one already chosen - a spread batch,
  in case the top picks crowd into one neighbourhood of the space.

Per target, the mean regret after ``k`` evaluations over the seeds, random search's exact
expectation, and NAO's and XferNAS's (the search, phase 2 included from the 6th evaluation)
mean regret from the warm-start comparison.  Each seed draws the sources' sample as ``compare``
does (``derive_seed(seed, "sources")``, 200 per source) and fits one universal network on its
normal scores (XferNAS's default ``scores="rank"``; the network's seed ``derive_seed(seed,
"phase1")``, not the search's own draw).  A rule is called better or worse than NAO by a
two-sided Wilcoxon signed-rank test paired by seed, p < 0.05, Holm over the table's cells.

    python experiments/phase1_selection.py --store runs/transnas.h5 \
        --warmstart docs/results/warmstart-rank --seeds 30 > docs/results/phase1_selection.md
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments.source_ceiling import random_regret, top_regret  # noqa: E402

KS = (5, 10)
QS = (0.01, 0.02)
DS = (2, 3, 4)


def diverse(order: np.ndarray, tokens: np.ndarray, k: int, d: int) -> list[int]:
    """The first ``k`` of ``order`` that differ from every earlier pick in >= ``d`` tokens."""
    chosen: list[int] = []
    for i in order:
        if all(int((tokens[i] != tokens[j]).sum()) >= d for j in chosen):
            chosen.append(int(i))
            if len(chosen) == k:
                break
    return chosen


def rule_regrets(pred: np.ndarray, y: np.ndarray, tokens: np.ndarray) -> dict[str, float]:
    """Regret (table's best minus the best chosen) of every rule and ``k`` for one fit."""
    order = np.argsort(-pred, kind="stable")
    out: dict[str, float] = {}
    for k in KS:
        out[f"top@{k}"] = top_regret(pred, y, k)
        for q in QS:
            head = y[order[: max(k, int(round(q * len(y))))]]
            out[f"top-{q:g}@{k}"] = float(y.max() - head.max()) + random_regret(head, k)
        for d in DS:
            out[f"diverse-{d}@{k}"] = float(y.max() - y[diverse(order, tokens, k, d)].max())
    return out


def run(store: str, targets: list[str] | None, seeds: int, source_size: int) -> pd.DataFrame:
    from nasbench_xfer.evaluate.ablation import derive_seed
    from nasbench_xfer.evaluate.stats import normal_scores
    from nasbench_xfer.oracle import load_task_data
    from nasbench_xfer.predictor import TransferPredictor
    from nasbench_xfer.store import Store

    rows = []
    with Store.open(store) as st:
        for target in targets or st.tasks:
            sources = [t for t in st.tasks if t != target]
            table = st.score_table(target)
            ids = np.flatnonzero(np.isfinite(table))
            archs, y = st.archs(ids.tolist()), table[ids]
            tokens = np.array([st.space.encode(a) for a in archs])
            for seed in range(seeds):
                data = load_task_data(st, sources, source_size, np.random.default_rng(derive_seed(seed, "sources")))
                hist = {t: (d.archs, normal_scores(np.asarray(d.scores, dtype=float))) for t, d in data.items()}
                hist[target] = ([], np.zeros(0))
                model = TransferPredictor(st.space, seed=derive_seed(seed, "phase1")).fit(hist, target=target)
                pred = model.predict_universal(archs)
                rows.append({"target": target, "seed": seed, "spearman": float(stats.spearmanr(pred, y)[0]),
                             **rule_regrets(pred, y, tokens),
                             **{f"random@{k}": random_regret(y, k) for k in KS}})
            print(f"{target}: {seeds} seeds", file=sys.stderr, flush=True)
    return pd.DataFrame(rows)


def searches(folder: Path | None, k: int) -> pd.DataFrame:
    """Per (target, optimizer, seed): regret after ``k`` evaluations in the comparison folders
    under ``folder`` (the target read from each folder's trajectories; none without a folder)."""
    from nasbench_xfer.evaluate.search import read_trajectories, regrets_at

    out = [pd.DataFrame(columns=["optimizer", "seed", "regret", "target"])]
    for sub in sorted(p for p in folder.iterdir() if (p / "spec.json").exists()) if folder else []:
        traj = read_trajectories(sub)
        out.append(regrets_at(traj, k).assign(target=str(traj["target"].iloc[0])))
    return pd.concat(out, ignore_index=True)


def markdown(res: pd.DataFrame, warm: pd.DataFrame, command: str, k: int = 10) -> str:
    from nasbench_xfer.evaluate.stats import holm, paired_wilcoxon

    rules = ["top", *(f"top-{q:g}" for q in QS), *(f"diverse-{d}" for d in DS)]
    lines = ["# Phase-1 selection rules on the same consensus: top-k, sampled from the top, spread out", "",
             f"Mean regret after {k} evaluations (metric units; lower is better) over {res['seed'].nunique()} "
             "seeds; each seed fits one universal network on 200 source evaluations per source (the sample "
             "`compare` draws for that seed) and every rule spends its evaluations on that network's ranking, "
             "without looking at the target.  `nao` and `xfernas` are the searches of the warm-start "
             "comparison (same seeds; the search's evaluations 6-10 already use the first 5 target "
             "evaluations).  A rule's cell is marked **better** / *worse* than NAO where a two-sided Wilcoxon "
             "signed-rank test paired by seed gives p < 0.05 after Holm over the table's rule cells.  "
             f"Generated by `{command}`.", ""]
    head = ["target", "consensus Spearman", *rules, "random (exact)", "nao", "xfernas"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    # the searches' per-seed regrets, {(target, optimizer): regret by seed}
    refs = {key: g.set_index("seed")["regret"] for key, g in warm.groupby(["target", "optimizer"])}
    cells, pvals = [], []
    for target, g in res.groupby("target", sort=False):
        nao = refs.get((target, "nao"), pd.Series(dtype=float))
        for r in rules:
            v = g.set_index("seed")[f"{r}@{k}"]
            both = v.index.intersection(nao.index)
            test = paired_wilcoxon(v[both], nao[both])
            cells.append((target, r, float(v.mean()), test.mean_diff))
            pvals.append(test.pvalue)
    adj = holm(pvals)  # NaN (no pairs) stays NaN and is not counted
    marks = {}
    for i, (target, r, mean, diff) in enumerate(cells):
        s = f"{mean:.4g}"
        if adj[i] < 0.05:
            s = f"**{s}** (better, p={adj[i]:.2g})" if diff < 0 else f"*{s}* (worse, p={adj[i]:.2g})"
        marks[(target, r)] = s
    for target, g in res.groupby("target", sort=False):
        ref = [f"{refs[(target, o)].mean():.4g}" if (target, o) in refs else "-" for o in ("nao", "xfernas")]
        lines.append("| " + " | ".join([target, f"{g['spearman'].mean():.3f}", *(marks[(target, r)] for r in rules),
                                        f"{g[f'random@{k}'].iloc[0]:.4g}", *ref]) + " |")
    lines += ["", "Regret after 5 evaluations (all rules; no search reference, the searches' first 5 are "
              "phase 1 as well):", "", "| target | " + " | ".join(rules) + " | random (exact) |",
              "|" + "---|" * (len(rules) + 2)]
    for target, g in res.groupby("target", sort=False):
        lines.append("| " + " | ".join([target, *(f"{g[f'{r}@5'].mean():.4g}" for r in rules),
                                        f"{g['random@5'].iloc[0]:.4g}"]) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--targets", default=None, help="comma-separated (default: every task)")
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--source-size", type=int, default=200)
    ap.add_argument("--warmstart", type=Path, default=None, help="a warm-start comparison folder (references)")
    a = ap.parse_args()
    res = run(a.store, a.targets.split(",") if a.targets else None, a.seeds, a.source_size)
    warm = searches(a.warmstart, 10)
    print(markdown(res, warm, "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])), end="")


if __name__ == "__main__":
    main()
