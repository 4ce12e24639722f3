"""TAPAS-like transfer (Istrate et al. 2019): predict the target from source data only.

1. Characterise each task by the score of a fixed small probe architecture
   (one evaluation on the target; see :mod:`.probe`).
2. Weight each source task by the closeness of its probe score to the
   target's: ``w = exp(-d^2 / (2 s^2))``, ``d`` the probe-score difference and
   ``s`` the spread (standard deviation) of the sources' probe scores.
3. Fit a regressor conditioned on the probe score: features are the one-hot
   token encoding of the architecture plus the task's probe score; targets are
   the source scores, z-scored per task; rows weighted by step 2.
4. Predict every candidate for the target's probe score and evaluate them from
   the best prediction down.

Documented limitation (as in the paper's related work): the prediction model
never learns from the target's own results; after the probe, the order of
evaluation is fixed.
"""
from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor

from ..optimizer import Optimizer, OptimizerError, SearchContext


def one_hot(space, archs) -> np.ndarray:
    """Flattened one-hot token encoding (N, seq_len * vocab_size), restricted to valid slots."""
    toks = np.asarray([space.encode(a) for a in archs], dtype=np.int64)
    mask = space.token_mask()
    out = np.zeros((len(toks), space.seq_len, space.vocab_size), dtype=np.float32)
    np.put_along_axis(out, toks[:, :, None], 1.0, axis=2)
    return out[:, mask]


class TapasLike(Optimizer):
    """Probe-conditioned source-only predictor; see the module docstring."""

    name = "tapas"
    uses_probe = True

    def __init__(self, n_samples: int = 5000, max_iter: int = 200):
        self.n_samples = n_samples
        self.max_iter = max_iter

    def setup(self, ctx: SearchContext) -> None:
        super().setup(ctx)
        if ctx.probe is None:
            raise OptimizerError("tapas: no architecture is evaluated on the target and on every "
                                 "source, so there is no probe to characterise the target")
        if not ctx.sources:
            raise OptimizerError("tapas: needs at least one source task")
        self._queue: list | None = None

    def _rank(self, target_probe: float) -> list:
        ctx = self.ctx
        names = list(ctx.sources)
        probe = np.array([ctx.probe_scores[s] for s in names])
        spread = probe.std() if len(probe) > 1 and probe.std() > 0 else 1.0
        weights = np.exp(-((probe - target_probe) ** 2) / (2 * spread ** 2))
        xs, ys, ws = [], [], []
        for s, w, p in zip(names, weights, probe):
            data = ctx.sources[s]
            y = np.asarray(data.scores, dtype=np.float64)
            y = (y - y.mean()) / (y.std() + 1e-12)
            x = one_hot(ctx.space, data.archs)
            xs.append(np.hstack([x, np.full((len(x), 1), p, dtype=np.float32)]))
            ys.append(y)
            ws.append(np.full(len(y), w))
        model = HistGradientBoostingRegressor(max_iter=self.max_iter, random_state=0)
        model.fit(np.vstack(xs), np.concatenate(ys), sample_weight=np.concatenate(ws))
        if ctx.candidates is not None:
            cands = list(ctx.candidates)
        else:
            cands = ctx.space.sample_many(self.n_samples, ctx.rng)
        x = one_hot(ctx.space, cands)
        pred = model.predict(np.hstack([x, np.full((len(x), 1), target_probe, dtype=np.float32)]))
        order = np.argsort(-pred, kind="stable")
        return [cands[i] for i in order]

    def ask(self, n: int) -> list:
        if self._queue is None:
            if self.is_new(self.ctx.probe):
                return [self.ctx.probe]
            self._queue = self._rank(self.evaluated[self.ctx.hash(self.ctx.probe)][1])
        return self.take_new(self._queue, n)
