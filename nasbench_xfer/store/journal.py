"""The append journal: ``STORE.h5.journal``, appends that cost what they append.

A store's HDF5 file is only ever replaced whole (:mod:`.locking`), which costs a copy of
the file per commit.  So :meth:`Store.append` on a store of some size writes a journal
record instead: one framed record per append, appended to ``path.journal`` with a single
``write`` and an ``fsync`` while the writer holds the store's lock.  Readers apply the
journal's rows on top of the file's (:class:`Overlay`); :meth:`Store.compact` folds them
into the file with an ordinary whole-file commit and removes the journal.

File format: a sequence of records, each ::

    b"NBXR"  uint64 payload length  uint32 crc32(magic+length)  32-byte sha256(payload)  payload

(little-endian).  The payload is UTF-8 JSON (no pickle).  The first record is the header
``{"journal": 1, "base": GENERATION}``: the ``nbx_generation`` root attribute of the HDF5
file the journal extends.  Every commit of the file writes a new generation, so a journal
that a commit has folded in (and a killed writer could not remove) no longer matches and
is ignored, never applied twice.  Each later record is one append::

    {"task": T, "arch_base": A, "row_base": R,
     "archs": {"tokens": [[...]], "hash": [...], "spec": [...]},   # architectures added
     "columns": {column: [values]}, "curves": [[...]]}

``arch_base``/``row_base`` are the store's architecture and row counts before the record:
a record that does not follow the store exactly is damage, not data.

Torn tail: a writer killed inside ``write`` leaves a record cut short (the file ends
before the record does).  Readers ignore it; the next writer truncates it under the lock.
A complete record whose header crc or payload digest does not match is *damage*: reads
raise a :class:`StoreError` and ``validate`` reports it; it is never read as data.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .locking import fsync_dir
from .schema import EVAL_COLUMNS

MAGIC = b"NBXR"
#: magic, payload length, crc32 of magic+length, sha256 of the payload
HEAD = struct.Struct("<4sQI32s")
VERSION = 1


def journal_path(path: Path) -> Path:
    """Where the journal of the store file ``path`` (a real path) lives."""
    return path.with_name(path.name + ".journal")


def frame(payload: bytes) -> bytes:
    """One record: header (magic, length, crc, digest) and ``payload``."""
    prefix = struct.pack("<4sQ", MAGIC, len(payload))
    return (HEAD.pack(MAGIC, len(payload), zlib.crc32(prefix), hashlib.sha256(payload).digest())
            + payload)


def header_payload(base: str) -> bytes:
    return json.dumps({"journal": VERSION, "base": base}).encode()


@dataclass
class Scan:
    """What a journal file holds, as far as it is sound."""

    exists: bool = False
    base: str | None = None          # generation of the file it extends (None: no sound header)
    records: list[dict] = field(default_factory=list)  # append records, in order
    end: int = 0                     # byte offset after the last sound record
    size: int = 0                    # size of the file
    damage: str | None = None        # the first damaged record, if any
    torn: int = 0                    # bytes of a torn tail (ignored)


def scan(path: Path) -> Scan:
    """Read and check the journal at ``path`` (a journal path); never raises on damage."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Scan()
    except OSError as exc:
        return Scan(exists=True, damage=f"cannot be read ({exc.strerror or exc})")
    out = Scan(exists=True, size=len(data))
    payloads: list[dict] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < HEAD.size:
            out.torn = len(data) - pos
            break
        magic, length, crc, digest = HEAD.unpack_from(data, pos)
        where = f"record {len(payloads)} (byte {pos})"
        if magic != MAGIC or zlib.crc32(data[pos:pos + 12]) != crc:
            out.damage = f"{where}: damaged record header"
            break
        end = pos + HEAD.size + length
        if end > len(data):
            out.torn = len(data) - pos
            break
        payload = data[pos + HEAD.size:end]
        if hashlib.sha256(payload).digest() != digest:
            out.damage = f"{where}: payload does not match its checksum"
            break
        try:
            rec = json.loads(payload)
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            out.damage = f"{where}: payload is not valid JSON ({exc})"
            break
        payloads.append(rec)
        pos = end
    out.end = pos
    if payloads:
        head = payloads[0]
        if head.get("journal") != VERSION or not isinstance(head.get("base"), str):
            out.damage = out.damage or f"record 0: not a journal header ({head!r:.80})"
        else:
            out.base = head["base"]
        out.records = payloads[1:]
    return out


