"""Writes: commits (:meth:`batch`), tasks, protocols, architectures and appended evaluations.

A commit builds the new version in memory (HDF5's core driver) and hands its image to
:mod:`.locking`, which replaces the file whole.
"""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import pandas as pd

from ..space import EnumerableSpace, SpaceError
from . import journal
from .checksums import _stale_digests, _write_checksums
from .schema import (
    _CK,
    EVAL_COLUMNS,
    GENERATION_ATTR,
    PARENT_ATTR,
    StoreError,
    _as_curve,
    _as_float,
    _as_int,
    _as_str,
    _check_extra_columns,
    _jload,
    _missing,
    check_task_name,
    create_task,
    new_generation,
    normal_protocol,
)
from .state import StoreState

if TYPE_CHECKING:
    from .core import Store


class WritingMixin(StoreState):
    """Write methods of :class:`~nasbench_xfer.store.Store`."""

    def _require_writer(self) -> None:
        if self.mode != "a":
            raise StoreError(f"{self.path} is open read-only; open it with mode='a' to write")

    @contextlib.contextmanager
    def batch(self) -> Iterator[Store]:  # yields self: the Store these parts make up
        """Group several writes into one commit: all of them land, or none do.

        The pending version is built in memory (HDF5's core driver, no backing file);
        the commit writes its image to ``path.tmp-<pid>`` with plain ``write`` calls,
        fsyncs it and renames it over the store.  So a full disk or an I/O error is an
        ordinary ``StoreError`` with the store unchanged: no HDF5 handle is ever left
        half-written on disk (which made HDF5 crash when it was later closed).
        """
        self._require_writer()
        if self._tx_depth == 0:
            pending = self._ov  # the journal's rows: folded into this commit
            try:
                self._close_reader()
                self._tx = h5py.File(self.path, "r+", driver="core", backing_store=False, locking=False)
                stale = _stale_digests(self._tx)
                if stale:
                    self._tx.close()
                    raise StoreError(f"{self.path}: damaged store, it does not match its checksums ({stale[0]}"
                                     + (f"; {len(stale) - 1} more" if len(stale) > 1 else "")
                                     + "), so nothing was written: a commit would re-sign the "
                                     f"damage. Run `nasbench-xfer validate {self.path}`")
                _fold(self._tx, pending)
            except BaseException as exc:
                self._tx = None
                self._open_reader()
                if isinstance(exc, OSError):
                    raise self._damage_error(exc) from None
                raise
        self._tx_depth += 1
        ok = False
        try:
            yield self  # type: ignore[misc]
            ok = True
        finally:
            self._tx_depth -= 1
            if self._tx_depth == 0:
                tx, self._tx = self._tx, None
                assert tx is not None
                try:
                    image = None
                    try:
                        if ok:
                            self._finalize(tx)
                            tx.flush()
                            image = tx.id.get_file_image()
                    finally:
                        tx.close()
                    if ok:
                        assert image is not None
                        self._commit_image(image, self.path)
                        # the new file has a new generation: the old journal no longer applies
                        journal.remove(self.path)
                finally:
                    self._open_reader()


    def _finalize(self, f: h5py.File) -> None:
        """Refresh derived data before a commit: the dense lookup map, then the checksums."""
        self._refresh_dense_map(f)
        f.attrs[PARENT_ATTR] = f.attrs.get(GENERATION_ATTR, "")  # the journal on it is folded in here
        f.attrs[GENERATION_ATTR] = new_generation()
        _write_checksums(f)

    def _refresh_dense_map(self, f: h5py.File) -> None:
        if not isinstance(self.space, EnumerableSpace):
            return
        g = f["space"]
        tokens = g["tokens"][()]
        if "dense_map" in g and g["dense_map"].attrs.get("num_archs", -1) == len(tokens):
            return
        table = self.space.dense_canonical_table()
        canon_to_id = np.full(len(table), -1, dtype=np.int32)
        if len(tokens):
            canon = self.space.dense_index_tokens(tokens)
            canon_to_id[canon] = np.arange(len(tokens), dtype=np.int32)
        dense = np.where(table >= 0, canon_to_id[np.maximum(table, 0)], -1).astype(np.int32)
        if "dense_map" in g:
            del g["dense_map"]
        # one large chunk: read whole at every lookup; chunked for the fletcher32 checksum
        ds = g.create_dataset("dense_map", data=dense, chunks=(max(1, min(len(dense), 1 << 20)),),
                              **_CK)
        ds.attrs["num_archs"] = len(tokens)

    def add_task(self, task: str, *, dataset: str, metric: str = "accuracy",
                 higher_is_better: bool = True, num_classes: int = -1,
                 protocols: Mapping[str, Any] | None = None,
                 provenance_info: Mapping[str, Any] | None = None,
                 preprocessing: Mapping[str, Any] | None = None,
                 info: Mapping[str, Any] | None = None,
                 extra_columns: Sequence[str] = (), exist_ok: bool = False) -> None:
        """Declare a task (its dataset, metric, protocols, provenance and extra float columns)."""
        check_task_name(task)
        self._require_writer()
        extra_columns = _check_extra_columns(extra_columns)
        if task in self._f["tasks"]:
            if exist_ok:
                return
            raise StoreError(f"task {task!r} already exists in {self.path}")
        with self.batch():
            create_task(self._f["tasks"], task, dataset=dataset, metric=metric,
                        higher_is_better=higher_is_better, num_classes=num_classes,
                        protocols=protocols, provenance_info=provenance_info,
                        preprocessing=preprocessing, info=info, extra_columns=extra_columns)

    def register_protocol(self, task: str, name: str, definition: Mapping[str, Any]) -> None:
        """Record a training protocol under ``name``; a different definition under the same name
        is refused, so results of different protocols are never mixed silently."""
        self._require_writer()
        g = self._task_group(task)
        protocols = _jload(g.attrs.get("protocols"), {})
        definition = normal_protocol(name, definition)
        if name in protocols:
            if protocols[name] != definition:
                raise StoreError(f"task {task!r} already has a protocol {name!r} with another "
                                 f"definition: stored {protocols[name]}, given {definition}")
            return
        with self.batch():
            protocols[name] = definition
            self._task_group(task).attrs["protocols"] = json.dumps(protocols, sort_keys=True)

    def add_archs(self, archs: Iterable[Hashable]) -> np.ndarray:
        """Ids of ``archs``, adding the ones the store does not hold yet (canonical forms)."""
        self._require_writer()
        ids, new = self._resolve_archs(list(archs))
        if new.hashes:
            with self.batch():
                new.write_to(self._f["space"])
                self._hashes().update(new.index)
        return ids

    def _resolve_archs(self, archs: list) -> tuple[np.ndarray, NewArchs]:
        """Ids of ``archs`` and the rows of those the store does not hold yet (nothing written)."""
        space = self.space
        index = self._hashes()
        ids = np.empty(len(archs), dtype=np.int64)
        new = NewArchs(self.num_archs)
        for i, a in enumerate(archs):
            try:
                h = space.hash(a)
            except SpaceError as exc:
                raise StoreError(f"architecture {i} is not valid in space {space.name}: {exc}") from None
            except Exception as exc:
                raise StoreError(f"architecture {i} ({type(a).__name__}) is not an architecture "
                                 f"of space {space.name}: {exc}") from None
            if h in index:
                ids[i] = index[h]
            elif h in new.index:
                ids[i] = new.index[h]
            else:
                ids[i] = new.add(h, space, a)
        return ids, new

    def append(self, task: str, records: pd.DataFrame | Sequence[Mapping[str, Any]]) -> int:
        """Append evaluations of ``task`` in one commit; returns the number of rows added.

        Each record gives ``arch`` (an architecture of the store's space; or ``arch_id``),
        any evaluation columns (:data:`EVAL_COLUMNS`), the task's extra columns and
        optionally ``curve`` (per-epoch validation metric).  When it returns, the rows are
        durable on disk.
        """
        self._require_writer()
        if isinstance(records, pd.DataFrame):
            records = records.to_dict("records")
        records = list(records)
        if not records:
            return 0
        extras = self._check_records(task, records)
        if self._tx is None and self._journal_wanted():
            return self._append_to_journal(task, records, extras)
        with self.batch():
            by_arch = [i for i, r in enumerate(records) if "arch" in r]
            ids = np.empty(len(records), dtype=np.int64)
            if by_arch:
                ids[by_arch] = self.add_archs([records[i]["arch"] for i in by_arch])
            self._given_arch_ids(records, ids, self.num_archs)
            columns, curves = _columns(records, ids, extras)
            _write_rows(self._task_group(task), columns, curves)
        return len(records)

    #: appends go to the journal once the store file has this size (smaller files are copied
    #: whole at each append: a journal would not pay, and the store stays one file)
    journal_min_bytes: int = 1 << 20
    #: an append folds the journal into the file once the journal exceeds this fraction of it
    compact_fraction: float = 0.5

    def _journal_wanted(self) -> bool:
        if self._overlay.records or self._jw is not None:
            return True
        try:
            return os.stat(self.path).st_size >= self.journal_min_bytes
        except OSError:
            return False

    def _append_to_journal(self, task: str, records: list[Mapping[str, Any]], extras: list[str]) -> int:
        """Append the rows as one journal record (fsynced before returning), then apply it."""
        ov = self._ov  # raises on a damaged journal: never append after damage
        by_arch = [i for i, r in enumerate(records) if "arch" in r]
        ids = np.empty(len(records), dtype=np.int64)
        new = NewArchs(self.num_archs)
        if by_arch:
            ids[by_arch], new = self._resolve_archs([records[i]["arch"] for i in by_arch])
        self._given_arch_ids(records, ids, self.num_archs + len(new.hashes))
        columns, curves = _columns(records, ids, extras)
        payload = journal.encode(task, self.num_archs, self.num_evaluations(task),
                                 new.arrays(self.space.seq_len), columns, curves)
        try:
            if self._jw is None:
                sound = self._jscan.end if self._jscan.base == self._generation else None
                self._jw = journal.JournalWriter(self.path, self._generation, sound)
            self._jw.write(journal.frame(payload))
        except OSError as exc:
            raise StoreError(f"cannot write {self.path}: {exc.strerror or exc} "
                             f"(the store is unchanged)") from None
        if self._jscan.base != self._generation:  # this writer started the journal
            self._jscan = journal.Scan(exists=True, base=self._generation)
        self._jscan.end = self._jscan.size = self._jw.end
        self._jscan.torn = 0
        if ov is journal.EMPTY or not ov.records:
            ov = self._overlay = journal.Overlay(self.space.seq_len)
        self._apply_own(ov, json.loads(payload))
        if self._hash_index is not None:
            self._hash_index.update(new.index)
        if self._jw.end > self.compact_fraction * os.stat(self.path).st_size:
            with contextlib.suppress(StoreError):  # the rows are durable; retried next time
                self.compact()
        return len(records)

    def _apply_own(self, ov: journal.Overlay, rec: dict) -> None:
        """Apply a record this writer just appended (decoded like a reader would)."""
        g = self._f["tasks"]
        ov.apply(rec, file_archs=int(self._f["space/hash"].shape[0]),
                 file_rows={rec["task"]: int(g[rec["task"]]["arch"].shape[0])},
                 extras={rec["task"]: list(_jload(g[rec["task"]].attrs.get("extra_columns"), []))})

    def compact(self) -> dict[str, int]:
        """Fold the append journal into the store file (one whole-file commit) and remove it;
        returns what was folded: ``{"records": n, "rows": m, "journal_bytes": b}``."""
        self._require_writer()
        ov = self._ov
        size = self._jw.end if self._jw is not None else self._jscan.size
        done = {"records": ov.records, "rows": sum(ov.nrows.values()), "journal_bytes": size}
        if ov.records or journal.journal_path(self.path).exists():
            with self.batch():
                pass
        return done

    def _check_records(self, task: str, records: list[Mapping[str, Any]]) -> list[str]:
        """Refuse records with unknown columns, no or two architecture fields, or unregistered
        protocols; returns the task's extra columns."""
        g = self._task_group(task)
        extras = list(_jload(g.attrs.get("extra_columns"), []))
        protocols = _jload(g.attrs.get("protocols"), {})
        known = set(EVAL_COLUMNS) | set(extras) | {"arch_id", "curve"}
        for i, r in enumerate(records):
            if not isinstance(r, Mapping):
                raise StoreError(f"record {i} must be a mapping of column names to values "
                                 f"(a dict, or a DataFrame row), got {type(r).__name__}")
            unknown = set(r) - known
            if unknown:
                raise StoreError(f"record {i} has unknown columns {sorted(unknown)}; "
                                 f"task {task!r} takes {sorted(known)}")
            if ("arch" in r) == ("arch_id" in r):
                raise StoreError(f"record {i} must give exactly one of 'arch' and 'arch_id'")
            p = r.get("protocol", "")
            if not _missing(p) and p and p not in protocols:
                raise StoreError(f"record {i} uses protocol {p!r}, not registered for task "
                                 f"{task!r} (registered: {sorted(protocols) or 'none'}); "
                                 f"call register_protocol first")
        return extras

    @staticmethod
    def _given_arch_ids(records: list[Mapping[str, Any]], ids: np.ndarray, num_archs: int) -> None:
        """Fill ``ids`` from the records that give ``arch_id``, checking the range."""
        for i, r in enumerate(records):
            if "arch_id" in r:
                ids[i] = _as_int(r["arch_id"], f"record {i}: arch_id")
                if not 0 <= ids[i] < num_archs:
                    raise StoreError(f"record {i}: arch_id {ids[i]} out of range")


