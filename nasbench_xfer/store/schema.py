"""Schema of the store: format constants, the evaluation columns, the layout of an empty
store and of a task, value checks for appended records, and the error type.

Everything that knows *what* the file holds (not how it is locked, read or written)
lives here; ``docs/store.md`` is the reference for plain-h5py readers.
"""
from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import math
import numbers
import re
import secrets
import socket
from collections.abc import Mapping, Sequence
from typing import Any

import h5py
import numpy as np

from .. import __version__
from ..space import SearchSpace

FORMAT = "nasbench_xfer.store"
SCHEMA_VERSION = 1

#: column -> (numpy dtype, fill value when a record does not give it)
EVAL_COLUMNS: dict[str, tuple[Any, Any]] = {
    "arch": (np.int32, None),
    "seed": (np.int32, 0),
    "val_metric": (np.float64, np.nan),
    "test_metric": (np.float64, np.nan),
    "params": (np.float64, np.nan),
    "flops": (np.float64, np.nan),
    "train_seconds": (np.float64, np.nan),
    "status": (str, "ok"),
    "protocol": (str, ""),
    "device": (str, ""),
    "finished_at": (np.float64, np.nan),
}
_STR = h5py.string_dtype("utf-8")
#: root attribute with the store's own digests (attributes, variable-length strings)
CHECKSUM_ATTR = "nbx_checksums"
#: root attribute: random token written by every commit; the journal names the one it extends
GENERATION_ATTR = "nbx_generation"
#: the generation a commit replaced: a journal that names it was folded into this file
PARENT_ATTR = "nbx_parent_generation"
#: creation options of every dataset: fletcher32 checksums on each chunk
_CK = {"fletcher32": True}
#: what h5py and numpy raise on damaged files/attributes (turned into StoreError)
_DAMAGE = (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError,
           json.JSONDecodeError, RuntimeError)


class StoreError(Exception):
    """A store cannot be opened, read or written as asked (the message says why)."""


class StoreLocked(StoreError):
    """Another writer holds the store's lock: another process (``pid``, as written in the lock
    file, when known) or, with ``here`` true, a Store of this process opened for writing and
    not yet closed."""

    def __init__(self, message: str, pid: int | None = None, *, here: bool = False):
        super().__init__(message)
        self.pid = pid
        self.here = here


