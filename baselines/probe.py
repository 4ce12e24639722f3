"""TAPAS-style task characterisation: the score of one fixed, small probe architecture.

The search runner picks the probe (:func:`choose_probe`) among the architectures
evaluated on the target and on every source (so the probe's score is known on
each source, and the target's is one evaluation away): the one with the fewest
parameters, ties and missing parameter counts broken by the lowest canonical
hash.  A source task is the closer, the closer its probe score is to the
target's.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..store import Store


def choose_probe(store: Store, target: str, sources: Sequence[str]):
    """(probe architecture, {source: probe score}) or (None, {}) if no architecture is shared."""
    tables = {t: store.score_table(t) for t in [target, *sources]}
    shared = np.ones(store.num_archs, dtype=bool)
    for table in tables.values():
        shared &= ~np.isnan(table)
    ids = np.flatnonzero(shared)
    if len(ids) == 0:
        return None, {}
    params = np.stack([store.metric_table(t, "params") for t in tables])[:, ids]
    known = np.isfinite(params).any(axis=0)
    params = np.where(known, np.nanmax(np.where(np.isfinite(params), params, -np.inf), axis=0), np.inf)
    hashes = store._read_rows(store._f["space/hash"], ids)
    order = np.lexsort((hashes, params))
    best = int(ids[order[0]])
    return store.archs([best])[0], {s: float(tables[s][best]) for s in sources}


def closeness(target_score: float, probe_scores: Mapping[str, float]) -> dict[str, float]:
    """Absolute probe-score difference of each source to the target (smaller is closer)."""
    return {s: abs(float(v) - float(target_score)) for s, v in probe_scores.items()}