def orphan_path(path: Path, base: str | None) -> Path:
    """Where a journal of the store file ``path`` that extends another version of the file
    (generation ``base``) is kept aside: ``STORE.journal.orphan-<generation>`` (the generation
    reduced to letters and digits), ``-2``, ``-3``... if that name is taken."""
    tag = "".join(ch for ch in (base or "") if ch.isascii() and ch.isalnum())[:32] or "unknown"
    jp = journal_path(path)
    out, k = jp.with_name(f"{jp.name}.orphan-{tag}"), 1
    while out.exists():
        k += 1
        out = jp.with_name(f"{jp.name}.orphan-{tag}-{k}")
    return out


def remove(path: Path) -> None:
    """Remove the journal of the store file ``path`` (durably), if there is one."""
    jp = journal_path(path)
    try:
        jp.unlink()
    except FileNotFoundError:
        return
    with contextlib.suppress(OSError):
        fsync_dir(jp.parent)


# ----------------------------------------------------------------- encoding
def encode(task: str, arch_base: int, row_base: int, archs: dict[str, np.ndarray],
           columns: dict[str, np.ndarray], curves: list[np.ndarray]) -> bytes:
    """The payload of one append (values exactly as checked by the writer)."""
    rec = {"task": task, "arch_base": int(arch_base), "row_base": int(row_base),
           "archs": {"tokens": archs["tokens"].tolist(),
                     "hash": [h.decode() for h in archs["hash"].tolist()],
                     "spec": [str(s) for s in archs["spec"].tolist()]},
           "columns": {name: data.tolist() for name, data in columns.items()},
           "curves": [np.asarray(c, dtype=np.float32).tolist() for c in curves]}
    return json.dumps(rec, separators=(",", ":")).encode()


def _column(name: str, values: list, extras: set[str]) -> np.ndarray:
    if name in EVAL_COLUMNS:
        dtype = EVAL_COLUMNS[name][0]
        if dtype is str:
            if not all(isinstance(v, str) for v in values):
                raise ValueError(f"column {name!r} holds non-strings")
            return np.asarray(values, dtype=object)
        return np.asarray(values, dtype=dtype)
    if name in extras:
        return np.asarray(values, dtype=np.float64)
    raise ValueError(f"unknown column {name!r}")


