"""Maintenance: :meth:`validate` (layout and checksums), :meth:`merge` of shards and
:meth:`summary` (what ``nasbench-xfer info`` prints).
"""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import journal
from .checksums import _stale_digests, _verify_checksums
from .locking import output_path, real_path
from .schema import (
    EVAL_COLUMNS,
    StoreError,
    StoreLocked,
    _damaged,
    _jload,
    _missing,
    column_layout_problems,
    provenance,
)
from .state import StoreState

if TYPE_CHECKING:
    from .core import Store


class MaintenanceMixin(StoreState):
    """Validation, merging and summaries of :class:`~nasbench_xfer.store.Store`."""

    # ------------------------------------------------------- validation
    def validate(self, *, full: bool = True, notes: list[str] | None = None) -> list[str]:
        """List of problems (empty: the store is sound); never raises on a damaged file.

        Checks the layout (columns present and aligned, architecture ids in range,
        protocols registered, JSON attributes readable), reads every dataset in full
        (HDF5 verifies each chunk's fletcher32 checksum and decompression) and compares
        the stored digests of attributes and strings.  ``full`` also re-derives every
        architecture's canonical hash from its tokens.  ``notes`` (a list) receives
        remarks that are not problems, e.g. that an old store has no checksums.
        """
        problems: list[str] = []
        try:
            self._validate_layout(problems, full)
        except Exception as exc:  # damage in a place the checks did not foresee
            problems.append(f"damaged store ({exc.__class__.__name__}: {exc})")
        if self._tx is not None:  # inside a commit: the digests are refreshed when it ends
            if notes is not None:
                notes.append("checksums not verified inside an open commit")
            return problems
        ck_problems, ck_notes = _verify_checksums(self._f)
        problems += ck_problems
        if notes is not None:
            notes += ck_notes
        self._validate_journal(problems, notes if notes is not None else [], full)
        return problems

    def _validate_journal(self, problems: list[str], notes: list[str], full: bool) -> None:
        """Check the append journal: every record's header crc and payload digest (done when it
        was scanned), that each record follows the store exactly, and the rows it adds."""
        scan, where = self._jscan, journal.journal_path(self.path)
        if not scan.exists:
            return
        if scan.base != self._generation and self._journal_problem is None:
            if self._journal_folded():
                notes.append(f"{where} was already folded into the store (a writer was killed before "
                             f"removing it); it is ignored and the next writer removes it")
            elif self._parent_generation is None:  # a file written before parents were recorded
                notes.append(f"{where} does not extend this version of the file (generation "
                             f"{scan.base}, the file is {self._generation}): a writer killed after "
                             f"folding it in, or a journal of another version; this file predates the "
                             f"record that tells them apart. Its {len(scan.records)} append(s) are not "
                             f"read; the next writer keeps it aside as "
                             f"{journal.orphan_path(self.path, scan.base).name}")
            else:
                notes.append(f"{where} extends another version of this file (generation {scan.base}, "
                             f"the file is {self._generation}, committed over {self._parent_generation}): "
                             f"its {len(scan.records)} append(s) are not read, and may be in no file; the "
                             f"next writer keeps it aside as {journal.orphan_path(self.path, scan.base).name}")
            return
        if self._journal_problem is not None:
            problems.append(f"{where}: damaged journal: {self._journal_problem}")
            return
        ov = self._overlay
        notes.append(f"{where}: {ov.records} appended record(s), {sum(ov.nrows.values())} row(s) "
                     f"not yet compacted into the file")
        if scan.torn:
            notes.append(f"{where}: torn last record ({scan.torn} bytes, a writer killed while "
                         f"appending; that append had not returned): ignored, removed by the next writer")
        if ov.narchs:
            hashes = ov.arch_array("hash")
            try:
                known = set(self._f["space/hash"][()].tolist())
            except Exception:
                known = set()  # reported by the checksum pass
            if len(set(hashes.tolist())) != len(hashes) or known & set(hashes.tolist()):
                problems.append(f"{where}: holds duplicate architectures")
            if full:
                self._validate_hashes(ov.arch_array("tokens"), hashes, problems,
                                      first=int(self._f["space/hash"].shape[0]))
        for task in ov.rows:
            try:
                protocols = _jload(self._task_group(task).attrs.get("protocols"), {})
            except Exception:
                continue  # reported by the layout checks
            used = ov.column(task, "protocol")
            unknown = sorted({p for p in (used if used is not None else ()) if p and p not in protocols})
            if unknown:
                problems.append(f"{where}: evaluations of task {task} use unregistered protocols {unknown}")

    def _validate_layout(self, problems: list[str], full: bool) -> None:
        n = self._validate_space(problems, full)
        for task in self.tasks:
            self._validate_task(task, n, problems)

    def _validate_space(self, problems: list[str], full: bool) -> int:
        """Check ``/space`` (aligned, no duplicate hashes; ``full``: hashes match tokens);
        returns the number of architectures."""
        g = self._f["space"]
        n = g["hash"].shape[0]
        for name in ("tokens", "spec"):
            if g[name].shape[0] != n:
                problems.append(f"/space/{name} has {g[name].shape[0]} rows, /space/hash has {n}")
        if g["tokens"].ndim != 2 or g["tokens"].shape[1] != self.space.seq_len:
            problems.append(f"/space/tokens has shape {g['tokens'].shape}, expected (*, {self.space.seq_len})")
        try:
            hashes = g["hash"][()]
        except Exception:
            hashes = None  # reported by the checksum pass
        if hashes is not None and len(set(hashes.tolist())) != len(hashes):
            problems.append("/space/hash holds duplicate architectures")
        if full and not problems and hashes is not None:
            try:
                tokens = g["tokens"][()]
            except Exception:
                tokens = np.zeros((0, self.space.seq_len))
            self._validate_hashes(tokens, hashes, problems)
        return n

    def _validate_hashes(self, tokens: np.ndarray, hashes: np.ndarray, problems: list[str],
                         first: int = 0) -> None:
        """Re-derive each architecture's canonical hash from its tokens (ids from ``first``)."""
        for i, (t, h) in enumerate(zip(tokens, hashes), start=first):
            try:
                arch = self.space.decode(t)
                ok = self.space.hash(arch) == h.decode()
            except Exception as exc:
                problems.append(f"architecture {i}: tokens invalid: {exc}")
                ok = True
            if not ok:
                problems.append(f"architecture {i}: stored hash {h.decode(errors='replace')} "
                                f"does not match its tokens")
            if len(problems) > 20:
                problems.append("... (stopped after 20 architecture problems)")
                break

    def _validate_task(self, task: str, n: int, problems: list[str]) -> None:
        """Check one task: JSON attributes, columns present and aligned, ids below ``n``,
        protocols registered."""
        tg = self._f["tasks"][task]
        for key in ("protocols", "provenance", "preprocessing", "info", "extra_columns"):
            try:
                _jload(tg.attrs.get(key))
            except Exception as exc:
                problems.append(f"task {task}: attribute {key} is not valid JSON ({exc})")
        try:
            extras = list(_jload(tg.attrs.get("extra_columns"), []))
        except Exception:
            extras = []
        missing = [c for c in list(EVAL_COLUMNS) + ["curves"] + extras if c not in tg]
        if missing:
            problems.append(f"task {task}: missing columns {missing}")
            return
        layout = column_layout_problems(tg, extras)
        if layout:
            problems.extend(f"task {task}: {p}" for p in layout)
            return
        rows = tg["arch"].shape[0]
        for c in list(EVAL_COLUMNS) + extras + ["curves"]:
            if tg[c].shape[0] != rows:
                problems.append(f"task {task}: column {c} has {tg[c].shape[0]} rows, expected {rows}")
        try:
            ids = tg["arch"][()]
        except Exception:
            return  # reported by the checksum pass
        if len(ids) and (ids.min() < 0 or ids.max() >= n):
            problems.append(f"task {task}: architecture ids outside 0..{n - 1}")
        try:
            protocols = _jload(tg.attrs.get("protocols"), {})
            used = {p.decode() if isinstance(p, bytes) else p for p in tg["protocol"][()]}
        except Exception:
            return
        unknown = sorted(p for p in used if p and p not in protocols)
        if unknown:
            problems.append(f"task {task}: evaluations use unregistered protocols {unknown}")

    # ----------------------------------------------------------- merging
    @classmethod
    def merge(cls, paths: Sequence[str | os.PathLike], out: str | os.PathLike, *,
              overwrite: bool = False) -> Store:
        """Join stores (shards) of one space into ``out``.

        Duplicate rule: two evaluations are duplicates when task, architecture
        (canonical hash), seed and protocol are equal; the one from the earliest
        input in ``paths`` (then the earliest row) is kept.  Tasks must agree on
        dataset and metric; protocol definitions of the same name must be equal;
        protocols and provenance of all inputs are kept (provenance as a list).
        The returned store's ``merge_report`` counts the dropped duplicates and, among
        them, the ``conflicting`` ones (another val/test metric or status than the kept row).

        ``out``'s writer lock is held from the start, so the merge never replaces a store
        that another process is writing.
        """
        if not paths:
            raise StoreError("merge needs at least one input store")
        given = Path(out)
        out = real_path(given)
        if any(real_path(p) == out for p in paths):
            raise StoreError(f"output {given} is also an input; write the merge to a new file")
        output_path(given, overwrite, error=StoreError)
        sources: list[Store] = []
        lock_fd: int | None = None
        building = out.with_name(f".{out.name}.merge-{os.getpid()}")
        merged: Store | None = None
        report = {"duplicates": 0, "conflicting": 0}
        try:
            sources = [cls.open(p, "r") for p in paths]
            for p, src in zip(paths, sources):  # never carry damage into a freshly signed file
                stale = _stale_digests(src._f)
                if stale:
                    raise StoreError(f"input {p}: damaged store, it does not match its checksums ({stale[0]}); "
                                     f"nothing was written. Run `nasbench-xfer validate {p}`")
            lock_fd = cls._lock(out)  # the output may not be replaced while someone writes it
            _remove_stale_builds(out)
            merged = cls.create(building, _common_space(sources), overwrite=True,
                                provenance_info=provenance(merged_from=[str(p) for p in paths]))
            with merged.batch():
                seen: dict[tuple, tuple] = {}
                for s in sources:
                    for task in s.tasks:
                        merged._merge_task_info(s, task)
                        records = _new_records(s, task, seen, report)
                        if records:
                            merged.append(task, records)
            merged.close()
            try:
                cls._durable_replace(building, out)
            except OSError as exc:
                raise StoreError(f"cannot write {given}: {exc.strerror or exc} "
                                 f"(an existing {given} is unchanged)") from None
            cls._remove_journal(out)  # appends to the store just replaced, if any
            result: Store = cls(out, "a", _lock_fd=lock_fd)  # type: ignore[call-arg,assignment]  # cls is Store
            lock_fd = None  # now the result's
            result.merge_report = report
            return result
        except StoreLocked:
            raise  # names the output and its holder already
        except StoreError as exc:
            raise StoreError(str(exc).replace(str(building), str(given))) from None
        finally:
            if lock_fd is not None:
                if not out.exists():  # a failed merge to a new file leaves nothing behind
                    with contextlib.suppress(OSError):  # removed while still held: no one else has it
                        out.with_name(out.name + ".lock").unlink()
                cls._unlock(lock_fd)
            if merged is not None:
                merged.close()
            for leftover in (building, building.with_name(building.name + ".lock")):
                with contextlib.suppress(OSError):
                    leftover.unlink()
            for s in sources:
                s.close()

    def _merge_task_info(self, source: Store, task: str) -> None:
        """Add ``task`` of ``source`` to this (merged) store, or check that it agrees with the
        task of that name already here and append its provenance; register its protocols."""
        info = source.task_info(task)
        if task in self.tasks:
            have = self.task_info(task)
            for key in ("dataset", "metric", "higher_is_better", "num_classes"):
                if key == "num_classes" and -1 in (have[key], info[key]):
                    continue  # -1: not recorded (e.g. an import before it was); the known value is kept
                if have[key] != info[key]:
                    raise StoreError(f"task {task!r}: {key} differs between inputs "
                                     f"({have[key]!r} vs {info[key]!r} in {source.path})")
            if set(have["extra_columns"]) != set(info["extra_columns"]):
                raise StoreError(f"task {task!r}: extra columns differ between inputs")
            # the validation split a harness task was evaluated on (train refuses to mix them too)
            split_a, split_b = have["info"].get("val_indices_sha1"), info["info"].get("val_indices_sha1")
            if split_a and split_b and split_a != split_b:
                raise StoreError(f"task {task!r} was evaluated on another validation split in {source.path} "
                                 f"(split seed {info['info'].get('split_seed')}, here "
                                 f"{have['info'].get('split_seed')}): its results are not comparable")
            attrs = self._task_group(task).attrs
            if have["num_classes"] == -1 and info["num_classes"] != -1:
                attrs["num_classes"] = int(info["num_classes"])
            plist = _jload(attrs["provenance"], {})
            plist = plist if isinstance(plist, list) else [plist]
            plist.append(info["provenance"])
            attrs["provenance"] = json.dumps(plist)
        else:
            self.add_task(task, dataset=info["dataset"], metric=info["metric"],
                          higher_is_better=info["higher_is_better"], num_classes=info["num_classes"],
                          provenance_info=info["provenance"], preprocessing=info["preprocessing"],
                          info=info["info"], extra_columns=info["extra_columns"])
        for name, definition in info["protocols"].items():
            self.register_protocol(task, name, definition)

    # ------------------------------------------------------------ export
    @_damaged
    def summary(self) -> dict[str, Any]:
        """What ``nasbench-xfer info`` prints: space, counts, metric ranges, provenance.
        A store whose layout is damaged raises a StoreError pointing to ``validate``."""
        tasks = {}
        for t in self.tasks:
            info = self.task_info(t)
            self._check_task(t)
            vals = self._column(t, "val_metric")
            ok = vals[~np.isnan(vals)]
            info["val_metric_range"] = [float(ok.min()), float(ok.max())] if len(ok) else None
            info["num_archs"] = int(len(np.unique(self._column(t, "arch"))))
            info["max_epochs"] = self._max_epochs(t)
            tasks[t] = info
        return {"path": str(self.path), **self.attrs, "space": self.space.name,
                "space_config": self.space.config(), "num_archs": self.num_archs, "tasks": tasks}


