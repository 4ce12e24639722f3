"""Correlation curves versus source and target knowledge (the paper's section 4.5, Figure 3).

Protocol (the paper's, as defaults):

* From the target task's evaluated architectures, split ``k`` (``k < splits``)
  draws a seeded permutation: its first ``holdout`` (50) architectures are the
  test set, the rest, in that order, are the candidates for target knowledge;
  target size ``m`` uses the first ``m`` candidates (nested across sizes).
* Source knowledge of size ``s`` per task: the first ``s`` architectures of a
  seeded permutation of each source task's evaluated architectures, held-out
  architectures excluded, so the test architectures are unknown to the model
  (as in the paper).  Splits are drawn once and reused across all settings.
* Every (source size, target size, split) trains a fresh predictor and records
  Pearson (the paper's), Spearman and Kendall correlation between predicted
  and true metric on the held-out set, and top-k precision.  Source size 0 and
  target size 0 together leave nothing to learn from: that cell is recorded
  with NaN metrics and status ``"no data"`` (a method without knowledge can
  only guess: correlation 0 in expectation).

Results go to a JSON-lines file, one line per finished run, so an interrupted
ablation resumes where it stopped, and rerunning it with more splits adds only the
new splits (split ``k`` is drawn from ``k`` and the seed alone); :func:`aggregate` and
:func:`plot_figure3` turn them into the mean/std table and the Figure-3 plot.
"""
from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from nasbench_xfer.evaluate.runs import (
    derive_seed,
    ensure_same_spec,
    make_output_folder,
    new_figure,
    run_jobs,
    save_figure,
)
from nasbench_xfer.oracle import OracleError
from nasbench_xfer.store import StoreError
from nasbench_xfer.surrogate.view import open_benchmark

DEFAULT_SOURCE_SIZES = (0, 50, 100, 150)
DEFAULT_TARGET_SIZES = (0, 10, 25, 50, 75, 100, 150)


# --------------------------------------------------------------------- metrics
def correlation_metrics(pred: np.ndarray, true: np.ndarray, ks: Sequence[int] = (5, 10)) -> dict:
    """Pearson, Spearman, Kendall and top-k precision (share of the true top-k among the predicted top-k).

    A constant prediction orders nothing: its correlations are undefined and count as 0, the
    expected correlation of a random order (kept in the means over splits, where leaving the
    split out would flatter a predictor that sometimes collapses); its top-k is the first k
    held-out architectures, as arbitrary as a random pick."""
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    out: dict[str, float] = {}
    if np.ptp(pred) == 0 or np.ptp(true) == 0:
        out.update(pearson=0.0, spearman=0.0, kendall=0.0)
    else:
        out["pearson"] = float(stats.pearsonr(pred, true).statistic)
        out["spearman"] = float(stats.spearmanr(pred, true).statistic)
        out["kendall"] = float(stats.kendalltau(pred, true).statistic)
    for k in ks:
        k = min(k, len(true))
        top_true = set(np.argsort(-true, kind="stable")[:k])
        top_pred = set(np.argsort(-pred, kind="stable")[:k])
        out[f"precision@{k}"] = len(top_true & top_pred) / k
    return out


# --------------------------------------------------------------------- the grid
@dataclass
class AblationSpec:
    store: str
    target: str
    sources: list[str]
    source_sizes: list[int] = field(default_factory=lambda: list(DEFAULT_SOURCE_SIZES))
    target_sizes: list[int] = field(default_factory=lambda: list(DEFAULT_TARGET_SIZES))
    splits: int = 10
    holdout: int = 50
    seed: int = 0
    predictor: str = "xfernas"
    predictor_options: dict[str, Any] = field(default_factory=dict)


#: what a predictor name meant in results files written before they recorded it
_LEGACY_IMPLEMENTATIONS = {"xfernas": "nasbench_xfer.predictor.transfer:TransferPredictor"}