def provenance(**extra: Any) -> dict[str, Any]:
    """Standard provenance record: package version, date, host, plus ``extra``."""
    rec = {"package": "nasbench_xfer", "package_version": __version__,
           "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "hostname": socket.gethostname()}
    rec.update(extra)
    return rec


def file_sha256(path: Any) -> str:
    """SHA-256 (hex) of a file's bytes: what provenance records of a source file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def normal_protocol(name: Any, definition: Any) -> dict[str, Any]:
    """A protocol definition as the store keeps it (JSON data with sorted keys), checked: a
    StoreError for a bad name or a definition that is not a mapping of JSON data."""
    if not isinstance(definition, Mapping):
        raise StoreError(f"protocol {name!r}: the definition must be a mapping, got {type(definition).__name__}")
    if not isinstance(name, str) or not name:
        raise StoreError(f"a protocol name must be a non-empty string, got {name!r}")
    return json.loads(_json_attr(dict(definition), f"protocol {name!r}"))


def _jload(value: Any, default: Any = None) -> Any:
    if value is None:
        return default
    if isinstance(value, bytes):
        value = value.decode()
    return json.loads(value)


def _missing(value: Any) -> bool:
    """None or a scalar NaN (what a DataFrame holds in an empty cell)."""
    if value is None:
        return True
    return isinstance(value, float) and value != value



def _damaged(method):
    """Turn errors that h5py/numpy/json raise on a damaged file into a StoreError naming the path."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except StoreError:
            raise
        except _DAMAGE as exc:
            raise self._damage_error(exc) from None
    return wrapper



def _as_int(value: Any, what: str) -> int:
    """An integer given as int/numpy integer or an integral float (2.0); else a StoreError."""
    if isinstance(value, (bool, np.bool_)):
        raise StoreError(f"{what} must be an integer, got {value!r}")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
        return int(float(value))
    raise StoreError(f"{what} must be an integer, got {value!r} ({type(value).__name__})")


def _as_float(value: Any, what: str) -> float:
    """A finite float, or NaN for a missing value (None/NaN); inf and non-numbers are refused."""
    if _missing(value):
        return math.nan
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise StoreError(f"{what} must be a number, got {value!r} ({type(value).__name__})")
    v = float(value)
    if math.isinf(v):
        raise StoreError(f"{what} is {v}; values must be finite (NaN or None means missing)")
    return v


def _as_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise StoreError(f"{what} must be a string, got {value!r} ({type(value).__name__})")
    if "\x00" in value:
        raise StoreError(f"{what} holds a NUL character, which HDF5 strings cannot store: {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise StoreError(f"{what} is not valid text (UTF-8 cannot encode it: {exc.reason}): {value!r}") from None
    return str(value)


def _as_curve(value: Any, what: str) -> np.ndarray:
    if value is None or (isinstance(value, float) and value != value):
        return np.zeros(0, dtype=np.float32)
    if isinstance(value, (str, bytes)):
        raise StoreError(f"{what} must be a 1-D sequence of numbers, got a string")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} must be a 1-D sequence of numbers ({exc})") from None
    if arr.ndim != 1:
        raise StoreError(f"{what} must be 1-D (one value per epoch), got shape {arr.shape}")
    if np.isinf(arr).any():
        raise StoreError(f"{what} holds inf at epoch(s) {np.flatnonzero(np.isinf(arr))[:5].tolist()}; "
                         f"values must be finite (NaN means missing)")
    big = np.abs(np.nan_to_num(arr)) > np.finfo(np.float32).max
    if big.any():
        raise StoreError(f"{what}: value(s) at epoch(s) {np.flatnonzero(big)[:5].tolist()} exceed the "
                         f"float32 range curves are stored in")
    return arr.astype(np.float32)


def check_task_name(task: str) -> None:
    """StoreError unless ``task`` can name a task of a store (checked before any work starts)."""
    if (not isinstance(task, str) or not task or "/" in task or task.startswith(".")
            or any(ord(ch) < 32 for ch in task)):
        raise StoreError(f"invalid task name {task!r} (non-empty, no '/', no leading '.', "
                         f"no control characters)")


#: names an extra column may not take: the standard columns and what reads and exports add
RESERVED_COLUMNS = frozenset(EVAL_COLUMNS) | {"curves", "curve", "arch_id", "hash", "spec", "task"}


def _check_extra_columns(columns: Any) -> list[str]:
    """The extra column names, checked: strings, distinct, no clash with a standard column."""
    if isinstance(columns, (str, bytes)):
        raise StoreError(f"extra_columns must be a list of names, got the string {columns!r}")
    names = list(columns)
    for c in names:
        if not isinstance(c, str) or not c or "/" in c or any(ord(ch) < 32 for ch in c):
            raise StoreError(f"invalid extra column name {c!r} (a non-empty string, no '/')")
        if c in RESERVED_COLUMNS or re.fullmatch(r"curve_\d+", c):
            raise StoreError(f"extra column {c!r} clashes with a standard column "
                             f"({', '.join(sorted(RESERVED_COLUMNS))}, curve_<epoch>)")
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise StoreError(f"extra columns named twice: {dup}")
    return names


def _json_attr(value: Any, what: str) -> str:
    """``value`` as the JSON text of an attribute; a StoreError if it is not JSON data."""
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} must be JSON data (numbers, strings, lists, mappings): {exc}") from None



