"""A surrogate benchmark seen as `compare` and the baselines see a store.

:func:`open_benchmark` opens either a store or a surrogate file; both answer ``tasks``,
``space``, ``task_info``, ``score_table``, ``archs``, ``arch_hashes``, ``num_archs`` and
``path``, so the search code treats them alike.  For a surrogate the "table" is a
*reference set*: ``reference_size`` architectures sampled from the space with seed 0, each
answered once on every task by one noisy draw of the surrogate (seeded by task and
architecture, so the table is the same every time).  What each part of a search uses:

* **source knowledge** (``--source-size`` random architectures per source task) is drawn
  from that table: one noisy evaluation each, as a real source benchmark would give;
* **the target** is answered by :class:`~nasbench_xfer.surrogate.oracle.SurrogateOracle`:
  any architecture of the space (not only the reference set), a noisy draw per search
  seed; regret is the best *mean* prediction over the whole space (where it is enumerable
  and small enough) or else the reference set, minus the mean prediction of the search's
  incumbent (the architecture with the best draw so far);
* the probe baselines' shared probe architectures and the oracle baseline's task
  similarities come from the same table.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .benchmark import FORMAT, SurrogateBenchmark

__all__ = ["SurrogateView", "open_benchmark", "is_surrogate_file"]

#: architectures of the reference set (the surrogate's "table")
REFERENCE_SIZE = 10_000


def is_surrogate_file(path: str | os.PathLike) -> bool:
    """True if ``path`` is an HDF5 file written by :meth:`SurrogateBenchmark.save`."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            return f.attrs.get("format") == FORMAT
    except (OSError, ValueError):
        return False


def open_benchmark(path: str | os.PathLike) -> Any:
    """A :class:`~nasbench_xfer.store.Store` (read-only) or a :class:`SurrogateView` of ``path``."""
    if is_surrogate_file(path):
        return SurrogateView(SurrogateBenchmark.load(path), path)
    from ..store import Store

    return Store.open(path)


def _reference_set(space: Any, size: int, *, whole_up_to: int = 0) -> tuple[list, str]:
    """(architectures, how): every distinct architecture of an enumerable space that has at
    most ``max(size, whole_up_to)`` of them, else ``size`` architectures sampled with seed 0."""
    from ..space import EnumerableSpace

    whole = max(size, whole_up_to)
    if isinstance(space, EnumerableSpace) and space.dense_size <= 20 * whole:
        archs = space.distinct_archs()
        if len(archs) <= whole:
            return archs, "the whole space"
    return space.sample_many(size, np.random.default_rng(0)), "sampled with seed 0"


class SurrogateView:
    """A surrogate benchmark with a fixed reference set as its table (see the module doc)."""

    def __init__(self, surrogate: SurrogateBenchmark, path: str | os.PathLike,
                 reference_size: int = REFERENCE_SIZE):
        self.surrogate = surrogate
        self.path = Path(path)
        self.space = surrogate.space
        self.reference, self._how = _reference_set(self.space, int(reference_size))
        self.reference_size = len(self.reference)
        self._hashes: np.ndarray | None = None
        self._tables: dict[str, np.ndarray] = {}
        self._digest: str | None = None

    # -- context manager, like Store.open
    def __enter__(self) -> SurrogateView:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def close(self) -> None:
        return None

    @property
    def tasks(self) -> list[str]:
        return self.surrogate.tasks

    @property
    def num_archs(self) -> int:
        return self.reference_size

    def task_info(self, task: str) -> dict[str, Any]:
        if task not in self.surrogate.tasks:
            from .benchmark import SurrogateError

            raise SurrogateError(f"task {task!r} is not in the surrogate {self.path} "
                                 f"(tasks: {', '.join(self.surrogate.tasks)})")
        info = self.surrogate.info()["tasks"][task]
        return {"task": task, "metric": info["metric"], "higher_is_better": info["higher_is_better"],
                "surrogate": {"file": str(self.path), "model": self.surrogate.model_kind,
                              "noise": info["noise"], "reference": self.reference_description}}

    @property
    def reference_description(self) -> str:
        return (f"{self.reference_size} architectures ({self._how}), one noisy draw each on every task")

    def _draw_seed(self, task: str) -> int:
        return int.from_bytes(hashlib.sha256(f"table:{task}".encode()).digest()[:8], "little")

    def metric_table(self, task: str) -> np.ndarray:
        """One noisy draw of ``task``'s metric for every reference architecture (fixed)."""
        if task not in self._tables:
            rng = np.random.default_rng(self._draw_seed(task))
            self._tables[task] = self.surrogate.draw(task, self.reference, rng)
        return self._tables[task]

    def score_table(self, task: str) -> np.ndarray:
        """:meth:`metric_table` oriented higher-is-better."""
        sign = 1.0 if self.task_info(task)["higher_is_better"] else -1.0
        return sign * self.metric_table(task)

    def archs(self, ids: Sequence[int] | np.ndarray | None = None) -> list:
        if ids is None:
            return list(self.reference)
        return [self.reference[int(i)] for i in np.asarray(ids, dtype=np.int64)]

    def arch_hashes(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        if self._hashes is None:  # only the probe baselines ask: computed on first use
            self._hashes = np.array([self.space.hash(a) for a in self.reference])
        return self._hashes[np.asarray(ids, dtype=np.int64)]

    def fingerprint(self) -> str:
        """SHA-256 (16 hex digits) of the surrogate file: a run's record of the data it used."""
        if self._digest is None:
            h = hashlib.sha256()
            with open(self.path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            self._digest = h.hexdigest()[:16]
        return self._digest