class Overlay:
    """Rows of the journal's records, applied on top of the HDF5 file's."""

    def __init__(self, seq_len: int):
        self.seq_len = seq_len
        self.records = 0
        self.tokens: list[np.ndarray] = []
        self.hashes: list[bytes] = []
        self.specs: list[str] = []
        self.rows: dict[str, dict[str, list[np.ndarray]]] = {}
        self.curves: dict[str, list[np.ndarray]] = {}
        self.nrows: dict[str, int] = {}
        self._cache: dict[tuple, np.ndarray] = {}

    @property
    def narchs(self) -> int:
        return len(self.hashes)

    def apply(self, rec: dict, *, file_archs: int, file_rows: dict[str, int],
              extras: dict[str, list[str]]) -> None:
        """Add one record, checking that it follows the store exactly (ValueError if not)."""
        task = rec["task"]
        if task not in extras:
            raise ValueError(f"task {task!r} is not in the store")
        want_archs = file_archs + self.narchs
        want_rows = file_rows[task] + self.nrows.get(task, 0)
        if rec["arch_base"] != want_archs or rec["row_base"] != want_rows:
            raise ValueError(f"record follows {rec['arch_base']} architectures and {rec['row_base']} "
                             f"rows of task {task!r}, the store has {want_archs} and {want_rows}")
        a = rec["archs"]
        tokens = np.asarray(a["tokens"], dtype=np.int16).reshape(-1, self.seq_len)
        hashes = [h.encode() for h in a["hash"]]
        specs = [str(s) for s in a["spec"]]
        if not len(tokens) == len(hashes) == len(specs) or any(len(h) != 16 for h in hashes):
            raise ValueError("architecture rows are not aligned")
        names = set(EVAL_COLUMNS) | set(extras[task])
        if set(rec["columns"]) != names:
            raise ValueError(f"columns {sorted(rec['columns'])}, expected {sorted(names)}")
        cols = {n: _column(n, v, set(extras[task])) for n, v in rec["columns"].items()}
        curves = [np.asarray(c, dtype=np.float32).reshape(-1) for c in rec["curves"]]
        n = len(curves)
        if any(len(c) != n for c in cols.values()):
            raise ValueError("columns are not aligned")
        ids = cols["arch"]
        if n and (ids.min() < 0 or ids.max() >= want_archs + len(hashes)):
            raise ValueError("architecture ids out of range")
        self.tokens.append(tokens)
        self.hashes += hashes
        self.specs += specs
        per = self.rows.setdefault(task, {})
        for name, data in cols.items():
            per.setdefault(name, []).append(data)
        self.curves.setdefault(task, []).extend(curves)
        self.nrows[task] = self.nrows.get(task, 0) + n
        self.records += 1
        self._cache.clear()

    def column(self, task: str, name: str) -> np.ndarray | None:
        """The journal's values of one column of ``task`` (None: no rows there)."""
        parts = self.rows.get(task, {}).get(name)
        if not parts:
            return None
        key = (task, name)
        if key not in self._cache:
            self._cache[key] = np.concatenate(parts)
        return self._cache[key]

    def arch_array(self, name: str) -> np.ndarray:
        """``tokens`` (k, L) int16, ``hash`` (k,) S16 or ``spec`` (k,) object of the journal."""
        key = ("/space", name)
        if key not in self._cache:
            if name == "tokens":
                arr = (np.concatenate(self.tokens) if self.tokens
                       else np.zeros((0, self.seq_len), dtype=np.int16))
            elif name == "hash":
                arr = np.asarray(self.hashes, dtype="S16")
            else:
                arr = np.asarray(self.specs, dtype=object)
            self._cache[key] = arr
        return self._cache[key]


EMPTY = Overlay(0)


class JournalWriter:
    """The open journal of a writer (who holds the store's lock)."""

    def __init__(self, path: Path, base: str, sound_end: int | None):
        """Open ``path``'s journal for appending: a new one (``sound_end`` None) starts with a
        header for ``base``; an existing one is cut back to ``sound_end`` (a torn tail)."""
        self.path = journal_path(path)
        if sound_end is None:
            fd = os.open(str(self.path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                with contextlib.suppress(OSError):
                    os.fchmod(fd, stat.S_IMODE(os.stat(path).st_mode))
                head = frame(header_payload(base))
                self.fd, self.end = fd, 0
                self.write(head)
                fsync_dir(self.path.parent)
            except BaseException:
                os.close(fd)
                with contextlib.suppress(OSError):
                    self.path.unlink()
                raise
        else:
            fd = os.open(str(self.path), os.O_WRONLY)
            try:
                if os.fstat(fd).st_size != sound_end:
                    os.ftruncate(fd, sound_end)
                    os.fsync(fd)
            except BaseException:
                os.close(fd)
                raise
            self.fd, self.end = fd, sound_end

    def write(self, record: bytes) -> None:
        """Append one framed record and fsync; on an error cut the file back and raise OSError."""
        try:
            view = memoryview(record)
            off = self.end
            while view:
                n = os.pwrite(self.fd, view, off)
                view, off = view[n:], off + n
            os.fsync(self.fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.end)
            raise
        self.end += len(record)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)

