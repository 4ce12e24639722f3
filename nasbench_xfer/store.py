"""The HDF5 benchmark store: architecture evaluations per task, crash-safe.

Layout (schema v1; ``docs/store.md`` is the reference for plain-h5py readers)::

    /                     attrs: format="nasbench_xfer.store", schema_version=1,
                                 created, package_version, provenance (json)
    /space                attrs: name, config (json)
    /space/tokens         (A, L) int16   canonical token sequence of each architecture
    /space/hash           (A,)   S16     canonical hash (16 hex digits)
    /space/spec           (A,)   str     spec string (space.to_string of the canonical form)
    /space/dense_map      (D,)   int32   optional: raw spec index -> architecture id (-1: none)
    /tasks/<task>         attrs: dataset, num_classes, metric, higher_is_better,
                                 protocols (json {name: definition}), provenance (json),
                                 preprocessing (json), info (json)
    /tasks/<task>/<col>   (R,)   one dataset per evaluation column (see EVAL_COLUMNS),
                                 plus extra float columns declared by the task
    /tasks/<task>/curves  (R, E) float32 per-epoch validation metric, NaN-padded

Enumerable spaces (NB201, TransNAS micro, NAS-Bench-Graph) may implement the
dense-index protocol: ``dense_index(arch) -> int`` (index of a *raw*
specification), ``dense_index_tokens(tokens) -> ndarray`` (vectorised, for
canonical token rows) and ``dense_canonical_table() -> ndarray`` (raw index ->
raw index of its canonical form, -1 if invalid).  The store then keeps
``/space/dense_map`` and answers lookups by array indexing instead of hashing.

Integrity: the file at ``path`` is only ever replaced whole.  A writer copies
it to ``path.tmp-<pid>``, writes there, fsyncs and renames the copy over the
original (atomic on POSIX), so a writer killed at any moment leaves either the
old or the new file, each complete; a reader never sees half a row.  Every
:meth:`Store.append` is one such commit (batch many rows per call, or group
calls with :meth:`Store.batch`).  A lock file ``path.lock`` keeps a second
writer out (it holds the writer's PID, for messages).  A path that is a symbolic
link is resolved first, so the lock and the replace act on the real file; the
file's permission bits are kept across replaces.

Checksums: every dataset is written with HDF5's fletcher32 filter, so a flipped
byte in a number is an error on reading, never a wrong value; the root attribute
``nbx_checksums`` (JSON) holds SHA-256 digests of every object's attributes and
of the variable-length string datasets (whose characters live outside the
chunks).  :meth:`Store.validate` checks both.  Stores written before checksums
existed are read as before; ``validate`` notes that they have none.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import functools
import hashlib
import json
import math
import numbers
import os
import socket
import stat
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from . import __version__
from .space import EnumerableSpace, SearchSpace, SpaceError, get_space

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
#: creation options of every dataset: fletcher32 checksums on each chunk
_CK = {"fletcher32": True}
#: what h5py and numpy raise on damaged files/attributes (turned into StoreError)
_DAMAGE = (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError,
           json.JSONDecodeError, RuntimeError)


class StoreError(Exception):
    """A store cannot be opened, read or written as asked (the message says why)."""


def provenance(**extra: Any) -> dict[str, Any]:
    """Standard provenance record: package version, date, host, plus ``extra``."""
    rec = {"package": "nasbench_xfer", "package_version": __version__,
           "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "hostname": socket.gethostname()}
    rec.update(extra)
    return rec


def _jload(value: Any, default: Any = None) -> Any:
    if value is None:
        return default
    if isinstance(value, bytes):
        value = value.decode()
    return json.loads(value)


def _fsync_dir(path: Path) -> None:
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _missing(value: Any) -> bool:
    """None or a scalar NaN (what a DataFrame holds in an empty cell)."""
    if value is None:
        return True
    return isinstance(value, float) and value != value


def real_path(path: str | os.PathLike) -> Path:
    """``path`` with every symbolic link resolved: the file a writer must lock and replace."""
    return Path(os.path.realpath(os.fspath(path)))


def lock_holder(path: str | os.PathLike) -> int | None:
    """PID written in the lock file of the store at ``path`` by its last writer (None if unknown)."""
    lock_path = real_path(path)
    lock_path = lock_path.with_name(lock_path.name + ".lock")
    try:
        text = lock_path.read_text().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def _attrs_digest(obj: Any) -> str:
    h = hashlib.sha256()
    for name in sorted(obj.attrs.keys()):
        if name == CHECKSUM_ATTR:
            continue
        value = obj.attrs[name]
        h.update(name.encode() + b"\0")
        if isinstance(value, bytes):
            h.update(value)
        elif isinstance(value, str):
            h.update(value.encode("utf-8", "surrogatepass"))
        else:
            arr = np.asarray(value)
            h.update(str(arr.dtype).encode() + repr(arr.shape).encode() + arr.tobytes())
        h.update(b"\0")
    return h.hexdigest()


def _strings_digest(ds: h5py.Dataset) -> str:
    h = hashlib.sha256()
    for v in ds[()]:
        h.update(v if isinstance(v, bytes) else str(v).encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()


def _is_vlen_str(ds: h5py.Dataset) -> bool:
    return h5py.check_string_dtype(ds.dtype) is not None and ds.dtype.kind == "O"


def _objects(f: h5py.File) -> list[tuple[str, Any]]:
    """Every group and dataset of ``f`` with its absolute name, root first."""
    items: list[tuple[str, Any]] = [("/", f)]
    f.visititems(lambda name, obj: items.append(("/" + name, obj)))
    return items


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


def _write_checksums(f: h5py.File, *, full: bool = False) -> None:
    """Refresh the root attribute :data:`CHECKSUM_ATTR` before a commit.

    Attribute digests are always recomputed (they are small); the digest of a
    variable-length string dataset only when its shape changed (the store only ever
    appends rows) or ``full``.
    """
    old: dict[str, Any] = {}
    if not full:
        with contextlib.suppress(Exception):
            old = _jload(f.attrs.get(CHECKSUM_ATTR), {}) or {}
    old_strings = old.get("strings", {}) if isinstance(old, dict) else {}
    attrs, strings = {}, {}
    for name, obj in _objects(f):
        attrs[name] = _attrs_digest(obj)
        if isinstance(obj, h5py.Dataset) and _is_vlen_str(obj):
            shape = list(obj.shape)
            prev = old_strings.get(name)
            if prev and prev[0] == shape:
                strings[name] = prev
            else:
                strings[name] = [shape, _strings_digest(obj)]
    f.attrs[CHECKSUM_ATTR] = json.dumps({"version": 1, "attrs": attrs, "strings": strings},
                                        sort_keys=True)


def _verify_checksums(f: h5py.File) -> tuple[list[str], list[str]]:
    """(problems, notes) of the store's own digests and of HDF5's per-chunk fletcher32
    checksums; every dataset is read in full (which also checks each compressed chunk)."""
    problems: list[str] = []
    notes: list[str] = []
    try:
        objects = _objects(f)
    except Exception as exc:  # a damaged object header
        return [f"cannot list the objects of the file ({exc.__class__.__name__}: {exc})"], notes
    unchecked = []
    for name, obj in objects:
        if not isinstance(obj, h5py.Dataset):
            continue
        try:
            obj[()]
        except Exception as exc:
            problems.append(f"{name}: cannot be read, damaged data ({exc.__class__.__name__}: {exc})")
            continue
        if (obj.chunks is None or not obj.fletcher32) and not _is_vlen_str(obj):
            unchecked.append(name)
    try:
        raw = f.attrs.get(CHECKSUM_ATTR)
    except Exception as exc:
        problems.append(f"attribute {CHECKSUM_ATTR} cannot be read ({exc.__class__.__name__}: {exc})")
        return problems, notes
    if raw is None:
        notes.append("no stored digests (written before nasbench_xfer kept checksums): bit rot in "
                     "attributes and strings cannot be detected; `nasbench-xfer merge -o NEW STORE` "
                     "writes a copy with checksums")
    else:
        try:
            ck = _jload(raw)
            attrs, strings = ck["attrs"], ck["strings"]
        except Exception as exc:
            problems.append(f"attribute {CHECKSUM_ATTR} is damaged ({exc.__class__.__name__}: {exc})")
            attrs, strings = None, None
        if attrs is not None:
            names = {n for n, _ in objects}
            for name, obj in objects:
                want = attrs.get(name)
                if want is None:
                    problems.append(f"{name}: object has no stored checksum (added outside nasbench_xfer?)")
                    continue
                try:
                    have = _attrs_digest(obj)
                except Exception as exc:
                    problems.append(f"{name}: attributes cannot be read ({exc.__class__.__name__}: {exc})")
                    continue
                if have != want:
                    problems.append(f"{name}: attributes do not match their checksum (damaged or "
                                    f"changed outside nasbench_xfer)")
            for name in sorted(set(attrs) - names):
                problems.append(f"{name}: listed in the checksums but missing from the file")
            for name, (shape, want) in sorted(strings.items()):
                obj = f.get(name)
                if not isinstance(obj, h5py.Dataset):
                    continue  # reported above as missing
                try:
                    ok = list(obj.shape) == shape and _strings_digest(obj) == want
                except Exception as exc:
                    problems.append(f"{name}: strings cannot be read ({exc.__class__.__name__}: {exc})")
                    continue
                if not ok:
                    problems.append(f"{name}: strings do not match their checksum (damaged or "
                                    f"changed outside nasbench_xfer)")
    if unchecked and raw is not None:
        notes.append(f"{len(unchecked)} dataset(s) without per-chunk checksums (written before "
                     f"nasbench_xfer kept them): {', '.join(unchecked[:5])}"
                     + (" ..." if len(unchecked) > 5 else ""))
    elif unchecked:
        notes.append(f"{len(unchecked)} dataset(s) without per-chunk checksums")
    return problems, notes


def _as_int(value: Any, what: str) -> int:
    """An integer given as int/numpy integer or an integral float (2.0); else a StoreError."""
    if isinstance(value, (bool, np.bool_)):
        raise StoreError(f"{what} must be an integer, got {value!r}")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
        return int(value)
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
    return arr.astype(np.float32)


def _check_task_name(task: str) -> None:
    if not isinstance(task, str) or not task or "/" in task or task.startswith("."):
        raise StoreError(f"invalid task name {task!r} (non-empty, no '/')")


class Store:
    """An open benchmark store.  Use :meth:`open` or :meth:`create`, ideally as a context manager.

    Reading never loads more than asked: :meth:`evaluations` reads one task's
    columns, :meth:`curves` one task's curves, architecture specs are read only
    when requested.
    """

    def __init__(self, path: Path, mode: str, _lock_fd: int | None = None):
        self.path = real_path(path)
        self.mode = mode
        self._lock_fd: int | None = _lock_fd
        self._h5: h5py.File | None = None
        self._tx: h5py.File | None = None  # the writable copy during a commit
        self._tx_depth = 0
        self._hash_index: dict[str, int] | None = None
        self.space: SearchSpace
        #: what the last :meth:`merge` dropped: {"duplicates": n, "conflicting": m}
        self.merge_report: dict[str, int] = {}
        if mode == "a" and self._lock_fd is None:
            # check that it is a store before creating a lock file beside it
            self._open_reader()
            self._close_reader()
            self._acquire_lock()
        try:
            self._open_reader()
        except BaseException:
            self._release_lock()
            raise

    # ------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | os.PathLike, mode: str = "r") -> Store:
        """Open an existing store, read-only (``"r"``) or for appending (``"a"``)."""
        if mode not in ("r", "a"):
            raise StoreError(f"mode must be 'r' or 'a', got {mode!r}")
        given = Path(path)
        path = real_path(given)
        if not path.exists():
            raise StoreError(f"no store at {given}")
        if path.is_dir():
            raise StoreError(f"{given} is a directory, not a store file")
        if mode == "a":
            links = path.stat().st_nlink
            if links > 1:
                raise StoreError(f"{path} has {links} hard links; a write replaces the file, so the "
                                 f"other links would keep the old version. Copy the store "
                                 f"(cp {path} NEW) and write the copy")
        return cls(path, mode)

    @classmethod
    def create(cls, path: str | os.PathLike, space: SearchSpace, *, overwrite: bool = False,
               provenance_info: Mapping[str, Any] | None = None) -> Store:
        """Create an empty store for ``space`` and return it open for appending."""
        given = Path(path)
        path = real_path(given)
        if path.is_dir():
            raise StoreError(f"{given} is a directory; give the path of the store file to write")
        if path.exists() and not overwrite:
            raise StoreError(f"{given} already exists (pass overwrite=True to replace it)")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder {path.parent}: {exc.strerror or exc}") from None
        # take the writer lock first: never replace a store another process is writing
        lock_fd = cls._lock(path)
        try:
            cls._write_empty(path, space, provenance_info)
        except OSError as exc:
            cls._unlock(lock_fd)
            raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from None
        except BaseException:
            cls._unlock(lock_fd)
            raise
        return cls(path, "a", _lock_fd=lock_fd)

    @staticmethod
    def _write_empty(path: Path, space: SearchSpace, provenance_info: Mapping[str, Any] | None) -> None:
        with h5py.File(f"{path}.new-{os.getpid()}", "w", driver="core", backing_store=False) as f:
            Store._fill_empty(f, space, provenance_info)
            f.flush()
            image = f.id.get_file_image()
        Store._commit_image(image, path)

    @staticmethod
    def _fill_empty(f: h5py.File, space: SearchSpace,
                    provenance_info: Mapping[str, Any] | None) -> None:
        f.attrs["format"] = FORMAT
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        f.attrs["package_version"] = __version__
        f.attrs["provenance"] = json.dumps(dict(provenance_info or provenance()))
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
        _write_checksums(f, full=True)

    @staticmethod
    def _lock(path: Path) -> int:
        """Take ``path.lock`` (exclusive, non-blocking) and clear copies left by killed writers."""
        lock_path = path.with_name(path.name + ".lock")
        try:
            fd = os.open(str(lock_path), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot create the lock file {lock_path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = lock_holder(path)
            who = f"PID {pid}" if pid else "another process"
            raise StoreError(f"{path} is being written by another process "
                             f"({who} holds the lock {lock_path})") from None
        with contextlib.suppress(OSError):  # for messages only: who holds the lock
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        # no other writer is alive: copies left by a killed writer are garbage
        for stale in path.parent.glob(path.name + ".tmp-*"):
            with contextlib.suppress(OSError):
                stale.unlink()
        return fd

    @staticmethod
    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def _acquire_lock(self) -> None:
        self._lock_fd = self._lock(self.path)

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            self._unlock(self._lock_fd)
            self._lock_fd = None

    def _close_reader(self) -> None:
        if self._h5 is not None:
            with contextlib.suppress(Exception):
                self._h5.close()
            self._h5 = None

    def _damage_error(self, exc: BaseException) -> StoreError:
        return StoreError(f"{self.path}: damaged store ({exc.__class__.__name__}: {exc}); "
                          f"run `nasbench-xfer validate {self.path}` for a full report")

    def _open_reader(self) -> None:
        try:
            f = h5py.File(self.path, "r")
        except FileNotFoundError:
            raise StoreError(f"no store at {self.path}") from None
        except PermissionError:
            raise StoreError(f"{self.path}: permission denied") from None
        except OSError as exc:
            raise StoreError(f"{self.path} is not a readable HDF5 store (corrupt or another "
                             f"kind of file): {exc.__class__.__name__}") from None
        try:
            fmt = f.attrs.get("format")
            if isinstance(fmt, bytes):
                fmt = fmt.decode()
            if fmt != FORMAT:
                raise StoreError(f"{self.path} is an HDF5 file but not a nasbench_xfer store "
                                 f"(format attribute {fmt!r})")
            version = int(f.attrs.get("schema_version", -1))
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path} has store schema version {version}, newer than "
                                 f"this nasbench_xfer {__version__} supports (version "
                                 f"{SCHEMA_VERSION}); upgrade nasbench_xfer to read it")
            if version < 1:
                raise StoreError(f"{self.path}: invalid schema version {version}")
            for name in ("space", "space/tokens", "space/hash", "space/spec", "tasks"):
                if name not in f:
                    raise StoreError(f"{self.path}: damaged store, missing /{name}")
            g = f["space"]
            try:
                self.space = get_space(str(g.attrs["name"]), _jload(g.attrs["config"], {}))
            except (SpaceError, TypeError, KeyError) as exc:
                raise StoreError(f"{self.path}: cannot rebuild the search space: {exc}") from None
        except StoreError:
            f.close()
            raise
        except Exception as exc:  # h5py internals on a damaged file
            f.close()
            raise StoreError(f"{self.path}: damaged store ({exc.__class__.__name__}: {exc})") from None
        self._h5 = f
        self._hash_index = None

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None
        self._release_lock()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, space={self.space!r}, tasks={self.tasks})"

    @property
    def _f(self) -> h5py.File:
        """The handle to read from: the pending copy inside a commit, else the file."""
        if self._tx is not None:
            return self._tx
        if self._h5 is None:
            raise StoreError(f"{self.path}: store is closed")
        return self._h5

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
        g = self._f["tasks"].get(task)
        if g is None:
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
        return int(self._task_group(task)["arch"].shape[0])

    @property
    def num_archs(self) -> int:
        return int(self._f["space/hash"].shape[0])

    # ---------------------------------------------------------- reading
    @_damaged
    def evaluations(self, task: str, *, spec: bool = False) -> pd.DataFrame:
        """All evaluations of ``task``: one row each, columns ``arch_id``, ``hash``,
        the evaluation columns and the task's extra columns (``spec=True`` adds spec strings)."""
        g = self._check_task(task)
        cols: dict[str, Any] = {}
        for name, (dtype, _) in EVAL_COLUMNS.items():
            data = g[name][()]
            if dtype is str:
                data = np.asarray([v.decode() if isinstance(v, bytes) else v for v in data], dtype=object)
            cols["arch_id" if name == "arch" else name] = data
        for name in _jload(g.attrs.get("extra_columns"), []):
            cols[name] = g[name][()]
        frame = pd.DataFrame(cols)
        ids = frame["arch_id"].to_numpy()
        hashes = self._f["space/hash"]
        if len(ids):
            frame.insert(1, "hash", self._read_rows(hashes, ids).astype("U16"))
            if spec:
                specs = self._read_rows(self._f["space/spec"], ids)
                frame.insert(2, "spec", [s.decode() if isinstance(s, bytes) else s for s in specs])
        else:
            frame.insert(1, "hash", pd.Series([], dtype=object))
            if spec:
                frame.insert(2, "spec", pd.Series([], dtype=object))
        return frame

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
        return self._check_task(task)["curves"][()]

    def arch_ids(self, archs: Iterable[Hashable]) -> np.ndarray:
        """Store ids of ``archs`` (-1 where the store does not hold the architecture)."""
        archs = list(archs)
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
        toks = self._f["space/tokens"][()] if ids is None else self._read_rows(
            self._f["space/tokens"], np.asarray(ids, dtype=np.int64))
        return [self.space.decode(t) for t in toks]

    @_damaged
    def metric_table(self, task: str, column: str = "val_metric") -> np.ndarray:
        """Array over architecture ids with the mean of ``column`` over that task's evaluations
        (NaN where the architecture was not evaluated on the task)."""
        g = self._check_task(task)
        ids = g["arch"][()]
        vals = g[column][()].astype(np.float64)
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

    def lookup(self, task: str, archs: Iterable[Hashable] | None = None, column: str = "val_metric",
               *, dense_index: np.ndarray | None = None) -> np.ndarray:
        """``column`` (mean over seeds) of each architecture on ``task``; NaN if not evaluated.

        Give architectures, or (enumerable spaces) their raw ``dense_index`` array for a
        vectorised lookup without building architecture objects.
        """
        if (archs is None) == (dense_index is None):
            raise StoreError("lookup needs exactly one of archs and dense_index")
        ids = self.arch_ids(archs) if archs is not None else self.dense_ids(dense_index)
        table = self.metric_table(task, column)
        out = np.full(len(ids), np.nan)
        ok = ids >= 0
        out[ok] = table[ids[ok]]
        return out

    def _hashes(self) -> dict[str, int]:
        if self._hash_index is None:
            raw = self._f["space/hash"][()]
            self._hash_index = {h.decode(): i for i, h in enumerate(raw)}
        return self._hash_index

    def _dense_map(self) -> np.ndarray | None:
        """The dense lookup map, or None if the space has none or it is stale (inside a batch)."""
        ds = self._f["space"].get("dense_map")
        if ds is None or ds.attrs.get("num_archs", -1) != self.num_archs:
            return None
        return ds[()]

    # ---------------------------------------------------------- writing
    def _require_writer(self) -> None:
        if self.mode != "a":
            raise StoreError(f"{self.path} is open read-only; open it with mode='a' to write")

    @contextlib.contextmanager
    def batch(self) -> Iterator[Store]:
        """Group several writes into one commit: all of them land, or none do.

        The pending version is built in memory (HDF5's core driver, no backing file);
        the commit writes its image to ``path.tmp-<pid>`` with plain ``write`` calls,
        fsyncs it and renames it over the store.  So a full disk or an I/O error is an
        ordinary ``StoreError`` with the store unchanged: no HDF5 handle is ever left
        half-written on disk (which made HDF5 crash when it was later closed).
        """
        self._require_writer()
        if self._tx_depth == 0:
            try:
                self._close_reader()
                self._tx = h5py.File(self.path, "r+", driver="core", backing_store=False)
            except BaseException as exc:
                self._tx = None
                self._open_reader()
                if isinstance(exc, OSError):
                    raise self._damage_error(exc) from None
                raise
        self._tx_depth += 1
        ok = False
        try:
            yield self
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
                        self._commit_image(image, self.path)
                finally:
                    self._open_reader()

    @staticmethod
    def _commit_image(image: bytes, path: Path) -> None:
        """Write a file image beside ``path`` and atomically replace ``path`` with it."""
        tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
        try:
            Store._write_file(tmp, image)
            Store._durable_replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StoreError(f"cannot write {path}: {exc.strerror or exc} "
                             f"(the store is unchanged)") from None

    @staticmethod
    def _write_file(dest: Path, data: bytes) -> None:
        fd = os.open(str(dest), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)

    @staticmethod
    def _durable_replace(tmp: Path, path: Path) -> None:
        """fsync ``tmp``, rename it over ``path`` (keeping ``path``'s permission bits), fsync
        the folder: after it returns the new version is on disk, whatever happens next."""
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)

    def _finalize(self, f: h5py.File) -> None:
        """Refresh derived data before a commit: the dense lookup map, then the checksums."""
        self._refresh_dense_map(f)
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
        _check_task_name(task)
        self._require_writer()
        for c in extra_columns:
            if c in EVAL_COLUMNS or c in ("curves", "arch_id", "hash", "spec"):
                raise StoreError(f"extra column {c!r} clashes with a standard column")
        if task in self._f["tasks"]:
            if exist_ok:
                return
            raise StoreError(f"task {task!r} already exists in {self.path}")
        with self.batch():
            g = self._f["tasks"].create_group(task)
            g.attrs["dataset"] = dataset
            g.attrs["metric"] = metric
            g.attrs["higher_is_better"] = bool(higher_is_better)
            g.attrs["num_classes"] = int(num_classes)
            g.attrs["protocols"] = json.dumps(dict(protocols or {}), sort_keys=True)
            g.attrs["provenance"] = json.dumps(dict(provenance_info or provenance()))
            g.attrs["preprocessing"] = json.dumps(dict(preprocessing or {}))
            g.attrs["info"] = json.dumps(dict(info or {}))
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

    def register_protocol(self, task: str, name: str, definition: Mapping[str, Any]) -> None:
        """Record a training protocol under ``name``; a different definition under the same name
        is refused, so results of different protocols are never mixed silently."""
        self._require_writer()
        g = self._task_group(task)
        protocols = _jload(g.attrs.get("protocols"), {})
        definition = json.loads(json.dumps(dict(definition), sort_keys=True))
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
        archs = list(archs)
        space = self.space
        index = self._hashes()
        ids = np.empty(len(archs), dtype=np.int64)
        new_tokens, new_hash, new_spec = [], [], []
        pending: dict[str, int] = {}
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
            elif h in pending:
                ids[i] = pending[h]
            else:
                canon = space.canonical(a)
                pending[h] = ids[i] = len(index) + len(pending)
                new_tokens.append(space.encode(canon))
                new_hash.append(h.encode())
                new_spec.append(space.to_string(canon))
        if new_tokens:
            with self.batch():
                g = self._f["space"]
                n0 = g["hash"].shape[0]
                n1 = n0 + len(new_tokens)
                for name, data in (("tokens", np.asarray(new_tokens, dtype=np.int16)),
                                   ("hash", np.asarray(new_hash, dtype="S16")),
                                   ("spec", np.asarray(new_spec, dtype=object))):
                    g[name].resize(n1, axis=0)
                    g[name][n0:n1] = data
                index.update(pending)
        return ids

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
        g = self._task_group(task)
        extras = list(_jload(g.attrs.get("extra_columns"), []))
        protocols = _jload(g.attrs.get("protocols"), {})
        known = set(EVAL_COLUMNS) | set(extras) | {"arch_id", "curve"}
        for i, r in enumerate(records):
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
        with self.batch():
            by_arch = [i for i, r in enumerate(records) if "arch" in r]
            ids = np.empty(len(records), dtype=np.int64)
            if by_arch:
                ids[by_arch] = self.add_archs([records[i]["arch"] for i in by_arch])
            num_archs = self.num_archs
            for i, r in enumerate(records):
                if "arch_id" in r:
                    ids[i] = _as_int(r["arch_id"], f"record {i}: arch_id")
                    if not 0 <= ids[i] < num_archs:
                        raise StoreError(f"record {i}: arch_id {ids[i]} out of range")
            g = self._task_group(task)
            n0 = g["arch"].shape[0]
            n1 = n0 + len(records)
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
            width = max([g["curves"].shape[1]] + [len(c) for c in curves])
            for name, data in columns.items():
                g[name].resize(n1, axis=0)
                g[name][n0:n1] = data
            cds = g["curves"]
            cds.resize((n1, width))
            block = np.full((len(records), width), np.nan, dtype=np.float32)
            for i, c in enumerate(curves):
                block[i, : len(c)] = c
            cds[n0:n1, :] = block
        return len(records)

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
        return problems

    def _validate_layout(self, problems: list[str], full: bool) -> None:
        f = self._f
        g = f["space"]
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
            for i, (t, h) in enumerate(zip(tokens, hashes)):
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
        for task in self.tasks:
            tg = f["tasks"][task]
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
                continue
            rows = tg["arch"].shape[0]
            for c in list(EVAL_COLUMNS) + extras + ["curves"]:
                if tg[c].shape[0] != rows:
                    problems.append(f"task {task}: column {c} has {tg[c].shape[0]} rows, expected {rows}")
            try:
                ids = tg["arch"][()]
            except Exception:
                continue  # reported by the checksum pass
            if len(ids) and (ids.min() < 0 or ids.max() >= n):
                problems.append(f"task {task}: architecture ids outside 0..{n - 1}")
            try:
                protocols = _jload(tg.attrs.get("protocols"), {})
                used = {p.decode() if isinstance(p, bytes) else p for p in tg["protocol"][()]}
            except Exception:
                continue
            unknown = sorted(p for p in used if p and p not in protocols)
            if unknown:
                problems.append(f"task {task}: evaluations use unregistered protocols {unknown}")

    def _check_task(self, task: str) -> h5py.Group:
        """The task's group after the cheap layout checks (columns present and aligned, ids in
        range); a damaged task raises a StoreError that points to ``validate``."""
        g = self._task_group(task)
        try:
            extras = list(_jload(g.attrs.get("extra_columns"), []))
            missing = [c for c in list(EVAL_COLUMNS) + ["curves"] + extras if c not in g]
            if missing:
                raise StoreError(f"task {task!r} misses columns {missing}")
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
        if out.is_dir():
            raise StoreError(f"{given} is a directory; give the path of the store file to write")
        if out.exists() and not overwrite:
            raise StoreError(f"{given} already exists (pass overwrite=True to replace it)")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder {out.parent}: {exc.strerror or exc}") from None
        sources: list[Store] = []
        lock_fd: int | None = None
        building = out.with_name(f".{out.name}.merge-{os.getpid()}")
        merged: Store | None = None
        report = {"duplicates": 0, "conflicting": 0}
        try:
            sources = [cls.open(p, "r") for p in paths]
            lock_fd = cls._lock(out)  # the output may not be replaced while someone writes it
            for stale in list(out.parent.glob(f".{out.name}.merge-*")) + list(
                    out.parent.glob(f".{out.name}.importing-*")):
                with contextlib.suppress(OSError):  # left by killed merges/imports of out
                    stale.unlink()
            space = sources[0].space
            for s in sources[1:]:
                if s.space != space:
                    raise StoreError(f"cannot merge {s.path} (space {s.space!r}) with "
                                     f"{sources[0].path} (space {space!r})")
            merged = cls.create(building, space, overwrite=True,
                                provenance_info=provenance(merged_from=[str(p) for p in paths]))
            with merged.batch():
                seen: dict[tuple, tuple] = {}
                for s in sources:
                    for task in s.tasks:
                        info = s.task_info(task)
                        extras = info["extra_columns"]
                        if task in merged.tasks:
                            have = merged.task_info(task)
                            for key in ("dataset", "metric", "higher_is_better", "num_classes"):
                                if have[key] != info[key]:
                                    raise StoreError(f"task {task!r}: {key} differs between inputs "
                                                     f"({have[key]!r} vs {info[key]!r} in {s.path})")
                            if set(have["extra_columns"]) != set(extras):
                                raise StoreError(f"task {task!r}: extra columns differ between inputs")
                            prov = merged._task_group(task).attrs
                            plist = _jload(prov["provenance"], {})
                            plist = plist if isinstance(plist, list) else [plist]
                            plist.append(info["provenance"])
                            prov["provenance"] = json.dumps(plist)
                        else:
                            merged.add_task(task, dataset=info["dataset"], metric=info["metric"],
                                            higher_is_better=info["higher_is_better"],
                                            num_classes=info["num_classes"],
                                            provenance_info=info["provenance"],
                                            preprocessing=info["preprocessing"], info=info["info"],
                                            extra_columns=extras)
                        for name, definition in info["protocols"].items():
                            merged.register_protocol(task, name, definition)
                        frame = s.evaluations(task)
                        if frame.empty:
                            continue
                        curves = s.curves(task)
                        archs = s.archs(np.unique(frame["arch_id"].to_numpy()))
                        by_id = dict(zip(np.unique(frame["arch_id"].to_numpy()).tolist(), archs))
                        records = []
                        for row, curve in zip(frame.to_dict("records"), curves):
                            key = (task, row["hash"], int(row["seed"]), row["protocol"])
                            values = (row["val_metric"], row["test_metric"], row["status"])
                            if key in seen:
                                report["duplicates"] += 1
                                kept = seen[key]
                                if any(not (a == b or (_missing(a) and _missing(b)))
                                       for a, b in zip(kept, values)):
                                    report["conflicting"] += 1
                                continue
                            seen[key] = values
                            rec = {k: v for k, v in row.items() if k not in ("arch_id", "hash")}
                            rec["arch"] = by_id[row["arch_id"]]
                            finite = np.flatnonzero(~np.isnan(curve))
                            rec["curve"] = curve[: finite[-1] + 1] if len(finite) else curve[:0]
                            records.append(rec)
                        merged.append(task, records)
            merged.close()
            try:
                cls._durable_replace(building, out)
            except OSError as exc:
                raise StoreError(f"cannot write {given}: {exc.strerror or exc} "
                                 f"(an existing {given} is unchanged)") from None
            result = cls(out, "a", _lock_fd=lock_fd)
            lock_fd = None  # now the result's
            result.merge_report = report
            return result
        except StoreError as exc:
            raise StoreError(str(exc).replace(str(building), str(given))) from None
        finally:
            if lock_fd is not None:
                cls._unlock(lock_fd)
            if merged is not None:
                merged.close()
            for leftover in (building, building.with_name(building.name + ".lock")):
                with contextlib.suppress(OSError):
                    leftover.unlink()
            for s in sources:
                s.close()

    # ------------------------------------------------------------ export
    @_damaged
    def summary(self) -> dict[str, Any]:
        """What ``nasbench-xfer info`` prints: space, counts, metric ranges, provenance.
        A store whose layout is damaged raises a StoreError pointing to ``validate``."""
        tasks = {}
        for t in self.tasks:
            info = self.task_info(t)
            g = self._check_task(t)
            vals = g["val_metric"][()]
            ok = vals[~np.isnan(vals)]
            info["val_metric_range"] = [float(ok.min()), float(ok.max())] if len(ok) else None
            info["num_archs"] = int(len(np.unique(g["arch"][()])))
            info["max_epochs"] = int(g["curves"].shape[1])
            tasks[t] = info
        return {"path": str(self.path), **self.attrs, "space": self.space.name,
                "space_config": self.space.config(), "num_archs": self.num_archs, "tasks": tasks}