def predictor_implementation(name: str) -> str:
    """``module:qualname`` of the factory registered as ``name``, with ``@N`` where the factory
    declares ``RESULTS_REVISION = N`` (a change that alters its results under the same name),
    recorded with the results so that a name whose meaning changed cannot resume old results."""
    from nasbench_xfer.predictor.base import PREDICTORS

    obj = PREDICTORS.get(name)
    base = f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"
    revision = getattr(obj, "RESULTS_REVISION", None)
    return f"{base}@{revision}" if revision is not None else base


def check_spec(spec: AblationSpec) -> None:
    """Bad-input checks before anything runs."""
    from nasbench_xfer.predictor.base import PREDICTORS, make_predictor

    PREDICTORS.get(spec.predictor)  # an unknown name or a broken path fails here, before any fit
    with open_benchmark(spec.store) as st:
        try:  # options the predictor does not take fail here too
            make_predictor(spec.predictor, st.space, 0, spec.predictor_options)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"predictor {spec.predictor!r} with options {spec.predictor_options}: "
                             f"{exc}") from None
        for t in [spec.target, *spec.sources]:
            if t not in st.tasks:
                raise StoreError(f"task {t!r} is not in {spec.store} (tasks: {', '.join(st.tasks)})")
        if spec.target in spec.sources:
            raise ValueError(f"the target {spec.target!r} cannot also be a source")
        tables = {t: st.score_table(t) for t in [spec.target, *spec.sources]}
    n = int(np.isfinite(tables[spec.target]).sum())
    need = spec.holdout + max(spec.target_sizes)
    if n < need:
        raise OracleError(f"target {spec.target!r} has {n} evaluated architectures; holdout "
                          f"{spec.holdout} + target size {max(spec.target_sizes)} needs {need}")
    if spec.splits < 1 or spec.holdout < 3:
        raise ValueError("need splits >= 1 and holdout >= 3")
    if min(spec.source_sizes) < 0 or min(spec.target_sizes) < 0:
        raise ValueError("sizes must be non-negative")
    want = max(spec.source_sizes)
    if want > 0 and spec.sources:  # every split must have that many source architectures outside its holdout
        for k in range(spec.splits):
            for s, ids in split_ids(tables, spec, k)[2].items():
                if len(ids) < want:
                    raise OracleError(f"source task {s!r} has {len(ids)} evaluated architectures outside the "
                                      f"held-out set of split {k}, fewer than the source size {want} asked "
                                      f"for: results would be labelled with a size they were not fitted on; "
                                      f"ask for at most {len(ids)}")