def column_layout_problems(g: h5py.Group, extras: Sequence[str]) -> list[str]:
    """Columns of the task group ``g`` whose rank or kind is not the schema's (metadata only:
    nothing is read).  Columns must be present (checked before)."""
    problems = []
    want: dict[str, tuple[int, str]] = {name: (1, "O" if dtype is str else np.dtype(dtype).kind)
                                        for name, (dtype, _) in EVAL_COLUMNS.items()}
    want.update({name: (1, "f") for name in extras})
    want["curves"] = (2, "f")
    for name, (ndim, kind) in want.items():
        ds = g[name]
        if not isinstance(ds, h5py.Dataset):
            problems.append(f"column {name} is not a dataset")
            continue
        have = "O" if h5py.check_string_dtype(ds.dtype) is not None else ds.dtype.kind
        if ds.ndim != ndim or have != kind:
            what = {"O": "strings", "f": "floats", "i": "integers"}
            problems.append(f"column {name} holds {ds.ndim}-D {what.get(have, ds.dtype)}, expected "
                            f"{ndim}-D {what[kind]}")
    return problems


def new_generation() -> str:
    return secrets.token_hex(8)


def fill_empty(f: h5py.File, space: SearchSpace,
                provenance_info: Mapping[str, Any] | None) -> None:
    f.attrs["format"] = FORMAT
    f.attrs["schema_version"] = SCHEMA_VERSION
    f.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    f.attrs["package_version"] = __version__
    f.attrs["provenance"] = json.dumps(dict(provenance_info or provenance()))
    f.attrs[GENERATION_ATTR] = new_generation()
    g = f.create_group("space")
    g.attrs["name"] = space.name
    g.attrs["config"] = json.dumps(space.config())
    g.create_dataset("tokens", shape=(0, space.seq_len), maxshape=(None, space.seq_len),
                     dtype=np.int16, chunks=(4096, space.seq_len), compression="gzip", **_CK)
    g.create_dataset("hash", shape=(0,), maxshape=(None,), dtype="S16", chunks=(16384,),
                     compression="gzip", **_CK)
    # HDF5 cannot put fletcher32 on variable-length strings: nbx_checksums covers them
    g.create_dataset("spec", shape=(0,), maxshape=(None,), dtype=_STR, chunks=(4096,),
                     compression="gzip")
    f.create_group("tasks")


def create_task(tasks: h5py.Group, task: str, *, dataset: str, metric: str, higher_is_better: bool,
                num_classes: int, protocols: Mapping[str, Any] | None,
                provenance_info: Mapping[str, Any] | None, preprocessing: Mapping[str, Any] | None,
                info: Mapping[str, Any] | None, extra_columns: Sequence[str]) -> None:
    """Create the group and the (empty) datasets of ``task`` under ``/tasks``."""
    texts = {}
    for key, value in (("protocols", protocols), ("provenance", provenance_info or provenance()),
                       ("preprocessing", preprocessing), ("info", info)):
        if value is not None and not isinstance(value, Mapping):
            raise StoreError(f"task {task!r}: {key} must be a mapping, got {type(value).__name__}")
        texts[key] = _json_attr(dict(value or {}), f"task {task!r}: {key}")
    for key, text in (("dataset", dataset), ("metric", metric)):
        if not isinstance(text, str):
            raise StoreError(f"task {task!r}: {key} must be a string, got {text!r}")
    extra_columns = _check_extra_columns(extra_columns)
    g = tasks.create_group(task)
    g.attrs["dataset"] = dataset
    g.attrs["metric"] = metric
    g.attrs["higher_is_better"] = bool(higher_is_better)
    g.attrs["num_classes"] = _as_int(num_classes, f"task {task!r}: num_classes")
    for key, text in texts.items():
        g.attrs[key] = text
    g.attrs["extra_columns"] = json.dumps(list(extra_columns))
    # numbers are stored uncompressed (metrics barely compress and lookups read
    # whole columns); repetitive strings and NaN-padded curves are gzipped
    for name, (dtype, _) in EVAL_COLUMNS.items():
        g.create_dataset(name, shape=(0,), maxshape=(None,),
                         dtype=_STR if dtype is str else dtype, chunks=(8192,),
                         compression="gzip" if dtype is str else None,
                         fletcher32=dtype is not str)
    for name in extra_columns:
        g.create_dataset(name, shape=(0,), maxshape=(None,), dtype=np.float64,
                         chunks=(8192,), **_CK)
    g.create_dataset("curves", shape=(0, 0), maxshape=(None, None), dtype=np.float32,
                     chunks=(1024, 16), compression="gzip", fillvalue=np.nan, **_CK)
