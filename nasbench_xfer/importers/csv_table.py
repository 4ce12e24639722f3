"""Import any CSV benchmark table: one architecture column, one metric column per task.

Example (a NAS-Bench-201 export)::

    arch,cifar10_valid,cifar100_valid,latency
    |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|,91.2,70.1,0.012
    ...

    import_csv("nb201.csv", "nb201.h5", arch_column="arch",
               task_columns={"cifar10": "cifar10_valid", "cifar100": "cifar100_valid"},
               extra_columns=["latency"])

The architecture column is parsed with the chosen space's ``from_string`` (default
``nb201``: NAS-Bench-201 cell strings; ``transnas_micro`` also reads ``(2, 3, 2, 3, 2, 3)``
and ``64-41414-2_33_222``; ``nas_bench_graph`` the JSON form; ``nasnet`` appendix-C JSON).
Each task column becomes the task's ``val_metric``; optional ``test_columns`` give
``test_metric``.  Extra columns (numbers) are stored with every task.  Empty cells are
missing values; a row whose metric for a task is missing gets no evaluation on that
task.  Rows naming the same architecture (under the space's canonical form) become
several evaluations of it (``seed`` = its occurrence number 0, 1, ...).
"""
from __future__ import annotations

import csv
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..space import SpaceError, get_space
from ..store import provenance
from ..store.schema import file_sha256
from . import ImporterError, ImportResult, building_store, default_command

_MAX_REPORTED = 5


