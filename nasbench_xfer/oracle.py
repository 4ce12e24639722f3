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

Incumbent: the architecture with the best score so far (``best_score``).  An oracle
whose answers are noisy draws (a surrogate) also records each answer's noiseless
``mean_metric``/``mean_score`` and the incumbent's ``incumbent_mean_score``: regret
is measured on that (:func:`nasbench_xfer.evaluate.search.add_regret`), so a lucky
draw does not count as a better architecture.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

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
        kept = ["best_score", "best_val", "test_at_best"]
        if "mean_metric" in rec:  # a noisy oracle: the incumbent is scored by its mean too
            rec["mean_score"] = self.sign * rec["mean_metric"]
            kept.append("incumbent_mean_score")
        prev = self.trajectory[-1] if self.trajectory else None
        if prev is None or rec["score"] > prev["best_score"]:
            rec["best_score"], rec["best_val"] = rec["score"], rec["val_metric"]
            rec["test_at_best"] = rec.get("test_metric", np.nan)
            if "mean_score" in rec:
                rec["incumbent_mean_score"] = rec["mean_score"]
        else:
            for k in kept:
                rec[k] = prev[k]
        self._seen[h] = rec
        self.trajectory.append(rec)
        return rec["score"]

    def seen(self, arch: Hashable) -> bool:
        """Whether ``arch`` was evaluated in this search (asking again would cost nothing)."""
        return self.space.hash(arch) in self._seen

    def trajectory_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.trajectory)


class TabularOracle(Oracle):
    """Answers from a store's evaluations of ``target`` (mean over seeds)."""

    def __init__(self, store: Store, target: str, budget: int | None = None, *, epoch_budget: int | None = None):
        if target not in store.tasks:
            raise OracleError(f"target task {target!r} is not in {store.path} "
                              f"(tasks: {', '.join(store.tasks)})")
        super().__init__(store.space, target, budget)
        self.store = store
        self.sign = 1.0 if store.task_info(target)["higher_is_better"] else -1.0
        self.val = store.metric_table(target, "val_metric")
        self.test = store.metric_table(target, "test_metric")
        #: training seconds per architecture (mean over seeds; NaN where the table has none):
        #: the simulated cost of an evaluation, for comparisons by time
        self.seconds = store.metric_table(target, "train_seconds")
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
        if epoch_budget is not None and (isinstance(epoch_budget, bool) or int(epoch_budget) < 1):
            raise OracleError(f"epoch_budget must be a positive number of epochs, got {epoch_budget!r}")
        #: multi-fidelity accounting (see :meth:`evaluate_at`): the training epochs spent, the
        #: limit, the epochs already paid per architecture, and every query at a fidelity
        self.epoch_budget = None if epoch_budget is None else int(epoch_budget)
        self.epochs_used = 0
        self._paid: dict[str, int] = {}
        self._at_epoch: dict[int, np.ndarray] = {}
        self.fidelity_trajectory: list[dict[str, Any]] = []

    # -- multi-fidelity: budget in epochs ------------------------------------
    def max_epochs(self) -> int:
        """Length of the target's learning curves (0: the table stores none)."""
        return int(self.store.max_epochs(self.target))

    def evaluate_at(self, arch: Hashable, epoch: int) -> float:
        """Score of ``arch`` after ``epoch`` training epochs: its validation curve (mean over
        seeds) at that epoch, oriented higher-is-better.  Costs the epochs not yet paid for this
        architecture, as if its training were continued from the furthest epoch asked before
        (the accounting of multi-fidelity benchmarks such as LCBench and NAS-Bench-201's
        curves); asking a lower epoch again is free.  Raises :class:`BudgetExhausted` past
        ``epoch_budget`` (nothing is charged then), :class:`OracleError` for an epoch the
        curves do not have.  Every query is kept in :attr:`fidelity_trajectory`."""
        width = self.max_epochs()
        if width == 0:
            raise OracleError(f"target task {self.target!r} stores no learning curves: "
                              f"there is no fidelity below the full training to ask")
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or not 1 <= epoch <= width:
            raise OracleError(f"epoch must be an integer from 1 to {width} (the curves' length), got {epoch!r}")
        i = self._lookup(arch)["arch_id"]
        h = self.space.hash(arch)
        cost = max(int(epoch) - self._paid.get(h, 0), 0)
        if self.epoch_budget is not None and self.epochs_used + cost > self.epoch_budget:
            raise BudgetExhausted(f"{cost} more epochs asked with {self.epoch_budget - self.epochs_used} "
                                  f"of the budget of {self.epoch_budget} epochs left")
        if epoch not in self._at_epoch:
            self._at_epoch[epoch] = self.store.metric_table(self.target, epoch=int(epoch))
        value = float(self._at_epoch[epoch][i])
        if np.isnan(value):
            raise OracleError(f"architecture {h} has no curve value after {epoch} epochs on {self.target!r}")
        self.epochs_used += cost
        self._paid[h] = max(self._paid.get(h, 0), int(epoch))
        score = self.sign * value
        self.fidelity_trajectory.append({"query": len(self.fidelity_trajectory) + 1, "hash": h, "epoch": int(epoch),
                                         "val_metric": value, "score": score, "epochs_cost": cost,
                                         "epochs_used": self.epochs_used})
        return score

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
                "val_metric": float(self.val[i]), "test_metric": float(self.test[i]),
                "train_seconds": float(self.seconds[i])}


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


