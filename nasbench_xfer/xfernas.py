"""XferNAS as a search strategy (paper section 2.3), and the surrogate search NAO shares with it.

XferNAS has two phases:

1. *No target knowledge.*  The transfer predictor is fitted on the source
   tasks only (the target is predicted by the universal network).
2. *Target knowledge.*  The predictor is refitted with the target's
   evaluations; proposals start from the best architectures evaluated on the
   target.

Proposal rules (option ``proposal``):

* ``"hybrid"`` (default) - every refit ranks a large candidate set with the
  surrogate ("screening": the target's table when the oracle is tabular, else
  ``n_screen`` architectures sampled from the space) and adds NAO's
  gradient-ascent proposals (below); the batch is the best predicted of both,
  so in phase 1 the first evaluations are the sources' consensus (the
  universal network's top picks) and gradient ascent contributes wherever it
  finds something the sample missed.  Gradient ascent here keeps any new
  architecture (no improvement filter in phase 1).
* ``"ascent"`` - NAO-style proposals, as the paper compares against them: gradient
  ascent in code space (equation 8) from the best architectures of each source
  task (phase 1: ``starts_per_task`` per source, step ``phase1_step``, the
  paper's eta = 10, on this package's z-scored scale rather than NAO's sigmoid
  output) or the best evaluated on the target (phase 2: ``n_starts``; step sizes
  growing until enough new architectures are found); on a sampled table the rest
  of the batch is filled by screening the pool.  Two additions to NAO's published
  rule are on by default: up to ``ascent_steps`` (10) repeated steps per start and
  step size, decoding after each (NAO takes one), and ``ascent_filter``: only
  proposals predicted better than their start are kept (NAO keeps any new one).
  ``ascent_filter=False, ascent_steps=1`` gives NAO's one-step rule.

Refit schedule: the predictor is fitted before the first proposal and refitted
whenever ``refit_every`` new target evaluations have arrived (default 5).
With ``warm_start`` (default) a refit continues from the previous fit's
weights for ``warm_steps`` Adam steps instead of training from scratch (the
first fit is a full one).  Between refits, proposals of the last fit are
evaluated in order of their predicted score.

Hedging against sources that mislead (option ``hedge``, XferNAS only, default on):
from the first refit with target evaluations on, a second predictor is fitted on
the target's evaluations alone (NAO's model, warm-started like the transfer
model), and each fit's predictions of the architectures evaluated after it are
kept.  These are out-of-sample: every architecture was predicted before it was
evaluated.  From them the two models are scored by the fraction of correctly
ordered pairs within each batch (predictions of one fit are only compared with
each other), and ``w`` = the probability that the target-only model ranks better
(a bootstrap over batches; 0 until ``hedge_min_batches`` batches are scored).
Screening then ranks the candidates (the unevaluated pool plus the ascent
proposals) by ``(1 - w) * rank(transfer) + w * rank(target-only)``, with ranks
scaled to [0, 1].  Where the sources rank the target well, ``w`` stays near 0 and
the search is the transfer model's.  Where the target-only model ranks better
(a target unlike its sources), the search moves towards NAO's.
``self.hedge_log`` records ``(evaluations, w, batches)`` at every refit, and the
proposals of a hedged ranking are tagged ``screen-hedged``.

Training targets (option ``scores``): ``"rank"`` (XferNAS's default) fits the predictors
on each task's normal scores (``Phi^-1((rank - 1/2) / n)`` over the task's evaluations,
ties sharing their mean rank); ``"raw"`` (NAO's default, and the paper's) on the tasks'
metrics, each z-scored by the predictor.  A search only uses the order of the predictions,
and normal scores put tasks whose metrics have different shapes (a long tail of very poor
architectures on one, a symmetric spread on another) on the same footing, so the universal
network learns where the tasks agree on ranks rather than on a few outliers.  Measured on
TransNAS-Bench-101 (``docs/results/warmstart-rank/``, 30 seeds; ``docs/results/compare-rank/``):
after 10 evaluations XferNAS beats NAO and random significantly on 5 of 7 targets with
normal scores, 4 of 7 with raw scores.

Every proposal records where it came from (``self.origins``: ``screen``,
``ascent``, ``random``, ``init``), which the search runner writes to the
trajectory's ``origin`` column; phase-1 screening is ``screen-sources``.

On a sampled table (``ctx.restricted``) only pool members can be evaluated.
The oracle itself never substitutes architectures.
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np

from .optimizer import Optimizer, OptimizerError, SearchContext

PROPOSALS = ("hybrid", "ascent")
SCORES = ("raw", "rank")


class SurrogateSearch(Optimizer):
    """Shared loop of XferNAS and NAO: fit the predictor, propose (screening and/or gradient ascent)."""

    transfer = True

    def __init__(self, refit_every: int = 5, n_starts: int = 5, starts_per_task: int = 5,
                 phase1_step: float = 10.0, step_sizes: Sequence[float] | None = None,
                 n_init: int = 0, proposal: str = "hybrid", warm_start: bool = True,
                 warm_steps: int = 50, n_screen: int = 2000, hedge: bool = True,
                 hedge_min_batches: int = 2, scores: str = "raw", ascent_filter: bool = True,
                 ascent_steps: int = 10, **predictor_options: Any):
        for key, v, low in (("refit_every", refit_every, 1), ("n_starts", n_starts, 1),
                            ("ascent_steps", ascent_steps, 1),
                            ("starts_per_task", starts_per_task, 1), ("n_init", n_init, 0),
                            ("warm_steps", warm_steps, 1), ("n_screen", n_screen, 1),
                            ("hedge_min_batches", hedge_min_batches, 1)):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < low:
                raise OptimizerError(f"{key} must be an integer >= {low}, got {v!r}")
        for key, v in (("warm_start", warm_start), ("hedge", hedge), ("ascent_filter", ascent_filter)):
            if not isinstance(v, (bool, np.bool_)):
                raise OptimizerError(f"{key} must be true or false, got {v!r} ({type(v).__name__})")
        if (isinstance(phase1_step, (bool, np.bool_)) or not isinstance(phase1_step, (int, float, np.number))
                or not phase1_step > 0):
            raise OptimizerError(f"phase1_step must be a number > 0, got {phase1_step!r}")
        if step_sizes is not None and (isinstance(step_sizes, (str, bytes)) or not len(step_sizes) or not all(
                isinstance(x, (int, float, np.number)) and not isinstance(x, bool) and x > 0 for x in step_sizes)):
            raise OptimizerError(f"step_sizes must be a non-empty list of numbers > 0, got {step_sizes!r}")
        if predictor_options:
            from .predictor.model import PredictorConfig

            try:
                PredictorConfig.from_dict({**PredictorConfig().to_dict(), **predictor_options})
            except (TypeError, ValueError) as exc:
                own = [n for n in inspect.signature(SurrogateSearch.__init__).parameters
                       if n not in ("self", "predictor_options")]
                raise OptimizerError(f"{exc} (the search's own options: {', '.join(own)}; the others "
                                     f"go to the predictor: PredictorConfig's fields)") from None
        if proposal not in PROPOSALS:
            raise OptimizerError(f"proposal must be one of {', '.join(PROPOSALS)}, got {proposal!r}")
        if scores not in SCORES:
            raise OptimizerError(f"scores must be one of {', '.join(SCORES)}, got {scores!r}")
        self.refit_every = refit_every
        self.n_starts = n_starts
        self.starts_per_task = starts_per_task
        self.phase1_step = phase1_step
        self.step_sizes = tuple(step_sizes) if step_sizes is not None else None
        self.n_init = n_init
        self.proposal = proposal
        self.warm_start = bool(warm_start)
        self.warm_steps = warm_steps
        self.n_screen = n_screen
        self.hedge = bool(hedge)
        self.hedge_min_batches = hedge_min_batches
        self.scores = scores
        self.ascent_filter = bool(ascent_filter)
        self.ascent_steps = ascent_steps
        self.predictor_options = predictor_options

    def setup(self, ctx: SearchContext) -> None:
        super().setup(ctx)
        self._queue: list = []
        self._sources: dict[str, tuple[list, np.ndarray]] | None = None
        self._fitted_at = -1
        self._model = None
        self.fits = 0
        self.fit_seconds = 0.0
        self._seed = 0
        self._target_model = None
        self._scored: set[str] = set()
        self._batches: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.hedge_log: list[tuple[int, float, int]] = []
        self._pool_hashes = ({ctx.hash(a) for a in ctx.candidates}
                             if ctx.restricted and ctx.candidates is not None else None)

    # -- pieces --------------------------------------------------------------
    def _fit_scores(self, scores: np.ndarray) -> np.ndarray:
        """The training targets the predictors see (option ``scores``)."""
        from .evaluate.stats import normal_scores

        return normal_scores(scores) if self.scores == "rank" else scores

    def _target_history(self) -> tuple[list, np.ndarray]:
        """The target's evaluations so far as the predictors are fitted on them: (architectures,
        scores, transformed by option ``scores``)."""
        archs = [a for a, _ in self.evaluated.values()]
        scores = np.array([s for _, s in self.evaluated.values()], dtype=float)
        return archs, self._fit_scores(scores)

    def _history(self) -> dict:
        hist: dict[str, Any] = {}
        if self.transfer:
            if self._sources is None:
                self._sources = {t: (d.archs, self._fit_scores(np.asarray(d.scores, dtype=float)))
                                 for t, d in self.ctx.sources.items()}
            hist.update(self._sources)
        hist[self.ctx.target] = self._target_history()
        return hist

    def _fit(self):
        import time

        from .predictor import TransferPredictor

        seed = int(self.ctx.rng.integers(2 ** 31))
        self._seed = seed
        model = TransferPredictor(self.ctx.space, transfer=self.transfer, seed=seed,
                                  **self.predictor_options)
        t0 = time.perf_counter()
        if self.warm_start and self._model is not None:
            model.fit(self._history(), target=self.ctx.target, init=self._model, steps=self.warm_steps)
        else:
            model.fit(self._history(), target=self.ctx.target)
        self.fit_seconds += time.perf_counter() - t0
        self.fits += 1
        self._model = model
        return model

    # -- hedge ---------------------------------------------------------------
    @property
    def _hedging(self) -> bool:
        return self.hedge and self.transfer and self.proposal == "hybrid"

    def _fit_target_only(self):
        """NAO's model on the target's evaluations alone (seeded from the transfer fit's seed, so
        hedging draws nothing from the search's random stream)."""
        import time

        from .predictor import TransferPredictor

        model = TransferPredictor(self.ctx.space, **{**self.predictor_options, "transfer": False,
                                                     "seed": (self._seed + 1) % 2 ** 31})
        t0 = time.perf_counter()
        init = self._target_model
        model.fit({self.ctx.target: self._target_history()}, init=init,
                  steps=self.warm_steps if init is not None and self.warm_start else None)
        self.fit_seconds += time.perf_counter() - t0
        self.fits += 1
        self._target_model = model
        return model

    def _score_experts(self) -> None:
        """Out-of-sample scoring: the architectures evaluated since the last refit, as the last
        transfer and target-only fits predicted them (before they were evaluated)."""
        new = [(h, a, y) for h, (a, y) in self.evaluated.items() if h not in self._scored]
        self._scored.update(h for h, _, _ in new)
        if self._model is None or self._target_model is None or len(new) < 2:
            return
        archs = [a for _, a, _ in new]
        y = np.array([v for _, _, v in new], dtype=float)
        self._batches.append((self._model.predict(self.ctx.target, archs),
                              self._target_model.predict(self.ctx.target, archs), y))

    def _target_weight(self) -> float:
        """P(the target-only model orders pairs better than the transfer model), by a bootstrap
        over the scored batches; 0 until ``hedge_min_batches`` batches are scored."""
        if len(self._batches) < self.hedge_min_batches:
            return 0.0
        counts = np.array([(_concordant(px, y), _concordant(pn, y)) for px, pn, y in self._batches])
        rng = np.random.default_rng(self._seed)
        idx = rng.integers(len(counts), size=(500, len(counts)))
        tot = counts[idx].sum(axis=1)  # (500, 2): transfer, target-only
        return float(np.mean(tot[:, 1] > tot[:, 0]) + 0.5 * np.mean(tot[:, 1] == tot[:, 0]))

    def _hedged(self, model, target_model, w: float, asc: dict, size: int) -> list[tuple[Any, str]]:
        """The ``size`` candidates (unevaluated pool + ascent proposals) best by the weighted
        mean of the two models' ranks: (arch, origin)."""
        pool = [(p.arch, "ascent") for p in asc.values()] + \
            [(a, "screen-hedged") for a in self._unevaluated(set(asc))]
        if not pool:
            return []
        archs = [a for a, _ in pool]
        rx = _unit_ranks(model.predict(self.ctx.target, archs))
        rn = _unit_ranks(target_model.predict(self.ctx.target, archs))
        score = (1.0 - w) * rx + w * rn
        return [pool[i] for i in np.argsort(-score, kind="stable")[:size]]

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

    def _unevaluated(self, taken: set) -> list:
        """The candidate pool (the table's, or ``n_screen`` architectures sampled from the space),
        without the evaluated architectures, the hashes in ``taken`` and repeats."""
        cands = self.ctx.candidates
        if cands is None:
            cands = self.ctx.space.candidate_pool(self.n_screen, self.ctx.rng)
        rest, seen = [], set(taken)
        for a in cands:
            h = self.ctx.hash(a)
            if h not in seen and self.is_new(a):
                seen.add(h)
                rest.append(a)
        return rest

    def _screen(self, model, k: int, taken: set) -> list[tuple[float, Any]]:
        """The ``k`` unevaluated candidates the surrogate ranks highest: (prediction, arch)."""
        rest = self._unevaluated(taken)
        if not rest or k < 1:
            return []
        pred = model.predict(self.ctx.target, rest)
        return [(float(pred[i]), rest[i]) for i in np.argsort(-pred, kind="stable")[:k]]

    def _refill(self, want: int) -> None:
        if self._hedging:
            self._score_experts()
        model = self._fit()
        phase1 = not self.evaluated
        target_model = self._fit_target_only() if self._hedging and len(self.evaluated) >= 2 else None
        w = self._target_weight() if target_model is not None else 0.0
        if target_model is not None:
            self.hedge_log.append((len(self.evaluated), w, len(self._batches)))
        starts, steps = self._starts()
        exclude = [a for a, _ in self.evaluated.values()] + list(self.pending.values())
        kwargs = {} if steps is None else {"step_sizes": steps}
        size = max(want, self.refit_every)
        props = model.propose(self.ctx.target, starts, n=size, exclude=exclude, max_steps=self.ascent_steps,
                              require_improvement=self.ascent_filter and not (self.proposal == "hybrid" and phase1),
                              **kwargs)
        if self._pool_hashes is not None:
            props = [p for p in props if self.ctx.hash(p.arch) in self._pool_hashes]
        screen_tag = "screen-sources" if phase1 and self.transfer else "screen"
        if self.proposal == "ascent":
            chosen = [p.arch for p in props]
            for a in chosen:
                self.origins[self.ctx.hash(a)] = "ascent"
            if len(chosen) < want and self.ctx.candidates is not None:
                # NAO's loop on a sampled table: screen the unevaluated pool with the surrogate
                for _, a in self._screen(model, size - len(chosen), {self.ctx.hash(a) for a in chosen}):
                    chosen.append(a)
                    self.origins.setdefault(self.ctx.hash(a), screen_tag)
        elif w > 0:
            chosen = []
            for a, tag in self._hedged(model, target_model, w, {self.ctx.hash(p.arch): p for p in props}, size):
                chosen.append(a)
                self.origins.setdefault(self.ctx.hash(a), tag)
        else:
            asc = {self.ctx.hash(p.arch): p for p in props}
            screened = self._screen(model, size, set(asc))
            ranked = [(p.score, p.arch, "ascent") for p in asc.values()] + \
                     [(v, a, screen_tag) for v, a in screened]
            ranked.sort(key=lambda t: -t[0])
            chosen = []
            for _, a, tag in ranked[:size]:
                chosen.append(a)
                self.origins.setdefault(self.ctx.hash(a), tag)
        self._queue = chosen
        self._fitted_at = len(self.evaluated)

    # -- protocol ------------------------------------------------------------
    def ask(self, n: int) -> list:
        started = len(self.evaluated) + len(self.pending)  # in flight counts (asynchronous batches)
        if started < self.n_init:
            out = self._random(min(n, self.n_init - started))
            for a in out:
                self.origins.setdefault(self.ctx.hash(a), "init")
            return out
        stale = len(self.evaluated) - self._fitted_at >= self.refit_every
        self._queue = [a for a in self._queue if self.is_new(a)]
        if self._fitted_at < 0 or stale or len(self._queue) < n:
            self._refill(n)
        out, self._queue = self._queue[:n], self._queue[n:]
        if len(out) < n:  # the surrogate found nothing new: fall back to random picks
            extra = self._random(n - len(out), taken=out)
            for a in extra:
                self.origins[self.ctx.hash(a)] = "random"
            out += extra
        return out


class XferNAS(SurrogateSearch):
    """XferNAS (Wistuba 2019): NAO with the transfer network, warm-started from source knowledge."""

    name = "xfernas"
    transfer = True

    def __init__(self, scores: str = "rank", **options: Any):
        super().__init__(scores=scores, **options)

    def setup(self, ctx: SearchContext) -> None:
        if not ctx.sources:
            raise OptimizerError("xfernas needs source tasks (use nao for search without transfer)")
        super().setup(ctx)


def _concordant(pred: np.ndarray, y: np.ndarray) -> float:
    """Correctly ordered pairs of ``y`` by ``pred`` (pairs tied in ``y`` skipped; a tie in
    ``pred`` counts a half)."""
    from .evaluate.stats import concordance_matrix

    return float(np.triu(concordance_matrix(pred, y), 1).sum())


def _unit_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks of ``x`` scaled to [0, 1] (ties share their mean rank)."""
    from scipy.stats import rankdata

    return (rankdata(x) - 1.0) / max(len(x) - 1, 1)

