"""TAPAS-like transfer (Istrate et al. 2019): predict the target from source data only.

1. Characterise each task without units by the ranks of a few probe
   architectures (``ctx.probes``, see :mod:`.probe`): their scores are known on
   every source; on the target they cost ``n_probes`` evaluations.  A task's
   *descriptor* is the normalised rank (0 = best, 1 = worst) of each probe.
2. Weight each source task by how well its probe ranks agree with the
   target's: ``w = max(rho, 0) ** 2``, ``rho`` the Spearman correlation over the
   probes (uniform weights if no source agrees positively).
3. Fit a regressor conditioned on the task descriptor: features are the one-hot
   token encoding of the architecture plus the task's descriptor; targets are
   the source scores, z-scored per task; rows weighted by step 2.
4. Predict every candidate for the target's descriptor and evaluate them from
   the best prediction down.

Documented limitation (as in the paper's related work): the prediction model
never learns from the target's own results; after the probes, the order of
evaluation is fixed.
"""
from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor

from nasbench_xfer.baselines.probe import DEFAULT_PROBES, rank_agreement
from nasbench_xfer.optimizer import Optimizer, OptimizerError, SearchContext


def probe_descriptor(scores) -> np.ndarray:
    """Normalised ranks of the probe scores (0 = best, 1 = worst; ties share their mean rank)."""
    from scipy.stats import rankdata

    v = np.asarray(scores, dtype=float)
    return ((rankdata(-v, method="average") - 1) / max(len(v) - 1, 1)).astype(np.float32)


class TapasLike(Optimizer):
    """Probe-rank-conditioned source-only predictor; see the module docstring."""

    name = "tapas"
    uses_probe = True

    def __init__(self, n_samples: int = 5000, max_iter: int = 200, n_probes: int = DEFAULT_PROBES):
        if not isinstance(n_probes, (int, np.integer)) or n_probes < 2:
            raise OptimizerError(f"tapas: n_probes must be an integer >= 2, got {n_probes!r}")
        self.n_samples = n_samples
        self.max_iter = max_iter
        self.n_probes = int(n_probes)

    def setup(self, ctx: SearchContext) -> None:
        super().setup(ctx)
        if len(ctx.probes) < 2:
            raise OptimizerError("tapas: fewer than two architectures are evaluated on the target "
                                 "and on every source, so the target cannot be characterised")
        if not ctx.sources:
            raise OptimizerError("tapas: needs at least one source task")
        self._queue: list | None = None
        #: {source: weight} of the last ranking
        self.weights: dict[str, float] = {}

    def _rank(self, target_probe_scores) -> list:
        ctx = self.ctx
        names = list(ctx.sources)
        agree = rank_agreement(target_probe_scores, {s: ctx.probe_table[s] for s in names})
        weights = np.array([max(agree[s][0], 0.0) ** 2 for s in names])
        if not weights.sum() > 0:
            weights = np.ones(len(names))
        self.weights = dict(zip(names, weights.tolist()))
        xs, ys, ws = [], [], []
        for s, w in zip(names, weights):
            if w <= 0:
                continue
            data = ctx.sources[s]
            y = np.asarray(data.scores, dtype=np.float64)
            y = (y - y.mean()) / (y.std() + 1e-12)
            x = ctx.space.one_hot(data.archs)
            desc = probe_descriptor(ctx.probe_table[s])
            xs.append(np.hstack([x, np.tile(desc, (len(x), 1))]))
            ys.append(y)
            ws.append(np.full(len(y), w))
        model = HistGradientBoostingRegressor(max_iter=self.max_iter, random_state=0)
        model.fit(np.vstack(xs), np.concatenate(ys), sample_weight=np.concatenate(ws))
        if ctx.candidates is not None:
            cands = list(ctx.candidates)
        else:
            cands = ctx.space.candidate_pool(self.n_samples, ctx.rng)
        x = ctx.space.one_hot(cands)
        desc = probe_descriptor(target_probe_scores)
        pred = model.predict(np.hstack([x, np.tile(desc, (len(x), 1))]))
        order = np.argsort(-pred, kind="stable")
        return [cands[i] for i in order]

    def ask(self, n: int) -> list:
        if self._queue is None:
            todo = [p for p in self.ctx.probes if self.is_new(p)]
            if todo:
                return self.mark(todo[:n], "probe")
            self._queue = self._rank([self.evaluated[self.ctx.hash(p)][1] for p in self.ctx.probes])
        return self.mark(self.take_new(self._queue, n), "source-model")