def _remove_stale_builds(out: Path) -> None:
    """Remove what killed merges and imports of ``out`` left (the caller holds ``out``'s lock)."""
    for stale in list(out.parent.glob(f".{out.name}.merge-*")) + list(
            out.parent.glob(f".{out.name}.importing-*")):
        with contextlib.suppress(OSError):
            stale.unlink()


def _common_space(sources: Sequence[Any]) -> Any:
    """The search space of the first input; a StoreError if another input has another one."""
    space = sources[0].space
    for s in sources[1:]:
        if s.space != space:
            raise StoreError(f"cannot merge {s.path} (space {s.space!r}) with "
                             f"{sources[0].path} (space {space!r})")
    return space


def _new_records(source: Any, task: str, seen: dict[tuple, tuple], report: dict[str, int]) -> list[dict]:
    """The evaluations of ``task`` in ``source`` as append records, without the duplicates of
    rows already in ``seen`` (task, hash, seed, protocol), which ``report`` counts."""
    frame = source.evaluations(task)
    if frame.empty:
        return []
    curves = source.curves(task)
    uniq = np.unique(frame["arch_id"].to_numpy())
    by_id = dict(zip(uniq.tolist(), source.archs(uniq)))
    records = []
    for row, curve in zip(frame.to_dict("records"), curves):
        key = (task, row["hash"], int(row["seed"]), row["protocol"])
        values = (row["val_metric"], row["test_metric"], row["status"])
        if key in seen:
            report["duplicates"] += 1
            if any(not (a == b or (_missing(a) and _missing(b))) for a, b in zip(seen[key], values)):
                report["conflicting"] += 1
            continue
        seen[key] = values
        rec = {k: v for k, v in row.items() if k not in ("arch_id", "hash")}
        rec["arch"] = by_id[row["arch_id"]]
        finite = np.flatnonzero(~np.isnan(curve))
        rec["curve"] = curve[: finite[-1] + 1] if len(finite) else curve[:0]
        records.append(rec)
    return records
