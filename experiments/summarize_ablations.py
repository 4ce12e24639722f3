"""One table over all ablations in docs/results/ablation/ (the paper's Figure 3 per target):
does zero-target correlation rise with source size, do the first target evaluations lower it
(the "dip"), does transfer ever hurt, where do the curves meet?

    python experiments/summarize_ablations.py > docs/results/ablation/overview.md
    python experiments/summarize_ablations.py docs/results/ablation-dip > docs/results/ablation-dip/overview.md

Claims are stated from Spearman (rank) correlation over the held-out architectures; Kendall and
Pearson (the paper's metric) are given beside it.  Pearson is inflated on TransNAS by a few very
poor architectures, so it is not used for any call.

Splits are shared by every setting, so transfer is judged per split (paired): for a source size
s > 0 and target size m, the per-split difference d = rho(s, m) - rho(0, m) is tested with a
two-sided Wilcoxon signed-rank test; "helps"/"hurts" at p < 0.05 uncorrected, and (in
brackets) after Holm's correction over the ablation's cells.  Uncorrected, about one spurious
call per 20 cells is expected by chance.  The curves "meet" at the smallest target size from
which the largest source size no longer helps (uncorrected, at that size and every larger one);
"never apart" if it never helps.  The dip: for each source size, the Spearman at 10 and at 25
target architectures minus the zero-target Spearman (goal: >= -0.01).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from nasbench_xfer.evaluate.ablation import target_dip, transfer_effects

ROOT = Path(__file__).resolve().parents[1] / "docs" / "results" / "ablation"
METRICS = ("spearman", "kendall", "pearson")


def load_runs(path: Path) -> pd.DataFrame:
    lines = path.read_text().splitlines()[1:]
    runs = pd.DataFrame([json.loads(line) for line in lines if line.strip()])
    return runs[runs["status"] == "ok"]


def summarize(d: Path) -> tuple[dict, dict]:
    runs = load_runs(d / "runs.jsonl")
    spec = json.loads((d / "runs.jsonl").read_text().splitlines()[0])["spec"]
    srcs = sorted(s for s in spec["source_sizes"] if s > 0)
    tgts = sorted(m for m in spec["target_sizes"] if m > 0)
    head = {"ablation": d.name, "predictor": spec.get("predictor", "xfernas"),
            "options": json.dumps(spec.get("predictor_options", {})) if spec.get("predictor_options") else "",
            "fits": len(runs), "splits": spec["splits"]}
    row = dict(head)
    for metric in METRICS:
        mean = runs.groupby(["source_size", "target_size"])[metric].mean()
        zero = [mean.get((s, 0), np.nan) for s in srcs]
        row[f"zero-target {metric} (" + "/".join(map(str, srcs)) + ")"] = " / ".join(f"{v:.3f}" for v in zero)
    mean = runs.groupby(["source_size", "target_size"])["spearman"].mean()
    zero = [mean.get((s, 0), np.nan) for s in srcs]
    row["rises (spearman)"] = "yes" if all(b > a for a, b in zip(zero, zero[1:])) else "no"
    row[f"no transfer spearman @{tgts[0]} / @{tgts[-1]}"] = (f"{mean.get((0, tgts[0]), np.nan):.3f} / "
                                                           f"{mean.get((0, tgts[-1]), np.nan):.3f}")
    eff = transfer_effects(runs, "spearman")
    n = len(eff)
    row["helps (cells, Holm)"] = f"{(eff.call == 'helps').sum()} of {n} ({(eff.call_holm == 'helps').sum()})"
    hurts = eff[eff.call == "hurts"]
    row["hurts: source@target (diff, p; Holm)"] = (
        ", ".join(f"{r.source_size}@{r.target_size} ({r['diff']:+.3f}, p={r.p:.3f}; "
                  f"{'hurts' if r.call_holm == 'hurts' else 'n.s.'})" for _, r in hurts.iterrows())
        if len(hurts) else "never")
    big = eff[eff.source_size == srcs[-1]].sort_values("target_size").reset_index(drop=True)
    calls = big["call"].tolist()
    if spec["splits"] < 6:
        meet = "n/a (too few splits to test)"
    elif "helps" not in calls:
        meet = "never apart"
    elif calls[-1] == "helps":
        meet = f"not by {tgts[-1]}"
    else:
        last = max(k for k, c in enumerate(calls) if c == "helps")
        meet = f"at {big['target_size'].iloc[last + 1]}"
    row[f"curves meet (source {srcs[-1]} vs none)"] = meet
    row[f"transfer - none, {srcs[-1]}/source (" + "/".join(map(str, tgts)) + ")"] = " / ".join(
        f"{v:+.3f}" for v in big["diff"])
    row["note"] = (f"{spec['splits']} splits: a two-sided Wilcoxon test cannot reach p < 0.05 "
                   "(smallest p = 2/2^n), so no cell can be called") if spec["splits"] < 6 else ""
    dip = target_dip(runs, "spearman")
    drow = dict(head)
    worst = np.inf
    for s in srcs:
        g = dip[dip.source_size == s].set_index("target_size")
        cells = [f"{g['zero'].iloc[0]:.3f}"] + [f"{g.loc[m, 'value']:.3f}" for m in (10, 25) if m in g.index]
        drow[f"{s}/source: 0 / 10 / 25"] = " / ".join(cells)
        for m in (10, 25):
            if m in g.index:
                worst = min(worst, g.loc[m, "change"])
    drow["worst change @10/25"] = f"{worst:+.4f}"
    drow["goal (>= -0.01)"] = "met" if worst >= -0.01 else "missed"
    return row, drow


def table(rows: list[dict]) -> str:
    df = pd.DataFrame(rows)
    out = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    out += ["| " + " | ".join(str(v) for v in r) + " |" for _, r in df.iterrows()]
    return "\n".join(out)


def main() -> None:
    import sys

    root = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    # only finished ablations (the CLI writes table.csv at the end)
    pairs = [summarize(d) for d in sorted(root.iterdir()) if (d / "table.csv").exists()]
    print("# Ablations: overview\n")
    print(__doc__.split("\n\n")[0] + "\n")
    for para in __doc__.split("\n\n")[2:4]:
        print(para.replace("\n", " ") + "\n")
    print("## Transfer against no transfer (Spearman claims; Kendall and Pearson beside)\n")
    print(table([p[0] for p in pairs]) + "\n")
    print("## The dip: Spearman at 0 / 10 / 25 target architectures, per source size\n")
    print(table([p[1] for p in pairs]))


if __name__ == "__main__":
    main()
