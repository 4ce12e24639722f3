"""Why the hedged predictor keeps the sources where the target's own model is better.

Re-fits the default predictor (``HedgedTransferPredictor``, the ``xfernas`` of
``nasbench-xfer ablation``) on the cells of a committed reduced ablation
(``docs/results/ablation-dip/<name>/runs.jsonl``: the same spec, splits and seeds) and records,
per (source size, target size, split):

* the evidence the predictor used: each member's pair concordance on the target's evaluations
  (the target model's from pooled out-of-fold predictions) and ``p``, the bootstrap
  probability that the target model orders them better, with the weight it gave;
* ``p_within``: the same bootstrap restricted to pairs inside one fold (both out-of-fold
  predictions then come from the same fitted model);
* the held-out Spearman of the blend ``(1 - w) * u + w * t`` for a grid of fixed weights
  ``w`` (``u`` the universal network, ``t`` the target model rescaled as the predictor does;
  ``w = 0`` is the zero-target model, ``w = 1`` no transfer) and for the weight used;
* the raw material to score any other weighting rule offline without refitting: on the
  target's evaluations their values, the source model's predictions, the out-of-fold
  predictions and the folds; on the held-out set the values, ``u`` and ``t``.

The members are the predictor's own memoised fits, so the blend grid costs no extra training.

    python experiments/hedge_evidence.py docs/results/ablation-dip/nbg-citeseer/runs.jsonl \
        > docs/results/hedge_evidence/nbg-citeseer.jsonl
    python experiments/hedge_evidence.py --splits 5 docs/results/ablation-dip/nbg-arxiv/runs.jsonl \
        > docs/results/hedge_evidence/nbg-arxiv.jsonl      # the files committed use 5 splits
    python experiments/hedge_evidence.py --summary docs/results/hedge_evidence/*.jsonl
    python experiments/hedge_evidence.py --rules docs/results/hedge_evidence/*.jsonl
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nasbench_xfer.evaluate.ablation import AblationSpec, _data, cell_history, derive_seed  # noqa: E402
from nasbench_xfer.evaluate.stats import bootstrap_preference, concordance_matrix  # noqa: E402
from nasbench_xfer.predictor.hedged import HedgedTransferPredictor, blend_weight  # noqa: E402

GRID = (0.0, 0.1, 0.2, 0.33, 0.5, 0.75, 1.0)


def cells(results: Path, splits: int | None = None) -> None:
    spec = AblationSpec(**json.loads(results.open().readline())["spec"])
    data, target = _data(spec), spec.target
    for k in range(spec.splits if splits is None else min(splits, spec.splits)):
        for s in (s for s in spec.source_sizes if s > 0):
            for m in (m for m in spec.target_sizes if m > 0):
                history, test = cell_history(spec, s, m, k)
                y_test = data.tables[target][test]
                model = HedgedTransferPredictor(data.space, seed=derive_seed(spec.seed, "fit", k))
                model.fit(history, target=target)
                u, t = model.blend_parts([data.archs[i] for i in test])
                y = history[target][1]
                oof = model.out_of_fold
                same = (oof["fold"][:, None] == oof["fold"][None, :]).astype(float)
                c_src = concordance_matrix(oof["source"], y)
                c_tgt = concordance_matrix(oof["target_cv"], y)
                row = {"target": target, "source_size": s, "target_size": m, "split": k,
                       "weight": model.weight, "p": model.p_target_better,
                       "p_within": bootstrap_preference(c_src * same, c_tgt * same, model.n_boot, model.seed),
                       "evidence": model.evidence,
                       "spearman_at_weight": float(spearmanr((1 - model.weight) * u + model.weight * t, y_test)[0]),
                       "spearman_grid": {str(w): float(spearmanr((1 - w) * u + w * t, y_test)[0]) for w in GRID},
                       "train": {"y": y.tolist(), "source": oof["source"].tolist(), "cv": oof["target_cv"].tolist(),
                                 "fold": oof["fold"].tolist()},
                       "held_out": {"y": y_test.tolist(), "u": u.tolist(), "t": t.tolist()}}
                print(json.dumps(row), flush=True)


def _stacked_weight(src: np.ndarray, cv: np.ndarray, y: np.ndarray) -> float:
    """The weight in 0, 0.1, .., 1 whose blend of the z-scored source predictions and out-of-fold
    predictions orders the target's evaluations best (ties: the smaller weight)."""
    zs, zc = (src - src.mean()) / (src.std() + 1e-12), (cv - cv.mean()) / (cv.std() + 1e-12)
    grid = np.linspace(0.0, 1.0, 11)
    score = [np.triu(concordance_matrix((1 - w) * zs + w * zc, y), 1).sum() for w in grid]
    return float(grid[int(np.argmax(score))])