class NewArchs:
    """Architectures about to be added: their canonical tokens, hashes and spec strings,
    with the ids they get (from ``first_id`` on)."""

    def __init__(self, first_id: int):
        self.first_id = first_id
        self.tokens: list[np.ndarray] = []
        self.hashes: list[bytes] = []
        self.specs: list[str] = []
        self.index: dict[str, int] = {}

    def add(self, h: str, space: Any, arch: Hashable) -> int:
        canon = space.canonical(arch)
        self.index[h] = i = self.first_id + len(self.hashes)
        self.tokens.append(space.encode(canon))
        self.hashes.append(h.encode())
        self.specs.append(space.to_string(canon))
        return i

    def arrays(self, seq_len: int) -> dict[str, np.ndarray]:
        return {"tokens": np.asarray(self.tokens, dtype=np.int16).reshape(-1, seq_len),
                "hash": np.asarray(self.hashes, dtype="S16"),
                "spec": np.asarray(self.specs, dtype=object)}

    def write_to(self, g: h5py.Group) -> None:
        """Append the rows to ``/space`` (inside a commit)."""
        n0 = g["hash"].shape[0]
        n1 = n0 + len(self.hashes)
        for name, data in self.arrays(g["tokens"].shape[1]).items():
            g[name].resize(n1, axis=0)
            g[name][n0:n1] = data


