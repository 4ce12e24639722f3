"""XferNAS as a search strategy (paper section 2.3), and the surrogate search NAO shares with it.

XferNAS has two phases:

1. *No target knowledge.*  The transfer predictor is fitted on the source
   tasks only (the target is predicted by the universal network); the
   starting points are the best architectures of the source tasks
   (``starts_per_task`` from each) and the step size is the paper's
   ``eta = 10``.
2. *Target knowledge.*  The starting points are the best architectures
   evaluated on the target (``n_starts``); step sizes grow from small to large
   until enough new architectures are found (NAO's rule).

Refit schedule: the predictor is fitted before the first proposal and refitted
from scratch whenever ``refit_every`` new target evaluations have arrived since
the last fit (default 5); between refits, proposals of the last fit are
evaluated in order of their predicted score.

On a sampled table (``ctx.restricted``) only pool members can be evaluated:
gradient-ascent proposals that are in the pool are taken first, the rest of
each batch are the unevaluated pool members the surrogate ranks highest
("surrogate screening").  The oracle itself never substitutes architectures.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .optimizer import Optimizer, OptimizerError, SearchContext


class SurrogateSearch(Optimizer):
    """Shared loop of XferNAS and NAO: fit the predictor, propose by gradient ascent, screen."""

    transfer = True

    def __init__(self, refit_every: int = 5, n_starts: int = 5, starts_per_task: int = 5,
                 phase1_step: float = 10.0, step_sizes: Sequence[float] | None = None,
                 n_init: int = 0, **predictor_options: Any):
        if refit_every < 1 or n_starts < 1:
            raise OptimizerError("refit_every and n_starts must be positive")
        self.refit_every = refit_every
        self.n_starts = n_starts
        self.starts_per_task = starts_per_task
        self.phase1_step = phase1_step
        self.step_sizes = tuple(step_sizes) if step_sizes is not None else None
        self.n_init = n_init
        self.predictor_options = predictor_options

    def setup(self, ctx: SearchContext) -> None:
        super().setup(ctx)
        self._queue: list = []
        self._fitted_at = -1
        self.fits = 0
        self._pool_hashes = ({ctx.hash(a) for a in ctx.candidates}
                             if ctx.restricted and ctx.candidates is not None else None)

    # -- pieces --------------------------------------------------------------
    def _history(self) -> dict:
        archs = [a for a, _ in self.evaluated.values()]
        scores = np.array([s for _, s in self.evaluated.values()], dtype=float)
        hist = dict(self.ctx.sources) if self.transfer else {}
        hist[self.ctx.target] = (archs, scores)
        return hist

    def _fit(self):
        from .predictor import TransferPredictor

        seed = int(self.ctx.rng.integers(2 ** 31))
        model = TransferPredictor(self.ctx.space, transfer=self.transfer, seed=seed,
                                  **self.predictor_options)
        model.fit(self._history(), target=self.ctx.target)
        self.fits += 1
        return model

    def _starts(self) -> tuple[list, Sequence[float] | None]:
        if self.evaluated:
            return self.best_evaluated(self.n_starts), self.step_sizes
        starts = []
        for data in self.ctx.sources.values():
            order = np.argsort(-np.asarray(data.scores), kind="stable")[: self.starts_per_task]
            starts += [data.archs[i] for i in order]
        return starts, (self.phase1_step,)

    def _random(self, n: int, taken: Sequence = ()) -> list:
        out = list(taken)
        n += len(out)
        pool = self.ctx.candidates
        tries = 0
        while len(out) < n and tries < 100 * n + 100:
            tries += 1
            a = pool[int(self.ctx.rng.integers(len(pool)))] if pool is not None \
                else self.ctx.space.sample(self.ctx.rng)
            if self.is_new(a) and all(self.ctx.hash(a) != self.ctx.hash(b) for b in out):
                out.append(a)
        return out[len(taken):]

    def _refill(self, want: int) -> None:
        model = self._fit()
        starts, steps = self._starts()
        exclude = [a for a, _ in self.evaluated.values()]
        kwargs = {} if steps is None else {"step_sizes": steps}
        props = model.propose(self.ctx.target, starts, n=max(want, self.refit_every),
                              exclude=exclude, **kwargs)
        chosen = [p.arch for p in props]
        if self._pool_hashes is not None:
            chosen = [a for a in chosen if self.ctx.hash(a) in self._pool_hashes]
        if len(chosen) < want and self.ctx.candidates is not None:
            # screen the unevaluated pool with the surrogate
            taken = {self.ctx.hash(a) for a in chosen}
            rest = [a for a in self.ctx.candidates
                    if self.is_new(a) and self.ctx.hash(a) not in taken]
            if rest:
                pred = model.predict(self.ctx.target, rest)
                for i in np.argsort(-pred, kind="stable")[: max(want, self.refit_every) - len(chosen)]:
                    chosen.append(rest[i])
        self._queue = chosen
        self._fitted_at = len(self.evaluated)

    # -- protocol ------------------------------------------------------------
    def ask(self, n: int) -> list:
        if len(self.evaluated) < self.n_init:
            return self._random(min(n, self.n_init - len(self.evaluated)))
        stale = len(self.evaluated) - self._fitted_at >= self.refit_every
        self._queue = [a for a in self._queue if self.is_new(a)]
        if self._fitted_at < 0 or stale or len(self._queue) < n:
            self._refill(n)
        out, self._queue = self._queue[:n], self._queue[n:]
        if len(out) < n:  # the surrogate found nothing new: fall back to random picks
            out += self._random(n - len(out), taken=out)
        return out


class XferNAS(SurrogateSearch):
    """XferNAS (Wistuba 2019): NAO with the transfer network, warm-started from source knowledge."""

    name = "xfernas"
    transfer = True

    def setup(self, ctx: SearchContext) -> None:
        if not ctx.sources:
            raise OptimizerError("xfernas needs source tasks (use nao for search without transfer)")
        super().setup(ctx)
