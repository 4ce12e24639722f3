"""Importers: turn published benchmark tables into stores (:mod:`nasbench_xfer.store`).

* :func:`import_nas_bench_graph` - NAS-Bench-Graph (PyPI ``nas-bench-graph``), 9 graph datasets
* :func:`import_transnas` - TransNAS-Bench-101 micro (NASLib's export), 7 tasks x 4,096 cells
* :func:`import_csv` - any CSV table with an architecture column and one metric column per task

Every importer writes a new store (one search space per store) and records
provenance (source, command, versions, date, host) on the store and on each task.
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..registry import Registry
from ..space import SearchSpace
from ..store import Store, StoreError, output_path


class ImporterError(Exception):
    """An importer cannot read its source or write its store (the message says why)."""


@dataclass
class ImportResult:
    """What an importer wrote: one entry per store file."""

    stores: dict[str, Path] = field(default_factory=dict)  #: label -> store path
    rows: dict[str, int] = field(default_factory=dict)  #: task -> evaluations written
    archs: dict[str, int] = field(default_factory=dict)  #: label -> architectures in that store
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{label}: {path} ({self.archs.get(label, '?')} architectures)"
                 for label, path in self.stores.items()]
        lines += [f"  {task}: {n} evaluations" for task, n in self.rows.items()]
        lines += [f"note: {n}" for n in self.notes]
        lines.append(f"done in {self.seconds:.1f} s")
        return "\n".join(lines)


def dist_version(name: str) -> str:
    """Installed version of a distribution (``"unknown"`` if it is not installed)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def default_command(func: str, **kwargs: Any) -> str:
    """A provenance ``command`` string for an importer called from Python."""
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return f"python: nasbench_xfer.importers.{func}({args})"


def remove_stale_builds(out: Path) -> list[Path]:
    """Delete what killed importers and merges left beside ``out`` (hidden
    ``.OUT.importing-PID*`` and ``.OUT.merge-PID*`` files).  Call it holding ``out``'s
    writer lock: every live builder of ``out`` holds it, so whatever is there is stale."""
    removed = []
    for pattern in (f".{out.name}.importing-*", f".{out.name}.merge-*"):
        for stale in out.parent.glob(pattern):
            with contextlib.suppress(OSError):
                stale.unlink()
                removed.append(stale)
    return removed


@contextlib.contextmanager
def building_store(out: str | os.PathLike, space: SearchSpace, *, overwrite: bool,
                   provenance_info: Mapping[str, Any]) -> Iterator[Store]:
    """A new store for ``space``, written under a temporary name and moved to ``out`` on success.

    Everything written inside the ``with`` block is one commit; if the block raises,
    nothing is left behind and an existing ``out`` is untouched.  ``out``'s writer lock
    is held from the start to the replace, so an import never undoes (or is undone by)
    a process appending to the same store; a symbolic link ``out`` is followed (the
    link stays, its target is replaced, with its permission bits).  The new file is
    fsynced before the rename and the folder after it, like every store commit.
    """
    given = Path(out)
    out = output_path(given, overwrite, error=ImporterError)
    try:
        lock_fd = Store._lock(out)
    except StoreError as exc:
        raise ImporterError(str(exc)) from None
    try:
        if out.exists() and not overwrite:  # written by someone else while we waited
            raise ImporterError(f"{given} already exists (pass overwrite=True / --overwrite to replace it)")
        remove_stale_builds(out)
        tmp = out.with_name(f".{out.name}.importing-{os.getpid()}")
        try:
            store = Store.create(tmp, space, overwrite=True, provenance_info=provenance_info)
        except StoreError as exc:
            raise ImporterError(str(exc).replace(str(tmp), str(given))) from None
        ok = False
        try:
            try:
                with store.batch():
                    yield store
                    problems = store.validate(full=False)
                    if problems:
                        raise ImporterError("the imported store failed validation: " + "; ".join(problems))
            except StoreError as exc:
                raise ImporterError(str(exc).replace(str(tmp), str(given))) from None
            ok = True
        finally:
            store.close()
            with contextlib.suppress(OSError):
                tmp.with_name(tmp.name + ".lock").unlink()
            try:
                if ok:
                    Store._durable_replace(tmp, out)
                    Store._remove_journal(out)  # appends to the store just replaced, if any
            except OSError as exc:
                ok = False
                raise ImporterError(f"cannot write {given}: {exc.strerror or exc} "
                                    f"(an existing {given} is unchanged)") from None
            finally:
                if not ok:
                    with contextlib.suppress(OSError):
                        tmp.unlink()
    finally:
        Store._unlock(lock_fd)


from .csv_table import import_csv  # noqa: E402
from .nas_bench_graph import import_nas_bench_graph  # noqa: E402
from .transnas import default_transnas_zip, import_transnas  # noqa: E402

#: every importer by name (plugins: entry-point group ``nasbench_xfer.importers``); the CLI's
#: ``nasbench-xfer import NAME`` commands call these
IMPORTERS: Registry[Callable[..., ImportResult]] = Registry("importer", "importers", error=ImporterError)
IMPORTERS.register(import_transnas, name="transnas")
IMPORTERS.register(import_nas_bench_graph, name="nas-bench-graph")
IMPORTERS.register(import_csv, name="csv")

__all__ = ["ImporterError", "ImportResult", "IMPORTERS", "import_csv", "import_nas_bench_graph",
           "import_transnas", "default_transnas_zip"]