def _columns(records: list[Mapping[str, Any]], ids: np.ndarray,
             extras: list[str]) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """Checked column arrays (evaluation and extra columns) and curves of ``records``."""
    columns: dict[str, np.ndarray] = {"arch": ids.astype(np.int32)}
    for name, (dtype, fill) in EVAL_COLUMNS.items():
        if name == "arch":
            continue
        vals = [r.get(name, fill) for r in records]
        vals = [fill if _missing(v) else v for v in vals]
        if dtype is str:
            columns[name] = np.asarray([_as_str(v, f"record {i}, column {name!r}")
                                        for i, v in enumerate(vals)], dtype=object)
        elif name == "seed":
            nan = [i for i, r in enumerate(records) if isinstance(r.get("seed"), float) and r["seed"] != r["seed"]]
            if nan:  # a NaN seed is a broken value, not a missing one: never stored as seed 0
                raise StoreError(f"record {nan[0]}: seed is NaN; give an integer seed or leave it out")
            seeds = [_as_int(v, f"record {i}, column 'seed'") for i, v in enumerate(vals)]
            if any(not -2**31 <= v < 2**31 for v in seeds):
                raise StoreError("seed values must fit in 32 bits")
            columns[name] = np.asarray(seeds, dtype=dtype)
        else:
            columns[name] = np.asarray([_as_float(v, f"record {i}, column {name!r}")
                                        for i, v in enumerate(vals)], dtype=dtype)
    for name in extras:
        columns[name] = np.asarray([_as_float(r.get(name), f"record {i}, column {name!r}")
                                    for i, r in enumerate(records)], dtype=np.float64)
    curves = [_as_curve(r.get("curve"), f"record {i}, column 'curve'") for i, r in enumerate(records)]
    return columns, curves