#: candidate weighting rules, from a row's evidence: name -> (description, w(row)); the evidence files hold
#: 10 and 25 target evaluations, where blend_weight (the predictor's rule) is max(0, 2p - 1) n / (n + prior)
RULES: dict[str, tuple[str, Any]] = {
    "default": ("max(0, 2p - 1) * n / (n + 50): the predictor's rule",
                lambda r, n: blend_weight(r["p"], n, 50)),
    "within-fold": ("the same with p from pairs inside one fold",
                    lambda r, n: blend_weight(r["p_within"], n, 50)),
    "evidence": ("max(0, 2p - 1), no prior", lambda r, n: blend_weight(r["p"], n, 0)),
    "prior-50": ("n / (n + 50), no evidence", lambda r, n: n / (n + 50)),
    "prior-25": ("n / (n + 25), no evidence", lambda r, n: n / (n + 25)),
    "soft": ("w = p", lambda r, n: r["p"]),
    "stacked": ("the weight whose blend of the out-of-sample predictions orders the target's "
                "evaluations best", lambda r, n: _stacked_weight(np.asarray(r["train"]["source"]),
                                                                np.asarray(r["train"]["cv"]),
                                                                np.asarray(r["train"]["y"]))),
    "half": ("w = 0.5", lambda r, n: 0.5),
    "source-scaled": ("max(0, 2p - 1) * n / (n + 200 * max(0, 2 c_src - 1)^2): a weak source "
                      "model (its concordance c_src on the target's evaluations near 1/2) shrinks less",
                      lambda r, n: max(0.0, 2 * r["p"] - 1) * n
                      / (n + 200 * max(0.0, 2 * r["evidence"]["source"] - 1) ** 2)),
    "confident": ("e * n / (n + 50 * (1 - e^2)), e = max(0, 2p - 1): strong evidence shrinks less",
                  lambda r, n: max(0.0, 2 * r["p"] - 1) * n / (n + 50 * (1 - max(0.0, 2 * r["p"] - 1) ** 2))),
}


def rules(files: list[Path]) -> None:
    """Per target and rule: the worst change from the zero-target Spearman at any (source size,
    target size) and the smallest margin over no transfer with the largest source size (means
    over the splits; exact: the blend is the predictor's own, on the same member fits)."""
    print("| rule | what | " + " | ".join(f.stem for f in files) + " |")
    print("|---|---|" + "---|" * len(files))
    per: dict[str, list[str]] = {name: [] for name in RULES}
    for f in files:
        rows = [json.loads(line) for line in f.read_text().splitlines()]
        off = [r for r in rows if abs(RULES["default"][1](r, r["target_size"]) - r["weight"]) > 1e-9]
        if off:  # the table's "default" row must be the predictor's own weights
            raise SystemExit(f"{f}: the default rule does not reproduce the recorded weight in {len(off)} rows")
        top = max(r["source_size"] for r in rows)
        zero: dict[tuple[int, int], list[float]] = defaultdict(list)
        none: dict[tuple[int, int], list[float]] = defaultdict(list)
        for r in rows:
            zero[(r["source_size"], r["target_size"])].append(r["spearman_grid"]["0.0"])
            none[(r["source_size"], r["target_size"])].append(r["spearman_grid"]["1.0"])
        for name, (_, rule) in RULES.items():
            got: dict[tuple[int, int], list[float]] = defaultdict(list)
            for r in rows:
                h = r["held_out"]
                w = rule(r, r["target_size"])
                blend = (1 - w) * np.asarray(h["u"]) + w * np.asarray(h["t"])
                got[(r["source_size"], r["target_size"])].append(float(spearmanr(blend, h["y"])[0]))
            dip = min(np.mean(v) - np.mean(zero[k]) for k, v in got.items())
            gap = min(np.mean(v) - np.mean(none[k]) for k, v in got.items() if k[0] == top)
            per[name].append(f"{dip:+.3f} / {gap:+.3f}")
    for name, (what, _) in RULES.items():
        print(f"| {name} | {what} | " + " | ".join(per[name]) + " |")


def summary(files: list[Path]) -> None:
    print("| ablation | source/target size | splits | weight used (mean) | p / p within folds (mean) | Spearman: "
          "weight used | " + " | ".join(f"w = {w:g}" for w in GRID) + " |")
    print("|---|---|---|---|---|---|" + "---|" * len(GRID))
    for f in files:
        by: dict[tuple[int, int], list[dict]] = defaultdict(list)
        for line in f.read_text().splitlines():
            r = json.loads(line)
            by[(r["source_size"], r["target_size"])].append(r)
        for (s, m), rs in sorted(by.items()):
            grid = " | ".join(f"{np.mean([r['spearman_grid'][str(w)] for r in rs]):.3f}" for w in GRID)
            print(f"| {f.stem} | {s}/{m} | {len(rs)} | {np.mean([r['weight'] for r in rs]):.2f} | "
                  f"{np.mean([r['p'] for r in rs]):.2f} / {np.mean([r['p_within'] for r in rs]):.2f} | "
                  f"{np.mean([r['spearman_at_weight'] for r in rs]):.3f} | {grid} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path, help="an ablation's runs.jsonl (or, with --summary, outputs)")
    ap.add_argument("--summary", action="store_true", help="tabulate outputs of this script (Markdown)")
    ap.add_argument("--rules", action="store_true",
                    help="score candidate weighting rules on outputs of this script (Markdown)")
    ap.add_argument("--splits", type=int, default=None,
                    help="only the first N splits of the ablation (the files committed use 5)")
    args = ap.parse_args()
    if args.summary:
        summary(args.files)
    elif args.rules:
        rules(args.files)
    else:
        for f in args.files:
            cells(f, args.splits)


if __name__ == "__main__":
    main()