def _numeric(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    raw = frame[column]
    vals = pd.to_numeric(raw, errors="coerce")
    bad = vals.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if bad.any():
        rows = [f"line {i + 2}: {raw[i]!r}" for i in np.flatnonzero(bad.to_numpy())[:_MAX_REPORTED]]
        raise ImporterError(f"{path}: column {column!r} has {int(bad.sum())} non-numeric value(s) "
                            f"({'; '.join(rows)})")
    out = vals.to_numpy(dtype=np.float64)
    inf = np.isinf(out)
    if inf.any():
        rows = [f"line {i + 2}: {str(raw[i])!r}" for i in np.flatnonzero(inf)[:_MAX_REPORTED]]
        raise ImporterError(f"{path}: column {column!r} has {int(inf.sum())} infinite value(s) "
                            f"({'; '.join(rows)}); values must be finite (leave a cell empty "
                            f"for a missing value)")
    return out


def import_csv(csv_path: str | os.PathLike, out: str | os.PathLike, *, arch_column: str,
               task_columns: Mapping[str, str], extra_columns: Sequence[str] = (),
               test_columns: Mapping[str, str] | None = None, space: str = "nb201",
               space_config: Mapping[str, Any] | None = None, metric: str = "accuracy",
               higher_is_better: bool = True, datasets: Mapping[str, str] | None = None,
               source: str | None = None, overwrite: bool = False,
               command: str | None = None, sep: str = ",") -> ImportResult:
    """Write the CSV at ``csv_path`` as a store at ``out`` (see the module docstring).

    ``task_columns`` maps task name -> metric column; ``test_columns`` task -> test
    metric column; ``datasets`` task -> dataset name (default: the task name);
    ``source`` a free-text description of where the table comes from (provenance).
    """
    t0 = time.perf_counter()
    csv_path = Path(csv_path)
    test_columns = _check_task_columns(task_columns, test_columns, datasets)
    try:
        sp = get_space(space, dict(space_config or {}))
    except (SpaceError, TypeError) as exc:
        raise ImporterError(f"cannot build space {space!r}: {exc}") from None
    frame = _read_table(csv_path, sep, arch_column,
                        [arch_column, *task_columns.values(), *test_columns.values(), *extra_columns],
                        extra_columns)
    archs = _parse_archs(frame, arch_column, sp, space, csv_path)
    values = {t: _numeric(frame, c, csv_path) for t, c in task_columns.items()}
    tests = {t: _numeric(frame, c, csv_path) for t, c in test_columns.items()}
    extras = {c: _numeric(frame, c, csv_path) for c in extra_columns}
    if command is None:
        command = default_command("import_csv", csv_path=str(csv_path), out=str(out),
                                  arch_column=arch_column, task_columns=dict(task_columns),
                                  space=space)
    base: dict[str, Any] = dict(source=source or f"CSV table {csv_path.name}", command=command,
                                source_file=str(csv_path.resolve()),
                                source_file_bytes=csv_path.stat().st_size,
                                source_file_sha256=file_sha256(csv_path),
                                column_mapping={"arch": arch_column, "tasks": dict(task_columns),
                                                "test": test_columns, "extra": list(extra_columns)})
    result = ImportResult()
    with building_store(out, sp, overwrite=overwrite, provenance_info=provenance(**base)) as store:
        ids = store.add_archs(archs)
        seeds = _occurrence_seeds(ids)
        for task, column in task_columns.items():
            store.add_task(task, dataset=(datasets or {}).get(task, task), metric=metric,
                           higher_is_better=higher_is_better,
                           provenance_info=provenance(**base, task=task, metric_column=column),
                           info={"csv_metric_column": column,
                                 "csv_test_column": test_columns.get(task)},
                           extra_columns=list(extra_columns))
            val = values[task]
            keep = np.flatnonzero(~np.isnan(val))
            if len(keep) < len(val):
                result.notes.append(f"{task}: {len(val) - len(keep)} row(s) without a value in "
                                    f"{column!r} were skipped")
            records = _task_records(keep, ids, seeds, val, tests.get(task), extras)
            result.rows[task] = store.append(task, records)
        result.archs[space] = store.num_archs
    result.stores[space] = Path(out)
    result.seconds = time.perf_counter() - t0
    return result


def _check_task_columns(task_columns: Mapping[str, str], test_columns: Mapping[str, str] | None,
                        datasets: Mapping[str, str] | None = None) -> dict[str, str]:
    """At least one task column, and test columns and dataset names only for tasks that have one;
    the test columns."""
    if not task_columns:
        raise ImporterError("give at least one task column (TASK=COLUMN)")
    test_columns = dict(test_columns or {})
    stray = sorted(set(test_columns) - set(task_columns))
    if stray:
        raise ImporterError(f"test columns given for task(s) {stray} that have no metric column")
    stray = sorted(set(datasets or {}) - set(task_columns))
    if stray:
        raise ImporterError(f"dataset names (--dataset) given for task(s) {stray} that have no metric column "
                            f"(tasks: {', '.join(task_columns)})")
    return test_columns


def _read_table(csv_path: Path, sep: str, arch_column: str, needed: Sequence[str],
                extra_columns: Sequence[str]) -> pd.DataFrame:
    """The CSV as a frame (architectures as text), with every ``needed`` column and at least one row."""
    if not csv_path.is_file():
        raise ImporterError(f"CSV file not found: {csv_path}")
    if not isinstance(sep, str) or not sep:
        raise ImporterError(f"the field separator (sep / --sep) must be a character (or a regular "
                            f"expression, e.g. '\\s+'), got {sep!r}")
    try:
        frame = pd.read_csv(csv_path, sep=sep, dtype={arch_column: str}, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise ImporterError(f"{csv_path}: cannot read CSV: {exc}") from None
    twice = _repeated_header_names(csv_path, sep, needed)
    if twice:
        raise ImporterError(f"{csv_path}: the header names column(s) {twice} more than once: which one is "
                            f"meant is ambiguous; rename the copies")
    missing = [c for c in dict.fromkeys(needed) if c not in frame.columns]
    if missing:
        raise ImporterError(f"{csv_path}: no column(s) {missing}; the CSV has: {', '.join(map(str, frame.columns))}")
    if len(set(extra_columns)) != len(list(extra_columns)):
        raise ImporterError(f"extra column listed twice in {list(extra_columns)}")
    if frame.empty:
        raise ImporterError(f"{csv_path}: the CSV has no rows")
    return frame


def _repeated_header_names(csv_path: Path, sep: str, needed: Sequence[str]) -> list[str]:
    """Names of ``needed`` that the CSV's header holds more than once (pandas would silently read
    the first and rename the others ``NAME.1``...); only for a one-character separator."""
    if len(sep) != 1:
        return []
    try:
        with open(csv_path, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh, delimiter=sep), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    names = [h.strip() for h in header]
    return sorted({c for c in needed if names.count(c) > 1})


def _parse_archs(frame: pd.DataFrame, arch_column: str, sp, space: str, csv_path: Path) -> list:
    """Every row's architecture in space ``sp``; one error naming the first bad lines if any is invalid."""
    archs: list = []
    errors: list[str] = []
    for i, text in enumerate(frame[arch_column].tolist()):
        if not isinstance(text, str) or not text.strip():
            errors.append(f"line {i + 2}: empty architecture")
            archs.append(None)
            continue
        try:
            archs.append(sp.from_string(text))
        except SpaceError as exc:
            errors.append(f"line {i + 2}: {exc}")
            archs.append(None)
    if errors:
        more = f" (and {len(errors) - _MAX_REPORTED} more)" if len(errors) > _MAX_REPORTED else ""
        raise ImporterError(f"{csv_path}: {len(errors)} architecture(s) in column {arch_column!r} "
                            f"are not valid in space {space!r}:\n  " + "\n  ".join(errors[:_MAX_REPORTED]) + more)
    return archs


def _occurrence_seeds(ids: np.ndarray) -> np.ndarray:
    """Each row's seed: the occurrence number (0, 1, ...) of its architecture in the table."""
    seen: dict[int, int] = {}
    seeds = np.empty(len(ids), dtype=np.int64)
    for i, a in enumerate(ids.tolist()):
        seeds[i] = seen.get(a, 0)
        seen[a] = seeds[i] + 1
    return seeds


def _task_records(keep: np.ndarray, ids: np.ndarray, seeds: np.ndarray, val: np.ndarray,
                  test: np.ndarray | None, extras: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """The store rows of one task: rows ``keep`` (those with a metric value)."""
    records = []
    for i in keep.tolist():
        r: dict[str, Any] = {"arch_id": int(ids[i]), "seed": int(seeds[i]), "val_metric": float(val[i])}
        if test is not None:
            r["test_metric"] = float(test[i])
        for c, v in extras.items():
            r[c] = float(v[i])
        records.append(r)
    return records
