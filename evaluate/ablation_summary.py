"""One overview over several ablations (`nasbench-xfer aggregate ABLATION_DIR...`).

Per ablation folder (its ``runs.jsonl``): does the zero-target correlation rise with source
size, do the first target evaluations lower it (the "dip"), does transfer ever hurt, where do
the curves meet?  :func:`ablation_overview` writes both tables as markdown.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nasbench_xfer.evaluate.ablation import load_results, target_dip, transfer_effects

__all__ = ["is_ablation_folder", "summarize_ablation", "ablation_overview", "METHOD"]

METRICS = ("spearman", "kendall", "pearson")

#: how the overview's calls are made (its preamble)
METHOD = """\
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
target architectures minus the zero-target Spearman (goal: >= -0.01)."""


def _header(folder: Path) -> dict[str, Any]:
    f = folder / "runs.jsonl"
    try:
        first = f.read_text().split("\n", 1)[0]
        spec = json.loads(first)["spec"]
        spec["source_sizes"], spec["target_sizes"], spec["splits"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"{folder} is not an `nasbench-xfer ablation` output folder (no readable "
                         "runs.jsonl with an ablation header)") from None
    return spec


def is_ablation_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds an ablation's ``runs.jsonl`` (as `ablation` writes it)."""
    try:
        _header(Path(folder))
    except ValueError:
        return False
    return True


def summarize_ablation(folder: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """(transfer row, dip row) of one ablation folder; see :data:`METHOD`."""
    d = Path(folder)
    spec = _header(d)
    runs = load_results(d / "runs.jsonl")
    runs = runs[runs["status"] == "ok"] if "status" in runs else runs
    srcs = sorted(s for s in spec["source_sizes"] if s > 0)
    tgts = sorted(m for m in spec["target_sizes"] if m > 0)
    if runs.empty or not srcs or not tgts:
        raise ValueError(f"{d}: needs finished fits with source sizes > 0 and target sizes > 0 to summarise")
    splits = int(runs["split"].nunique())
    head = {"ablation": d.resolve().name, "predictor": spec.get("predictor", "xfernas"),
            "options": json.dumps(spec.get("predictor_options", {})) if spec.get("predictor_options") else "",
            "fits": len(runs), "splits": splits}
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
    row["helps (cells, Holm)"] = (f"{(eff.call == 'helps').sum()} of {len(eff)} "
                                  f"({(eff.call_holm == 'helps').sum()})")
    hurts = eff[eff.call == "hurts"]
    row["hurts: source@target (diff, p; Holm)"] = (
        ", ".join(f"{r.source_size}@{r.target_size} ({r['diff']:+.3f}, p={r.p:.3f}; "
                  f"{'hurts' if r.call_holm == 'hurts' else 'n.s.'})" for _, r in hurts.iterrows())
        if len(hurts) else "never")
    big = eff[eff.source_size == srcs[-1]].sort_values("target_size").reset_index(drop=True)
    calls = big["call"].tolist()
    if splits < 6:
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
    row["note"] = (f"{splits} splits: a two-sided Wilcoxon test cannot reach p < 0.05 "
                   "(smallest p = 2/2^n), so no cell can be called") if splits < 6 else ""
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


def _markdown_table(rows: list[dict[str, Any]]) -> str:
    df = pd.DataFrame(rows)
    out = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    out += ["| " + " | ".join(str(v) for v in r) + " |" for _, r in df.iterrows()]
    return "\n".join(out)


def ablation_overview(dirs: Sequence[str | os.PathLike]) -> str:
    """The overview of ablation folders ``dirs`` (sorted by name) as markdown: transfer against
    no transfer, then the dip table."""
    if not dirs:
        raise ValueError("no ablation output folders given")
    pairs = [summarize_ablation(d) for d in sorted(dirs, key=lambda p: Path(p).resolve().name)]
    return "\n".join([
        "# Ablations: overview\n",
        "Generated by `nasbench-xfer aggregate` over the ablation folders beside this file. One row per "
        "ablation (the paper's Figure 3 per target): does zero-target correlation rise with source "
        "size, do the first target evaluations lower it (the \"dip\"), does transfer ever hurt, where "
        "do the curves meet?\n",
        *(p.replace("\n", " ") + "\n" for p in METHOD.split("\n\n")),
        "## Transfer against no transfer (Spearman claims; Kendall and Pearson beside)\n",
        _markdown_table([p[0] for p in pairs]) + "\n",
        "## The dip: Spearman at 0 / 10 / 25 target architectures, per source size\n",
        _markdown_table([p[1] for p in pairs]),
    ]) + "\n"