class LiveOracle(Oracle):
    """Answers by training: each new architecture is trained with the harness under ``protocol``
    on ``task_data`` (a loaded image task) and its full record is appended to the store at
    ``store_path`` (task ``target``) as soon as it finishes.

    Nothing finished is trained twice: an architecture the store already holds for this
    task, protocol and seed is answered from the store (a killed search rerun with the same
    arguments continues where it stopped).  :meth:`evaluate_many` trains up to ``concurrent``
    architectures at once (:func:`~nasbench_xfer.harness.train.train_concurrent`); the
    trajectory records each evaluation's ``train_seconds`` (the budget in training time
    that searches can be compared by) and whether it came ``from_store``.
    Failed trainings count against the budget and score ``-inf``.
    """

    def __init__(self, store_path, target: str, task_data, protocol, *, seed: int = 0,
                 budget: int | None = None, device: str = "cpu", concurrent: int = 1, flags=None,
                 log=None, executor=None):
        from .harness.protocols import get_protocol
        from .space.nasnet import NASNetSpace
        self.protocol = get_protocol(protocol)
        super().__init__(NASNetSpace(self.protocol.num_blocks), target, budget)
        self.store_path = store_path
        self.task_data = task_data
        self.seed = int(seed)
        self.device = device
        self.concurrent = int(concurrent)
        self.flags = flags
        self.log = log or (lambda msg: None)
        self.executor = executor  # a Ray/SLURM executor trains each architecture as a task
        self.candidates = None
        self._pending: dict[str, dict[str, Any]] = {}

    def _stored(self, hashes: set[str]) -> dict[str, dict[str, Any]]:
        """Stored evaluations of this task, protocol and seed for ``hashes``."""
        from pathlib import Path
        if not Path(self.store_path).exists():
            return {}
        with Store.open(self.store_path) as st:
            if self.target not in st.tasks:
                return {}
            ev = st.evaluations(self.target, spec=True)
        ev = ev[(ev["protocol"] == self.protocol.name) & (ev["seed"] == self.seed) & ev["hash"].isin(hashes)]
        out = {}
        for row in ev.itertuples(index=False):
            if row.hash not in out or row.status == "ok":
                ok = row.status == "ok"
                out[row.hash] = {"arch_id": int(row.arch_id), "spec": row.spec,
                                 "val_metric": float(row.val_metric) if ok else -np.inf,
                                 "test_metric": float(row.test_metric) if ok else np.nan,
                                 "train_seconds": float(row.train_seconds), "status": str(row.status)}
        return out

    def _train_missing(self, new: Sequence[Hashable]) -> None:
        """Train what the store lacks of ``new`` (together), then stage their stored results."""
        from .harness.runner import run
        hashes = {self.space.hash(a) for a in new}
        before = self._stored(hashes)
        todo = [a for a in new if self.space.hash(a) not in before]
        if todo:
            run(self.store_path, self.task_data.name, todo, self.protocol,  # type: ignore[arg-type]  # NASNet space
                seeds=[self.seed], device=self.device, task_name=self.target, task_data=self.task_data,
                flags=self.flags, concurrent=self.concurrent, log=self.log, executor=self.executor)
        stored = self._stored(hashes)
        for a in new:
            h = self.space.hash(a)
            if h not in stored:
                raise OracleError(f"architecture {h} was trained but is not in {self.store_path}")
            self._pending[h] = dict(stored[h], from_store=h in before)

    # -- asynchronous use (the live search's slots) ---------------------------
    def stored(self, archs: Sequence[Hashable]) -> dict[str, dict[str, Any]]:
        """What the store holds of ``archs`` for this task, protocol and seed, by hash."""
        return self._stored({self.space.hash(a) for a in archs})

    def slots(self):
        """Training slots for :meth:`start`-as-you-go searches (the store is prepared first):
        :class:`~nasbench_xfer.harness.slots.ExecutorSlots` with an executor, else
        :class:`~nasbench_xfer.harness.slots.DeviceSlots` on this oracle's device."""
        from .harness.runner import prepare_store
        from .harness.slots import DeviceSlots, ExecutorSlots

        prepare_store(self.store_path, self.task_data, self.protocol, task_name=self.target)
        if self.executor is not None and not self.executor.local:
            return ExecutorSlots(self.executor, self.task_data, self.protocol, self.device, self.flags)
        return DeviceSlots(self.task_data, self.protocol, self.device, self.flags)

    def record(self, arch: Hashable, rec: dict[str, Any]) -> float:
        """Append a finished training's record to the store, then count it: its score."""
        from .harness.runner import _append_record

        _append_record(self.store_path, self.target, 600.0, rec, arch)  # type: ignore[arg-type]
        return self.answer(arch, from_store=False)

    def answer(self, arch: Hashable, *, from_store: bool = True) -> float:
        """Count an evaluation the store holds for this task, protocol and seed: its score."""
        h = self.space.hash(arch)
        row = self._stored({h}).get(h)
        if row is None:
            raise OracleError(f"architecture {h} is not in {self.store_path} for task {self.target!r}, "
                              f"protocol {self.protocol.name}, seed {self.seed}")
        self._pending[h] = dict(row, from_store=from_store)
        return self.evaluate(arch)

    def evaluate_many(self, archs: Sequence[Hashable]) -> list[float]:
        """Scores of ``archs``; the new ones trained together (up to ``concurrent`` at once)."""
        new: list = []
        for a in archs:
            h = self.space.hash(a)
            if h not in self._seen and all(self.space.hash(b) != h for b in new):
                new.append(a)
        if self.budget is not None and self.used + len(new) > self.budget:
            raise BudgetExhausted(f"{len(new)} new evaluations asked with {self.budget - self.used} "
                                  f"of the budget of {self.budget} left")
        if new:
            self._train_missing(new)
        return [self.evaluate(a) for a in archs]

    def _lookup(self, arch: Hashable) -> dict[str, Any]:
        h = self.space.hash(arch)
        if h not in self._pending:
            self._train_missing([arch])
        return self._pending.pop(h)
