"""Statistics for comparisons and ablations: paired tests, Holm correction, censored medians.

* :func:`paired_wilcoxon` - two-sided Wilcoxon signed-rank test on paired
  samples (seeds pair the optimizers of a comparison: the same seed draws the
  same source knowledge; splits pair the settings of an ablation).
* :func:`holm` - Holm's step-down adjustment of a family of p-values (controls
  the family-wise error rate; one family = one table).
* :func:`kaplan_meier` / :func:`km_median` - "evaluations until the table's
  top k% is reached" is a time-to-event with right censoring: a search that
  has not got there within its budget is censored at the budget, not dropped.
  The Kaplan-Meier median is the first time at which at least half of the
  searches have got there; ``inf`` when fewer than half did within the budget.
* :func:`normal_scores` - a sample's ranks mapped to a standard normal (the XferNAS search's
  training targets and the ``lgb`` surrogate's ``quantile`` target).
* :func:`concordance_matrix` / :func:`bootstrap_preference` - which of two predictors
  orders a task's evaluations better: pair concordance, bootstrapped over the evaluations
  (the hedges of XferNAS's search and of the default transfer predictor).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

__all__ = ["paired_wilcoxon", "holm", "kaplan_meier", "km_median", "PairedResult", "concordance_matrix",
           "bootstrap_preference", "normal_scores"]


class PairedResult(tuple):
    """``(n, mean_diff, median_diff, statistic, pvalue, rank_sum)`` of :func:`paired_wilcoxon`;
    ``rank_sum`` is the signed-rank sum ``W+ - W-`` (positive: ``a`` tends to be larger), the
    direction the test measures."""

    __slots__ = ()

    def __new__(cls, n, mean_diff, median_diff, statistic, pvalue, rank_sum=math.nan):
        return super().__new__(cls, (n, mean_diff, median_diff, statistic, pvalue, rank_sum))

    n = property(lambda self: self[0])
    mean_diff = property(lambda self: self[1])
    median_diff = property(lambda self: self[2])
    statistic = property(lambda self: self[3])
    pvalue = property(lambda self: self[4])
    rank_sum = property(lambda self: self[5])


def paired_wilcoxon(a: Sequence[float], b: Sequence[float]) -> PairedResult:
    """Two-sided Wilcoxon signed-rank test of ``a - b`` (pairs with a NaN are dropped).

    Zero differences are dropped (Wilcoxon's convention, ``zero_method="wilcox"``);
    if every difference is zero the p-value is 1.  The p-value is scipy's
    ``method="auto"`` as of scipy 1.15 (the version the package requires): the exact null
    distribution for up to 50 pairs without ties or zeros; with ties or zeros, an exact
    permutation test over the sign flips for up to 13 pairs and the normal approximation
    beyond (older scipy took the normal approximation whenever a zero was present, which moved
    some p-values across 0.05).  ``mean_diff``/``median_diff`` are over all complete pairs;
    ``rank_sum`` over the nonzero differences (average ranks for ties).
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired samples must be 1-D and of equal length, got {x.shape} and {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    d = x[ok] - y[ok]
    n = int(len(d))
    if n == 0:
        return PairedResult(0, math.nan, math.nan, math.nan, math.nan)
    mean, med = float(d.mean()), float(np.median(d))
    if not np.any(d != 0):
        return PairedResult(n, mean, med, 0.0, 1.0, 0.0)
    nz = d[d != 0]
    rank_sum = float(np.sum(np.sign(nz) * stats.rankdata(np.abs(nz))))
    res = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    return PairedResult(n, mean, med, float(res.statistic), float(res.pvalue), rank_sum)


def normal_scores(y: Sequence[float] | np.ndarray) -> np.ndarray:
    """Normal scores of ``y``: ``Phi^-1((rank - 1/2) / n)``, ties sharing their mean rank (order
    kept, spacing of a standard normal sample; an empty ``y`` gives an empty array)."""
    v = np.asarray(y, dtype=float)
    if not len(v):
        return v
    return np.asarray(stats.norm.ppf((stats.rankdata(v) - 0.5) / len(v)), dtype=float)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values (same order as given; NaN stays NaN and is not counted)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = len(idx)
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def kaplan_meier(times: Sequence[float], events: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier estimate: ``(event times, fraction not yet reached just after each)``.

    ``times[i]`` is when search ``i`` reached the goal (``events[i]`` true) or was
    censored (``events[i]`` false: it stopped at ``times[i]`` without reaching it).
    """
    t = np.asarray(times, dtype=float)
    e = np.asarray(events, dtype=bool)
    if t.shape != e.shape or t.ndim != 1:
        raise ValueError("times and events must be 1-D and of equal length")
    if not np.isfinite(t).all():
        raise ValueError("times must be finite (censor a search at its budget)")
    uniq = np.unique(t[e])
    surv, s = [], 1.0
    for u in uniq:
        at_risk = int((t >= u).sum())
        died = int(((t == u) & e).sum())
        s *= 1.0 - died / at_risk
        surv.append(s)
    return uniq, np.asarray(surv)


def km_median(times: Sequence[float], events: Sequence[bool]) -> float:
    """Kaplan-Meier median time to the event (``inf`` if the estimate never falls to 0.5)."""
    t, s = kaplan_meier(times, events)
    hit = np.flatnonzero(s <= 0.5 + 1e-12)
    return float(t[hit[0]]) if len(hit) else math.inf


def concordance_matrix(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``C[i, j]`` = 1 if ``pred`` orders evaluations ``i`` and ``j`` as ``y`` does, 0.5 if
    ``pred`` ties them, 0 otherwise; 0 on the diagonal and for pairs tied in ``y``."""
    pred, y = np.asarray(pred, dtype=float), np.asarray(y, dtype=float)
    if pred.shape != y.shape or pred.ndim != 1:
        raise ValueError(f"concordance_matrix: pred and y must be 1-D of one length, got "
                         f"{pred.shape} and {y.shape}")
    dp = np.sign(pred[:, None] - pred[None, :])
    dy = np.sign(y[:, None] - y[None, :])
    c = np.where(dp == 0, 0.5, (dp == dy).astype(float))
    c[dy == 0] = 0.0
    return c


def bootstrap_preference(c_first: np.ndarray, c_second: np.ndarray, n_boot: int,
                         seed: int) -> float:
    """P(the second model's pair concordance beats the first's), bootstrapping the evaluations
    (ties count one half).  ``c_*`` are :func:`concordance_matrix` results on the same
    evaluations."""
    n = c_first.shape[0]
    if c_first.shape != (n, n) or c_second.shape != (n, n):
        raise ValueError("bootstrap_preference: concordance matrices must be square and alike")
    if n < 2:
        return 0.5
    idx = np.random.default_rng(seed).integers(n, size=(n_boot, n))
    # a resample's pair sum is m^T C m for its multiplicities m: (n_boot, n) memory, not n_boot * n^2
    m = np.zeros((n_boot, n))
    np.add.at(m, (np.arange(n_boot)[:, None], idx), 1.0)
    first = np.einsum("bi,ij,bj->b", m, c_first, m)
    second = np.einsum("bi,ij,bj->b", m, c_second, m)
    return float(np.mean(second > first) + 0.5 * np.mean(second == first))
