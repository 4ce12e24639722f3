"""Unit-free task characterisation: the *ranks* of a few shared probe architectures.

Tasks measure different things (accuracy in %, SSIM, negative L2 loss, pixel
accuracy ...), so comparing raw metric values across tasks is meaningless.  A
task is characterised instead by how it orders ``k`` probe architectures that
are evaluated on the target and on every source: two tasks are the closer, the
more their orderings agree (Spearman correlation over the probes; Kendall
breaks ties).  The probes' scores on the sources are read from the store; on
the target they cost ``k`` evaluations of the search budget.

Choice of the probes (:func:`choose_probes`, deterministic, never looks at the
target's metric): among the architectures evaluated on the target and on every
source, order them by their mean normalised rank over the sources (best first,
ties by canonical hash) and take ``k`` at evenly spaced positions of that order,
from the sources' consensus best to their consensus worst.  Spreading the
probes over the whole range makes their ranks informative, and the first probe
(the consensus best) is a good architecture to spend an evaluation on anyway.

Default ``k = 8``, measured on TransNAS-Bench-101 (each task the target, the
other six the sources): the source picked by probe agreement has a mean
full-table Spearman with the target of 0.68 / 0.59 / 0.745 / 0.752 for
k = 5 / 6 / 8 / 10 (the oracle choice: 0.80); with 8 probes the pick is within
0.06 of the oracle's on six of the seven tasks (autoencoder: 0.26 vs 0.46).
Fewer probes leave too many ties in the rank agreement to separate sources.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

from nasbench_xfer.store import Store

DEFAULT_PROBES = 8


def _mean_rank(tables: Sequence[np.ndarray], ids: np.ndarray) -> np.ndarray:
    """Mean over tasks of each architecture's normalised rank among ``ids`` (0 = best, 1 = worst)."""
    ranks = []
    for table in tables:
        r = stats.rankdata(-table[ids], method="average")
        ranks.append((r - 1) / max(len(ids) - 1, 1))
    return np.mean(ranks, axis=0)


def choose_probes(store: Store, target: str, sources: Sequence[str], k: int = DEFAULT_PROBES):
    """(probe architectures, {source: array of their scores}) or ([], {}) if nothing is shared.

    ``k`` probes at evenly spaced positions of the sources' consensus order (see
    the module docstring); fewer if fewer architectures are shared.
    """
    if not isinstance(k, (int, np.integer)) or k < 2:
        raise ValueError(f"the number of probe architectures must be an integer >= 2 "
                         f"(rank agreement needs at least two), got {k!r}")
    if not sources:
        return [], {}
    tables = {t: store.score_table(t) for t in [target, *sources]}
    shared = np.ones(store.num_archs, dtype=bool)
    for table in tables.values():
        shared &= ~np.isnan(table)
    ids = np.flatnonzero(shared)
    if len(ids) == 0:
        return [], {}
    mean_rank = _mean_rank([tables[s] for s in sources], ids)
    hashes = store.arch_hashes(ids)
    order = ids[np.lexsort((hashes, mean_rank))]
    pos = np.unique(np.round(np.linspace(0, len(order) - 1, min(k, len(order)))).astype(int))
    chosen = order[pos]
    return store.archs(chosen), {s: tables[s][chosen].astype(float) for s in sources}


def choose_probe(store: Store, target: str, sources: Sequence[str]):
    """The first probe of :func:`choose_probes` and its source scores (kept for old callers)."""
    archs, table = choose_probes(store, target, sources)
    if not archs:
        return None, {}
    return archs[0], {s: float(v[0]) for s, v in table.items()}


def rank_agreement(target_scores: Sequence[float] | np.ndarray,
                   probe_table: Mapping[str, Sequence[float] | np.ndarray]) -> dict[str, tuple[float, float]]:
    """``{source: (spearman, kendall)}`` between the target's and each source's probe scores.

    Unit-free: only the orderings matter.  A constant score vector carries no
    ordering and gets 0.
    """
    t = np.asarray(target_scores, dtype=float)
    if t.ndim != 1 or len(t) < 2:
        raise ValueError(f"rank agreement needs at least two probe scores, got {t.shape}")
    if not np.isfinite(t).all():
        raise ValueError("the target's probe scores contain NaN or infinite values")
    out = {}
    for s, v in probe_table.items():
        v = np.asarray(v, dtype=float)
        if v.shape != t.shape:
            raise ValueError(f"source {s!r}: {len(v)} probe scores but the target has {len(t)}")
        if np.ptp(v) == 0 or np.ptp(t) == 0:
            out[s] = (0.0, 0.0)
        else:
            out[s] = (float(stats.spearmanr(t, v).statistic), float(stats.kendalltau(t, v).statistic))
    return out


def most_similar(agreement: Mapping[str, tuple[float, float]]) -> str:
    """The source with the highest Spearman agreement (Kendall, then the name, break ties)."""
    if not agreement:
        raise ValueError("no sources to choose from")
    return min(agreement, key=lambda s: (-agreement[s][0], -agreement[s][1], s))


def full_table_similarity(store: Store, target: str, sources: Sequence[str]) -> dict[str, float]:
    """Oracle knowledge: each source's Spearman correlation with the target over *all* the
    architectures both hold (NaN if fewer than 3 are shared).  A search cannot know this."""
    t = store.score_table(target)
    out = {}
    for s in sources:
        v = store.score_table(s)
        both = ~np.isnan(t) & ~np.isnan(v)
        out[s] = (float(stats.spearmanr(t[both], v[both]).statistic)
                  if both.sum() >= 3 and np.ptp(t[both]) > 0 and np.ptp(v[both]) > 0 else float("nan"))
    return out