class _Data:
    """Per-process cache of the store's tables (ids, scores, decoded architectures)."""

    def __init__(self, spec: AblationSpec):
        with open_benchmark(spec.store) as st:
            self.space = st.space
            self.tables = {t: st.score_table(t) for t in [spec.target, *spec.sources]}
            ids = sorted({int(i) for t in self.tables.values() for i in np.flatnonzero(np.isfinite(t))})
            self.archs = dict(zip(ids, st.archs(ids)))

    def split(self, spec: AblationSpec, k: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        return split_ids(self.tables, spec, k)


def split_ids(tables: dict[str, np.ndarray], spec: AblationSpec,
              k: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Split ``k`` from the score tables alone: (held-out target ids, candidate target ids in
    order, {source: its ids outside the held-out set, in order})."""
    tgt = np.flatnonzero(np.isfinite(tables[spec.target]))
    perm = np.random.default_rng(derive_seed(spec.seed, "target", k)).permutation(tgt)
    test, cand = perm[: spec.holdout], perm[spec.holdout:]
    held = set(test.tolist())
    src = {}
    for s in spec.sources:
        ids = np.flatnonzero(np.isfinite(tables[s]))
        ids = np.asarray([i for i in ids if i not in held], dtype=np.int64)
        src[s] = np.random.default_rng(derive_seed(spec.seed, "source", s, k)).permutation(ids)
    return test, cand, src


_CACHE: dict[str, _Data] = {}


def _data(spec: AblationSpec) -> _Data:
    key = json.dumps(asdict(spec), sort_keys=True)
    return _CACHE.get(key) or _CACHE.setdefault(key, _Data(spec))


def cell_history(spec: AblationSpec, source_size: int, target_size: int,
                 split: int) -> tuple[dict[str, tuple[list, Any]], np.ndarray]:
    """One cell's knowledge, ``{task: (archs, scores)}`` (the first ``source_size`` of each
    source's split order, the first ``target_size`` target candidates), and the ids of the
    split's held-out target architectures."""
    data = _data(spec)
    test, cand, src = data.split(spec, split)
    history = {s: ([data.archs[i] for i in ids[:source_size]], data.tables[s][ids[:source_size]])
               for s, ids in src.items() if source_size > 0}
    tgt_ids = cand[:target_size]
    history[spec.target] = ([data.archs[i] for i in tgt_ids], data.tables[spec.target][tgt_ids])
    return history, test


def run_one(spec: AblationSpec, source_size: int, target_size: int, split: int) -> dict[str, Any]:
    """One cell of the grid: fit on the split's knowledge, score on its held-out set."""
    import time

    data = _data(spec)
    history, test = cell_history(spec, source_size, target_size, split)
    row: dict[str, Any] = {"target": spec.target, "predictor": spec.predictor,
                           "source_size": source_size, "target_size": target_size, "split": split,
                           "n_train": sum(len(v[1]) for v in history.values())}
    if row["n_train"] == 0:
        return {**row, "status": "no data", "pearson": np.nan, "spearman": np.nan,
                "kendall": np.nan, "fit_seconds": 0.0}
    t0 = time.perf_counter()
    from nasbench_xfer.predictor.base import make_predictor

    model = make_predictor(spec.predictor, data.space, derive_seed(spec.seed, "fit", split),
                           spec.predictor_options)
    try:
        model.fit(history, target=spec.target)
    except ValueError as exc:  # e.g. a target-only surrogate with no target data
        return {**row, "status": f"no data: {exc}", "pearson": np.nan, "spearman": np.nan,
                "kendall": np.nan, "fit_seconds": time.perf_counter() - t0}
    pred = model.predict(spec.target, [data.archs[i] for i in test])
    row.update(correlation_metrics(pred, data.tables[spec.target][test]))
    row.update(status="ok", fit_seconds=time.perf_counter() - t0)
    weight = getattr(model, "weight", None)  # the hedged predictor's blend weight
    if isinstance(weight, float):
        row["weight"] = weight
    return row


def _worker(spec_dict: dict, cells: list[tuple[int, int, int]], pooled: bool) -> list[dict]:
    if pooled:  # one thread per worker process: the fits are small and threads would contend
        import torch

        torch.set_num_threads(1)
    spec = AblationSpec(**spec_dict)
    return [run_one(spec, *c) for c in cells]


def run_ablation(spec: AblationSpec, results: str | os.PathLike, *, jobs: int = 1,
                 progress: bool = True, executor: Any = None) -> pd.DataFrame:
    """Run the whole grid, appending each finished run to ``results`` (JSON lines); resumable.

    ``executor`` (:mod:`nasbench_xfer.executors`) runs the fits, in groups of four cells
    (default: ``jobs`` local processes); only this process appends to ``results``."""
    check_spec(spec)
    results = Path(results)
    make_output_folder(results.parent, error=ValueError)
    spec_dict = asdict(spec)
    header = {"spec": spec_dict, "implementation": predictor_implementation(spec.predictor)}
    done: set[tuple[int, int, int]] = set()
    rows: list[dict] = []
    lines = results.read_text().splitlines() if results.exists() else []
    if len([line for line in lines if line.strip()]) > 1:  # a header alone holds no results: start over
        try:
            first = json.loads(lines[0])
        except json.JSONDecodeError as exc:
            first, why = None, f"not JSON ({exc})"
        else:
            why = "not an ablation header (a JSON object with the spec)"
        if not isinstance(first, dict) or not isinstance(first.get("spec", {}), dict):
            raise ValueError(f"{results}: line 1 is {why}: the file is damaged; use a new output "
                             f"location (or remove the file to start over)")
        old_spec = first.get("spec") or {}
        # more splits extend an ablation (split k is seeded by k alone, so the first ones are the
        # same); fewer would silently drop results
        ensure_same_spec(old_spec, spec_dict, str(results), "ablation",
                         ignore=("splits",) if spec.splits >= old_spec.get("splits", spec.splits) else ())
        made_by = first.get("implementation") or _LEGACY_IMPLEMENTATIONS.get(spec.predictor)
        if made_by is not None and made_by != header["implementation"]:
            raise ValueError(f"{results} holds results of predictor {spec.predictor!r} as implemented by "
                             f"{made_by}; that name now means {header['implementation']}: use a new "
                             f"output location")
        for r in _result_rows(lines, results):
            done.add((r["source_size"], r["target_size"], r["split"]))
            rows.append(r)
        tmp = results.with_name(results.name + ".tmp")  # drop any torn tail, atomically
        if old_spec.get("splits") != spec.splits:  # the header states the grid as it now is
            lines[0] = json.dumps({**first, "spec": spec_dict})
        with open(tmp, "w") as fh:
            fh.write("\n".join([lines[0]] + [json.dumps(r) for r in rows]) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, results)
    else:
        results.write_text(json.dumps(header) + "\n")
    # cells grouped by split so that each worker reuses its cached split
    todo = [(s, t, k) for k in range(spec.splits) for s in spec.source_sizes
            for t in spec.target_sizes if (s, t, k) not in done]
    total = spec.splits * len(spec.source_sizes) * len(spec.target_sizes)

    def record(new: list[dict]) -> int:
        with open(results, "a") as fh:
            for r in new:
                fh.write(json.dumps(r) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        rows.extend(new)
        return len(new)

    pooled = jobs > 1 if executor is None else not (executor.local and getattr(executor, "workers", 1) <= 1)
    size = 4 if pooled else 1
    chunks = [(asdict(spec), todo[i:i + size], pooled) for i in range(0, len(todo), size)]
    run_jobs(_worker, chunks, workers=jobs, executor=executor, on_done=record,
             describe=lambda a: "cells " + ", ".join(f"(source {s}, target {t}, split {k})" for s, t, k in a[1]),
             progress=dict(total=total, initial=total - len(todo), desc=f"ablation {spec.target}", unit="fit")
             if progress else None)
    return pd.DataFrame(rows).sort_values(["source_size", "target_size", "split"]).reset_index(drop=True)


def load_results(path: str | os.PathLike) -> pd.DataFrame:
    """The per-split rows of an ablation's ``runs.jsonl`` (its header line skipped; a last line
    torn by an interrupted ablation is skipped, as the ablation itself does when it resumes)."""
    return pd.DataFrame(_result_rows(Path(path).read_text().splitlines(), path))


_CELL_KEYS = ("source_size", "target_size", "split")


def _result_rows(lines: list[str], path: str | os.PathLike) -> list[dict]:
    """The result rows of a ``runs.jsonl`` read as ``lines`` (line 1, the header, skipped).  A
    last line torn by an interruption is skipped; any other line that is not a result (JSON
    object naming its cell) is damage: ValueError naming the file and line."""
    numbered = [(i, line) for i, line in enumerate(lines[1:], start=2) if line.strip()]
    rows = []
    for k, (i, line) in enumerate(numbered):
        try:
            r = json.loads(line)
        except json.JSONDecodeError as exc:
            if k == len(numbered) - 1:
                continue
            raise ValueError(f"{path}: line {i} is not JSON ({exc}): the file is damaged") from None
        if not isinstance(r, dict) or any(c not in r for c in _CELL_KEYS):
            raise ValueError(f"{path}: line {i} is not an ablation result (a JSON object with "
                             f"{', '.join(_CELL_KEYS)}): the file is damaged")
        rows.append(r)
    return rows


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over splits for every (source size, target size)."""
    metrics = [c for c in ("pearson", "spearman", "kendall") if c in runs] + \
              sorted(c for c in runs.columns if c.startswith("precision@"))
    g = runs.groupby(["target", "predictor", "source_size", "target_size"])
    out = g[metrics + ["fit_seconds"]].agg(["mean", "std"])
    out.columns = [f"{m}_{s}" for m, s in out.columns]
    out["splits"] = g.size()
    return out.reset_index()


def transfer_effects(runs: pd.DataFrame, metric: str = "spearman", alpha: float = 0.05) -> pd.DataFrame:
    """Per (source size > 0, target size > 0) cell: does transfer help or hurt?

    Splits pair the settings, so for each cell the per-split difference
    ``metric(s, m) - metric(0, m)`` is tested with a two-sided Wilcoxon signed-rank
    test; p-values are Holm-corrected over all cells of the ablation.  Columns:
    source_size, target_size, transfer (mean), none (mean), diff (mean), pairs, p,
    p_holm, call (``helps``/``hurts``/``tie`` at uncorrected p < ``alpha``) and
    call_holm (the same at Holm p < ``alpha``).
    """
    from nasbench_xfer.evaluate.stats import holm, paired_wilcoxon

    ok = runs[runs["status"] == "ok"] if "status" in runs else runs
    srcs = sorted(s for s in ok["source_size"].unique() if s > 0)
    tgts = sorted(m for m in ok["target_size"].unique() if m > 0)
    rows = []
    for s in srcs:
        for m in tgts:
            a = ok[(ok.source_size == s) & (ok.target_size == m)].set_index("split")[metric]
            b = ok[(ok.source_size == 0) & (ok.target_size == m)].set_index("split")[metric]
            both = a.index.intersection(b.index)
            res = paired_wilcoxon(a[both].to_numpy(), b[both].to_numpy())
            # means over the splits both settings have, like the test (unpaired means could
            # disagree with it where a split is missing on one side)
            rows.append({"source_size": int(s), "target_size": int(m), "transfer": a[both].mean(),
                         "none": b[both].mean(), "diff": res.mean_diff, "pairs": res.n, "p": res.pvalue})
    out = pd.DataFrame(rows, columns=["source_size", "target_size", "transfer", "none", "diff",
                                      "pairs", "p"])
    out["p_holm"] = holm(out["p"].to_numpy()) if len(out) else []

    def call(p, d):
        return "tie" if not p < alpha else ("helps" if d > 0 else "hurts")

    out["call"] = [call(p, d) for p, d in zip(out["p"], out["diff"])]
    out["call_holm"] = [call(p, d) for p, d in zip(out["p_holm"], out["diff"])]
    return out


def target_dip(runs: pd.DataFrame, metric: str = "spearman") -> pd.DataFrame:
    """For every source size > 0 and target size > 0: the mean ``metric`` minus the zero-target
    mean of the same source size (negative = the first target evaluations made it worse), with a
    paired Wilcoxon test over the splits.  Columns: source_size, target_size, zero, value,
    change, p."""
    from nasbench_xfer.evaluate.stats import paired_wilcoxon

    ok = runs[runs["status"] == "ok"] if "status" in runs else runs
    rows = []
    for s in sorted(x for x in ok["source_size"].unique() if x > 0):
        z = ok[(ok.source_size == s) & (ok.target_size == 0)].set_index("split")[metric]
        for m in sorted(x for x in ok["target_size"].unique() if x > 0):
            v = ok[(ok.source_size == s) & (ok.target_size == m)].set_index("split")[metric]
            both = v.index.intersection(z.index)
            res = paired_wilcoxon(v[both].to_numpy(), z[both].to_numpy())
            zb, vb = z[both].mean(), v[both].mean()  # over the shared splits, like the test
            rows.append({"source_size": int(s), "target_size": int(m), "zero": zb,
                         "value": vb, "change": vb - zb, "p": res.pvalue})
    return pd.DataFrame(rows, columns=["source_size", "target_size", "zero", "value", "change", "p"])


#: Figure 3's bands (seaborn's ``errorbar`` over splits) and how the caption names them.
FIGURE3_BANDS = {"sd": (("sd", 1), "± 1 std over splits"),
                 "se": (("se", 1), "± 1 standard error of the mean over splits"),
                 "ci": (("ci", 95), "95% bootstrap interval of the mean over splits")}


def plot_figure3(runs: Mapping[str, pd.DataFrame], stem: str | os.PathLike, metric: str = "spearman",
                 source_sizes: Sequence[int] | None = None, title: str | None = None, band: str = "sd") -> str:
    """The paper's Figure 3 from per-split ablation results (the rows of ``runs.jsonl``,
    :func:`load_results`, keyed by a label such as the predictor): x = target size, the mean
    ``metric`` over splits as a line with seaborn's band (:data:`FIGURE3_BANDS`).  One ablation:
    a colour per source size; several (e.g. predictors on one target): a colour per ablation and
    a line style per source size.  ``source_sizes``: only those (default: every size all the
    ablations share).  The title names the target(s), the predictor(s), the splits and the band;
    it is returned.  PNG + PDF."""
    import seaborn as sns

    if not runs:
        raise ValueError("no ablation results to plot")
    if band not in FIGURE3_BANDS:
        raise ValueError(f"unknown band {band!r}: choose from {', '.join(FIGURE3_BANDS)}")
    parts = []
    for label, r in runs.items():
        missing = {metric, "source_size", "target_size", "split"} - set(r.columns)
        if missing:
            raise ValueError(f"ablation {label!r} has no {', '.join(sorted(missing))} (metric {metric!r})")
        ok = r[r["status"] == "ok"] if "status" in r else r
        parts.append(ok.assign(ablation=label))
    shared = sorted(set.intersection(*(set(int(x) for x in p["source_size"]) for p in parts)))
    sizes = [int(x) for x in source_sizes] if source_sizes is not None else shared
    absent = [x for x in sizes if x not in shared]
    if absent or not sizes:
        raise ValueError(f"source sizes {absent or sizes} are not in every ablation (shared: {shared})")
    long = pd.concat(parts, ignore_index=True)
    long = long[long["source_size"].isin(sizes)].copy()
    knowledge = {s: f"{s} per source" for s in sizes}
    long["source knowledge"] = long["source_size"].map(knowledge)
    errorbar, band_text = FIGURE3_BANDS[band]
    fig, ax = new_figure()
    common = dict(data=long, x="target_size", y=metric, estimator="mean", errorbar=errorbar, marker="o",
                  markersize=4, err_kws={"alpha": 0.12, "linewidth": 0}, ax=ax)
    if len(runs) == 1:
        sns.lineplot(hue="source knowledge", hue_order=list(knowledge.values()), **common)
        legend = "source knowledge"
    else:
        sns.lineplot(hue="ablation", hue_order=list(runs), style="source knowledge",
                     style_order=list(knowledge.values()), **common)
        legend = None
    ax.set_xlabel("target knowledge (evaluated target architectures)")
    ax.set_ylabel(f"{metric} correlation on held-out architectures")
    ax.axhline(0, color="grey", lw=0.5)
    n = "/".join(str(k) for k in sorted(long.groupby("ablation")["split"].nunique().unique()))
    targets = ", ".join(sorted({str(v) for v in long["target"].unique()})) if "target" in long else "?"
    if len(runs) > 1:
        preds = ", ".join(runs)
    else:
        preds = ", ".join(dict.fromkeys(str(v) for v in long["predictor"])) if "predictor" in long else "?"
    head = title or f"target {targets}; predictor {preds}"
    caption = f"line: mean over {n} splits; band: {band_text} (seaborn)"
    if len(runs) > 1:
        caption += "; colour: ablation, line style: source knowledge"
    text = "\n".join(textwrap.wrap(head, 80) + textwrap.wrap(caption, 80))
    ax.set_title(text, fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, title=legend, title_fontsize=7)
    save_figure(fig, stem)
    return text
