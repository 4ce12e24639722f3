"""Oracles answer "what is architecture a worth on the target task?" and keep the trajectory.

* :class:`TabularOracle` looks results up in a store.  For an exhaustive table
  (every architecture of the space evaluated: NB201, TransNAS micro,
  NAS-Bench-Graph) any architecture can be asked.  For a sampled table (a
  NASNet store) only the evaluated pool can: asking for anything else raises
  :class:`OutOfPoolError` - the oracle never substitutes another architecture;
  the predictor-based optimizers screen the pool with their surrogate instead.
* :class:`LiveOracle` trains the architecture with the harness and appends the
  result to a store (see :mod:`nasbench_xfer.harness`).

Budget: every distinct architecture costs one unit; asking again for an
architecture already evaluated in this search returns the recorded result at
no cost and is not added to the trajectory.

Direction: :meth:`Oracle.evaluate` returns a *score*, higher is better (the
validation metric, negated for a lower-is-better task such as a loss); the
trajectory records the raw metrics and the score.
"""
from __future__ import annotations

from typing import Any, Hashable, Sequence

import numpy as np
import pandas as pd

from .store import Store, StoreError


class OracleError(ValueError):
    """The oracle cannot answer as asked."""


class OutOfPoolError(OracleError):
    """An optimizer asked a sampled table for an architecture it does not hold."""


class BudgetExhausted(OracleError):
    """More evaluations were asked than the budget allows."""


class Oracle:
    """Common bookkeeping: budget, cache and trajectory."""

    restricted = False
    candidates: list | None = None
    #: +1 for a higher-is-better metric, -1 for a lower-is-better one
    sign = 1.0

    def __init__(self, space, target: str, budget: int | None = None):
        self.space = space
        self.target = target
        self.budget = budget
        self._seen: dict[str, dict[str, Any]] = {}
        self.trajectory: list[dict[str, Any]] = []

    @property
    def used(self) -> int:
        return len(self.trajectory)

    def _lookup(self, arch: Hashable) -> dict[str, Any]:
        raise NotImplementedError

    def evaluate(self, arch: Hashable) -> float:
        """Score (validation metric, oriented higher-is-better) of ``arch`` on the target;
        one budget unit if new."""
        h = self.space.hash(arch)
        if h in self._seen:
            return self._seen[h]["score"]
        if self.budget is not None and self.used >= self.budget:
            raise BudgetExhausted(f"budget of {self.budget} evaluations is used up")
        rec = self._lookup(arch)
        rec = {"step": self.used + 1, "hash": h, **rec, "score": self.sign * rec["val_metric"]}
        prev = self.trajectory[-1] if self.trajectory else None
        if prev is None or rec["score"] > prev["best_score"]:
            rec["best_score"], rec["best_val"] = rec["score"], rec["val_metric"]
            rec["test_at_best"] = rec.get("test_metric", np.nan)
        else:
            for k in ("best_score", "best_val", "test_at_best"):
                rec[k] = prev[k]
        self._seen[h] = rec
        self.trajectory.append(rec)
        return rec["score"]

    def trajectory_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.trajectory)


class TabularOracle(Oracle):
    """Answers from a store's evaluations of ``target`` (mean over seeds)."""

    def __init__(self, store: Store, target: str, budget: int | None = None):
        if target not in store.tasks:
            raise OracleError(f"target task {target!r} is not in {store.path} "
                              f"(tasks: {', '.join(store.tasks)})")
        super().__init__(store.space, target, budget)
        self.store = store
        self.sign = 1.0 if store.task_info(target)["higher_is_better"] else -1.0
        self.val = store.metric_table(target, "val_metric")
        self.test = store.metric_table(target, "test_metric")
        self.pool_ids = np.flatnonzero(~np.isnan(self.val))
        if len(self.pool_ids) == 0:
            raise OracleError(f"target task {target!r} has no evaluations in {store.path}")
        size = getattr(store.space, "size", None)
        self.exhaustive = size is not None and len(self.pool_ids) >= size
        self.restricted = not self.exhaustive
        if budget is not None and budget > len(self.pool_ids):
            raise OracleError(f"budget {budget} is larger than the {len(self.pool_ids)} architectures "
                              f"evaluated on {target!r}")
        self._candidates: list | None = None

    @property
    def candidates(self) -> list:  # type: ignore[override]
        if self._candidates is None:
            self._candidates = self.store.archs(self.pool_ids)
        return self._candidates

    def best_score(self) -> float:
        """The table's best score (for regret)."""
        return float(np.nanmax(self.sign * self.val))

    def scores(self) -> np.ndarray:
        """Score of every pool member (for top-k thresholds)."""
        return self.sign * self.val[self.pool_ids]

    def _lookup(self, arch: Hashable) -> dict[str, Any]:
        try:
            i = int(self.store.arch_ids([arch])[0])
        except Exception as exc:
            raise OracleError(f"cannot look up {arch!r} in space {self.space.name}: {exc}") from None
        if i < 0 or np.isnan(self.val[i]):
            kind = "sampled" if self.restricted else "exhaustive"
            raise OutOfPoolError(
                f"architecture {self.space.hash(arch)} is not among the {len(self.pool_ids)} "
                f"architectures evaluated on {self.target!r} ({kind} table); "
                f"optimizers must choose from ctx.candidates")
        return {"arch_id": i, "spec": self.space.to_string(self.store.archs([i])[0]),
                "val_metric": float(self.val[i]), "test_metric": float(self.test[i])}


def load_task_data(store: Store, tasks: Sequence[str], max_per_task: int | None = None,
                   rng: np.random.Generator | None = None):
    """Source knowledge from a store: ``{task: TaskData(archs, scores)}``, scores = mean val metric
    oriented higher-is-better (:meth:`Store.score_table`).

    ``max_per_task`` keeps a random subset (``rng``) of each task's architectures,
    as in the paper's 200 random architectures per source task.
    """
    from .optimizer import TaskData

    out = {}
    for t in tasks:
        if t not in store.tasks:
            raise StoreError(f"task {t!r} is not in {store.path} (tasks: {', '.join(store.tasks)})")
        table = store.score_table(t)
        ids = np.flatnonzero(~np.isnan(table))
        if max_per_task is not None and len(ids) > max_per_task:
            ids = np.sort((rng or np.random.default_rng(0)).choice(ids, max_per_task, replace=False))
        out[t] = TaskData(store.archs(ids), table[ids])
    return out