def _write_rows(g: h5py.Group, columns: dict[str, np.ndarray], curves: list[np.ndarray]) -> None:
    """Append rows to the datasets of a task group (inside a commit); curves are NaN-padded."""
    n0 = g["arch"].shape[0]
    n1 = n0 + len(curves)
    width = max([g["curves"].shape[1]] + [len(c) for c in curves])
    for name, data in columns.items():
        g[name].resize(n1, axis=0)
        g[name][n0:n1] = data
    cds = g["curves"]
    cds.resize((n1, width))
    block = np.full((len(curves), width), np.nan, dtype=np.float32)
    for i, c in enumerate(curves):
        block[i, : len(c)] = c
    cds[n0:n1, :] = block


def _fold(f: h5py.File, ov: journal.Overlay) -> None:
    """Write the journal's rows into the pending copy ``f`` of a commit."""
    if not ov.records:
        return
    if ov.narchs:
        g = f["space"]
        n0 = g["hash"].shape[0]
        for name in ("tokens", "hash", "spec"):
            data = ov.arch_array(name)
            g[name].resize(n0 + len(data), axis=0)
            g[name][n0:] = data
    for task, cols in ov.rows.items():
        columns = {name: col for name in cols if (col := ov.column(task, name)) is not None}
        _write_rows(f["tasks"][task], columns, ov.curves[task])
