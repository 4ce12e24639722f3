"""A surrogate benchmark behind the oracle interface: any architecture of the space answered.

:class:`SurrogateOracle` is an :class:`~nasbench_xfer.oracle.Oracle` like the tabular one
(budget, cache, trajectory, scores oriented higher-is-better), but unrestricted: every
architecture of the space gets an answer, so optimizers that propose new architectures
(XferNAS's gradient ascent) need no candidate pool.  Each evaluation is one noisy draw
(the surrogate's noise model, seeded per search seed and architecture, so a search is
reproducible and asking again in the same search returns the same value), and records
``train_seconds`` from the surrogate's cost model where it has one.

Regret compares means, never draws.  Each trajectory row also records the answer's mean
prediction (``mean_metric``) and the *incumbent's* (the architecture with the best draw so far:
what the search would return) as ``incumbent_mean_score``; regret is the task's best mean minus
that, so a lucky draw does not lower it and it cannot fall below 0 where the reference is the
whole space.  The task's best is :meth:`SurrogateOracle.best_score`, the best *mean* prediction
over a reference set of architectures: the ``reference`` given (e.g. the store's evaluated
architectures of the task), else the whole space where it is enumerable and holds at most
``max(reference_size, whole_space_up_to)`` distinct architectures (TransNAS-Bench-101 micro,
NAS-Bench-201, NAS-Bench-Graph), else ``reference_size`` architectures sampled with seed 0 (the
reference set of a surrogate read as a table; an incumbent outside it can beat its best, so
regret can be negative there); the choice is stated in :attr:`SurrogateOracle.reference`.
"""
from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from ..oracle import Oracle, OracleError
from .benchmark import SurrogateBenchmark

__all__ = ["SurrogateOracle"]


class SurrogateOracle(Oracle):
    """Answers from a :class:`SurrogateBenchmark` (see the module doc)."""

    restricted = False

    def __init__(self, surrogate: SurrogateBenchmark, target: str, budget: int | None = None, *,
                 seed: int = 0, noisy: bool = True, reference: Sequence[Hashable] | None = None,
                 reference_size: int = 10_000, whole_space_up_to: int = 100_000):
        if target not in surrogate.tasks:
            raise OracleError(f"target task {target!r} is not in the surrogate (tasks: {', '.join(surrogate.tasks)})")
        super().__init__(surrogate.space, target, budget)
        self.surrogate = surrogate
        self.seed = int(seed)
        self.noisy = bool(noisy)
        info = surrogate.info()["tasks"][target]
        self.sign = 1.0 if info["higher_is_better"] else -1.0
        if reference is None:
            from .view import _reference_set

            ref, how = _reference_set(surrogate.space, int(reference_size), whole_up_to=int(whole_space_up_to))
            self.reference = f"{len(ref)} architectures ({how})"
        else:
            ref = list(reference)
            self.reference = f"{len(ref)} given architectures"
        self._ref_scores = self.sign * surrogate.predict(target, ref)
        self.candidates = None

    def best_score(self) -> float:
        """Best mean score over the reference set (for regret; see the module doc)."""
        return float(np.max(self._ref_scores))

    def scores(self) -> np.ndarray:
        """Mean scores of the reference set (for top-k thresholds)."""
        return self._ref_scores

    def _draw_seed(self, h: str) -> int:
        return int.from_bytes(hashlib.sha256(f"{self.seed}:{h}".encode()).digest()[:8], "little")

    def _lookup(self, arch: Hashable) -> dict[str, Any]:
        try:
            h = self.space.hash(arch)
            mean = float(self.surrogate.predict(self.target, [arch])[0])
            val = (float(self.surrogate.draw(self.target, [arch], np.random.default_rng(self._draw_seed(h)))[0])
                   if self.noisy else mean)
            secs = float(self.surrogate.cost(self.target, [arch])[0])
        except Exception as exc:  # noqa: BLE001 - one clear error for a bad architecture
            raise OracleError(f"cannot evaluate {arch!r} on the surrogate of {self.target!r}: {exc}") from None
        return {"arch_id": -1, "spec": self.space.to_string(arch), "val_metric": val, "mean_metric": mean,
                "test_metric": np.nan, "train_seconds": secs}
