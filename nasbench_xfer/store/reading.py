"""Reads: evaluations, curves, architectures, lookups and the metadata of tasks.

Every read goes through ``self._f`` (the open file, or the pending copy inside a commit)
and never loads more than asked.
"""
from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import h5py
import numpy as np
import pandas as pd

from ..space import EnumerableSpace, SpaceError
from . import journal
from .schema import _DAMAGE, EVAL_COLUMNS, FORMAT, StoreError, _damaged, _jload, column_layout_problems
from .state import StoreState


class ReadingMixin(StoreState):
    """Read methods of :class:`~nasbench_xfer.store.Store`."""

    # ------------------------------------------------------------ metadata
    @property
    def attrs(self) -> dict[str, Any]:
        f = self._f
        return {"format": FORMAT, "schema_version": int(f.attrs["schema_version"]),
                "created": str(f.attrs.get("created", "")),
                "package_version": str(f.attrs.get("package_version", "")),
                "provenance": _jload(f.attrs.get("provenance"), {})}

    @property
    def tasks(self) -> list[str]:
        return sorted(self._f["tasks"].keys())

    def _task_group(self, task: str) -> h5py.Group:
        # only a plain name: h5py would read "a/b", "/" or "jigsaw/" as paths
        named = isinstance(task, str) and task not in ("", ".", "..") and "/" not in task
        g = self._f["tasks"].get(task) if named else None
        if not isinstance(g, h5py.Group):
            known = ", ".join(self.tasks) or "none"
            raise StoreError(f"task {task!r} is not in {self.path} (tasks: {known})")
        return g

    @_damaged
    def task_info(self, task: str) -> dict[str, Any]:
        """Dataset, metric, protocols, provenance, ... of a task, as stored."""
        a = self._task_group(task).attrs
        return {"task": task, "dataset": str(a.get("dataset", "")),
                "num_classes": int(a.get("num_classes", -1)),
                "metric": str(a.get("metric", "")),
                "higher_is_better": bool(a.get("higher_is_better", True)),
                "protocols": _jload(a.get("protocols"), {}),
                "provenance": _jload(a.get("provenance"), {}),
                "preprocessing": _jload(a.get("preprocessing"), {}),
                "info": _jload(a.get("info"), {}),
                "extra_columns": list(_jload(a.get("extra_columns"), [])),
                "num_evaluations": self.num_evaluations(task)}

    def num_evaluations(self, task: str) -> int:
        return int(self._task_group(task)["arch"].shape[0]) + self._ov.nrows.get(task, 0)

    @property
    def num_archs(self) -> int:
        return int(self._f["space/hash"].shape[0]) + self._ov.narchs

    @property
    def _ov(self) -> journal.Overlay:
        """Rows of the append journal on top of the file's (none inside a commit, where they
        are folded into the pending copy); a damaged journal raises a StoreError."""
        if self._tx is not None:
            return journal.EMPTY
        if self._journal_problem is not None:
            raise StoreError(f"{journal.journal_path(self.path)}: damaged journal "
                             f"({self._journal_problem}); run `nasbench-xfer validate "
                             f"{self.path}` for a full report")
        return self._overlay

    def _column(self, task: str, name: str) -> np.ndarray:
        """One column of ``task``: the file's rows, then the journal's."""
        data = self._task_group(task)[name][()]
        more = self._ov.column(task, name)
        if more is None:
            return data
        if data.dtype.kind == "O":
            return np.concatenate([np.asarray(data, dtype=object), more])
        return np.concatenate([data, more.astype(data.dtype)])

    def _arch_rows(self, name: str, ids: np.ndarray) -> np.ndarray:
        """Rows ``ids`` of ``/space/<name>`` (tokens, hash, spec), in the file or the journal."""
        if len(ids) and (ids.min() < 0 or ids.max() >= self.num_archs):
            bad = ids[(ids < 0) | (ids >= self.num_archs)]
            raise StoreError(f"architecture ids must lie in 0..{self.num_archs - 1} ({self.path} holds "
                             f"{self.num_archs}); got {bad[:5].tolist()}")
        ds = self._f["space/" + name]
        n = ds.shape[0]
        ov = self._ov
        if not ov.narchs or not len(ids) or ids.max() < n:
            return self._read_rows(ds, ids)
        extra = ov.arch_array(name)
        in_file = ids < n
        out = np.empty((len(ids),) + extra.shape[1:], dtype=extra.dtype)
        if in_file.any():
            out[in_file] = self._read_rows(ds, ids[in_file])
        out[~in_file] = extra[ids[~in_file] - n]
        return out

    # ---------------------------------------------------------- reading
    @_damaged
    def evaluations(self, task: str, *, spec: bool = False) -> pd.DataFrame:
        """All evaluations of ``task``: one row each, columns ``arch_id``, ``hash``,
        the evaluation columns and the task's extra columns (``spec=True`` adds spec strings)."""
        g = self._check_task(task)
        cols: dict[str, Any] = {}
        for name, (dtype, _) in EVAL_COLUMNS.items():
            data = self._column(task, name)
            if dtype is str:
                data = np.asarray([v.decode() if isinstance(v, bytes) else v for v in data], dtype=object)
            cols["arch_id" if name == "arch" else name] = data
        for name in _jload(g.attrs.get("extra_columns"), []):
            cols[name] = self._column(task, name)
        frame = pd.DataFrame(cols)
        ids = frame["arch_id"].to_numpy()
        if len(ids):
            frame.insert(1, "hash", self.arch_hashes(ids))
            if spec:
                specs = self._arch_rows("spec", ids)
                frame.insert(2, "spec", [s.decode() if isinstance(s, bytes) else s for s in specs])
        else:
            frame.insert(1, "hash", pd.Series([], dtype=object))
            if spec:
                frame.insert(2, "spec", pd.Series([], dtype=object))
        return frame

    def arch_hashes(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Canonical hashes (16 hex digits, a str array) of the architectures with store ``ids``."""
        return self._arch_rows("hash", np.asarray(ids, dtype=np.int64)).astype("U16")

    @staticmethod
    def _read_rows(ds: h5py.Dataset, ids: np.ndarray) -> np.ndarray:
        """``ds[ids]`` for unsorted, repeated ids, reading the whole column once when that is cheaper."""
        if len(ids) > ds.shape[0] // 8:
            return ds[()][ids]
        uniq, inv = np.unique(ids, return_inverse=True)
        return ds[uniq][inv]

    @_damaged
    def curves(self, task: str) -> np.ndarray:
        """Per-epoch validation curves (evaluations x epochs), aligned with :meth:`evaluations`."""
        block = self._check_task(task)["curves"][()]
        more = self._ov.curves.get(task)
        if not more:
            return block
        width = max([block.shape[1]] + [len(c) for c in more])
        out = np.full((len(block) + len(more), width), np.nan, dtype=np.float32)
        out[: len(block), : block.shape[1]] = block
        for i, c in enumerate(more, start=len(block)):
            out[i, : len(c)] = c
        return out

    def max_epochs(self, task: str) -> int:
        """Length of ``task``'s learning curves (the longest stored; 0 if it stores none)."""
        self._check_task(task)
        return self._max_epochs(task)

    def _max_epochs(self, task: str) -> int:
        """Width of :meth:`curves` without reading them."""
        more = self._ov.curves.get(task) or []
        return max([int(self._task_group(task)["curves"].shape[1])] + [len(c) for c in more])

    def _as_arch(self, arch: Hashable) -> Hashable:
        """An architecture object from an object or a spec string of the store's space."""
        if not isinstance(arch, str):
            return arch
        try:
            return self.space.from_string(arch)
        except SpaceError as exc:
            raise StoreError(f"{arch!r} is not a spec string of space {self.space.name}: {exc}") from None

    def arch_ids(self, archs: Iterable[Hashable]) -> np.ndarray:
        """Store ids of ``archs`` - architecture objects or spec strings (as ``info``/``query``
        print them) - with -1 where the store does not hold the architecture."""
        archs = [self._as_arch(a) for a in archs]
        dense = self._dense_map()
        if dense is not None and isinstance(self.space, EnumerableSpace):
            raw = np.asarray([self.space.dense_index(a) for a in archs], dtype=np.int64)
            return dense[raw]
        index = self._hashes()
        return np.asarray([index.get(self.space.hash(a), -1) for a in archs], dtype=np.int64)

    def arch_id(self, arch_or_hash: Hashable | str) -> int:
        """Id of one architecture, given as an architecture or a canonical hash (-1 if absent)."""
        if isinstance(arch_or_hash, str):
            return self._hashes().get(arch_or_hash, -1)
        return int(self.arch_ids([arch_or_hash])[0])

    @_damaged
    def archs(self, ids: Sequence[int] | np.ndarray | None = None) -> list:
        """Architectures by id (all if ``ids`` is None), decoded from their stored tokens."""
        if ids is None:
            toks = self._f["space/tokens"][()]
            if self._ov.narchs:
                toks = np.concatenate([toks, self._ov.arch_array("tokens")])
        else:
            toks = self._arch_rows("tokens", np.asarray(ids, dtype=np.int64))
        return [self.space.decode(t) for t in toks]

    def _epoch_column(self, task: str, column: str, epoch: int) -> np.ndarray:
        """Per evaluation: the validation curve's value after ``epoch`` (1-based) epochs."""
        if column != "val_metric":
            raise StoreError(f"epoch={epoch} reads the validation curves: column must be 'val_metric', "
                             f"got {column!r}")
        if not isinstance(epoch, (int, np.integer)) or isinstance(epoch, bool) or epoch < 1:
            raise StoreError(f"epoch must be a positive integer (1 = after the first epoch), got {epoch!r}")
        width = self._max_epochs(task)
        if epoch > width:
            raise StoreError(f"task {task!r} has curves of at most {width} epochs; epoch={epoch} asked"
                             + (" (this task stores no learning curves)" if width == 0 else ""))
        return self.curves(task)[:, epoch - 1].astype(np.float64)

    def curve(self, task: str, arch: Hashable) -> np.ndarray:
        """The validation curves of one architecture (object or spec string) on ``task``:
        ``(seeds, epochs)``, one row per evaluation, NaN past a curve's end; ``(0, epochs)``
        if the architecture was not evaluated on the task."""
        self._check_task(task)
        aid = int(self.arch_ids([arch])[0])
        rows = np.flatnonzero(self._column(task, "arch") == aid) if aid >= 0 else np.zeros(0, dtype=int)
        return self.curves(task)[rows]

    @_damaged
    def metric_table(self, task: str, column: str = "val_metric", epoch: int | None = None) -> np.ndarray:
        """Array over architecture ids with the mean of ``column`` over that task's evaluations
        (NaN where the architecture was not evaluated on the task).  ``epoch=k``: the validation
        curves' value after ``k`` epochs instead (mean over seeds; NaN where a curve is shorter)."""
        self._check_task(task)
        if epoch is None:
            self._check_column(task, column)
        ids = self._column(task, "arch")
        vals = (self._column(task, column).astype(np.float64) if epoch is None
                else self._epoch_column(task, column, epoch))
        out = np.full(self.num_archs, np.nan)
        if len(ids):
            ok = ~np.isnan(vals)
            sums = np.bincount(ids[ok], weights=vals[ok], minlength=self.num_archs)
            counts = np.bincount(ids[ok], minlength=self.num_archs)
            with np.errstate(invalid="ignore", divide="ignore"):
                out = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        return out

    def score_table(self, task: str) -> np.ndarray:
        """:meth:`metric_table` of ``val_metric`` oriented so that higher is better
        (negated for a task whose metric is lower-is-better, e.g. a loss)."""
        sign = 1.0 if self.task_info(task)["higher_is_better"] else -1.0
        return sign * self.metric_table(task, "val_metric")

    def dense_ids(self, raw: np.ndarray) -> np.ndarray:
        """Store ids of raw dense spec indices (enumerable spaces only; -1 where absent)."""
        dense = self._dense_map()
        if dense is None:
            raise StoreError(f"space {self.space.name} of {self.path} has no dense index")
        raw = np.asarray(raw, dtype=np.int64)
        if len(raw) and (raw.min() < 0 or raw.max() >= len(dense)):
            raise StoreError(f"dense indices must lie in 0..{len(dense) - 1}")
        return dense[raw]

    def top(self, task: str, k: int = 10, column: str = "val_metric") -> pd.DataFrame:
        """The ``k`` best architectures of ``task`` by the mean of ``column`` over seeds (best
        first, in the task's direction): ``arch_id``, ``hash``, ``spec``, ``column``, ``seeds``."""
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise StoreError(f"top: k must be a positive integer, got {k!r}")
        table = self.metric_table(task, column)
        sign = 1.0 if self.task_info(task)["higher_is_better"] else -1.0
        ids = np.flatnonzero(~np.isnan(table))
        order = ids[np.argsort(-sign * table[ids], kind="stable")][:k]
        counts = np.bincount(self._column(task, "arch"), minlength=self.num_archs)
        archs = self.archs(order)
        return pd.DataFrame({"arch_id": order, "hash": [self.space.hash(a) for a in archs],
                             "spec": [self.space.to_string(a) for a in archs], column: table[order],
                             "seeds": counts[order]})

    def lookup(self, task: str, archs: Iterable[Hashable] | None = None, column: str = "val_metric",
               *, dense_index: np.ndarray | None = None, epoch: int | None = None) -> np.ndarray:
        """``column`` (mean over seeds) of each architecture on ``task``; NaN if not evaluated.

        Give architectures (objects or spec strings), or (enumerable spaces) their raw
        ``dense_index`` array for a vectorised lookup without building architecture objects.
        ``epoch=k`` answers from the learning curves: the validation metric after ``k``
        epochs (1-based; NaN where the curve is shorter), for multi-fidelity methods.
        """
        if (archs is None) == (dense_index is None):
            raise StoreError("lookup needs exactly one of archs and dense_index")
        if archs is not None:
            ids = self.arch_ids(archs)
        else:
            assert dense_index is not None
            ids = self.dense_ids(dense_index)
        table = self.metric_table(task, column, epoch=epoch)
        out = np.full(len(ids), np.nan)
        ok = ids >= 0
        out[ok] = table[ids[ok]]
        return out

    def _hashes(self) -> dict[str, int]:
        if self._hash_index is None:
            raw = self._f["space/hash"][()]
            if self._ov.narchs:
                raw = np.concatenate([raw, self._ov.arch_array("hash")])
            self._hash_index = {h.decode(): i for i, h in enumerate(raw)}
        return self._hash_index

    def _dense_map(self) -> np.ndarray | None:
        """The dense lookup map, or None if the space has none or it is stale (inside a batch)."""
        ds = self._f["space"].get("dense_map")
        if ds is None or ds.attrs.get("num_archs", -1) != self._f["space/hash"].shape[0]:
            return None
        ov = self._ov
        if not ov.narchs or not isinstance(self.space, EnumerableSpace):
            return ds[()]
        if self._dense_cache is None or self._dense_cache[0] != ov.narchs:
            # the journal's architectures: map every raw index of their canonical forms
            first = int(ds.attrs["num_archs"])
            table = self.space.dense_canonical_table()
            canon_to_id = np.full(len(table), -1, dtype=np.int32)
            canon = self.space.dense_index_tokens(ov.arch_array("tokens"))
            canon_to_id[canon] = np.arange(first, first + ov.narchs, dtype=np.int32)
            extra = np.where(table >= 0, canon_to_id[np.maximum(table, 0)], -1)
            self._dense_cache = (ov.narchs, np.where(extra >= 0, extra, ds[()]).astype(np.int32))
        return self._dense_cache[1]


    def _check_column(self, task: str, column: str) -> None:
        """A StoreError unless ``column`` is a numeric column of ``task`` (what a table is made of)."""
        numeric = [c for c, (dtype, _) in EVAL_COLUMNS.items() if dtype is not str and c != "arch"]
        numeric += list(_jload(self._task_group(task).attrs.get("extra_columns"), []))
        if column not in numeric:
            raise StoreError(f"unknown column {column!r} of task {task!r}; numeric columns: "
                             f"{', '.join(numeric)}")

    def _check_task(self, task: str) -> h5py.Group:
        """The task's group after the cheap layout checks (columns present and aligned, ids in
        range); a damaged task raises a StoreError that points to ``validate``."""
        g = self._task_group(task)
        try:
            extras = list(_jload(g.attrs.get("extra_columns"), []))
            missing = [c for c in list(EVAL_COLUMNS) + ["curves"] + extras if c not in g]
            if missing:
                raise StoreError(f"task {task!r} misses columns {missing}")
            layout = column_layout_problems(g, extras)
            if layout:
                raise StoreError(f"task {task!r}: {'; '.join(layout)}")
            rows = g["arch"].shape[0]
            bad = [c for c in list(EVAL_COLUMNS) + extras + ["curves"] if g[c].shape[0] != rows]
            if bad:
                raise StoreError(f"task {task!r}: columns {bad} are not aligned with 'arch' ({rows} rows)")
            ids = g["arch"][()]
            n = self._f["space/hash"].shape[0]
            if len(ids) and (ids.min() < 0 or ids.max() >= n):
                raise StoreError(f"task {task!r}: architecture ids outside 0..{n - 1}")
        except StoreError as exc:
            raise StoreError(f"{self.path}: damaged store: {exc}; run `nasbench-xfer validate "
                             f"{self.path}` for a full report") from None
        except _DAMAGE as exc:
            raise self._damage_error(exc) from None
        return g

