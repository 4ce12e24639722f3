"""The :class:`Store` itself: opening, creating and closing a store, holding its writer lock,
and the handle every read goes through.  What a store can do is assembled from the
mixins of the other modules: reading (:mod:`.reading`), writing (:mod:`.writing`) and
validate/merge/summary (:mod:`.maintenance`).
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .. import __version__
from ..logs import get_logger
from ..space import SearchSpace, SpaceError, get_space
from . import journal, locking
from .checksums import _lost_tasks, _write_checksums
from .locking import output_path, real_path
from .maintenance import MaintenanceMixin
from .reading import ReadingMixin
from .schema import FORMAT, GENERATION_ATTR, PARENT_ATTR, SCHEMA_VERSION, StoreError, _jload, fill_empty
from .writing import WritingMixin


def _identity(path: Path) -> tuple[int, int, int, int] | None:
    """What tells one version of the store file from the next (None if it cannot be read)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size


class Store(ReadingMixin, WritingMixin, MaintenanceMixin):
    """An open benchmark store.  Use :meth:`open` or :meth:`create`, ideally as a context manager.

    Reading never loads more than asked: :meth:`evaluations` reads one task's
    columns, :meth:`curves` one task's curves, architecture specs are read only
    when requested.
    """

    def __init__(self, path: Path, mode: str, _lock_fd: int | None = None, _for_validation: bool = False):
        self.path = real_path(path)
        self.mode = mode
        self._for_validation = _for_validation
        self._lock_fd: int | None = _lock_fd
        self._h5: h5py.File | None = None
        self._tx: h5py.File | None = None  # the writable copy during a commit
        self._tx_depth = 0
        self._hash_index: dict[str, int] | None = None
        self._dense_cache: tuple[int, np.ndarray] | None = None
        self.space: SearchSpace
        # the append journal (see .journal): what it holds, its rows, and the writer's handle
        self._generation = ""
        self._parent_generation: str | None = None
        self._jscan = journal.Scan()
        self._overlay = journal.EMPTY
        self._journal_problem: str | None = None
        self._jw: journal.JournalWriter | None = None
        #: what the last :meth:`merge` dropped: {"duplicates": n, "conflicting": m}
        self.merge_report: dict[str, int] = {}
        if mode == "a" and self._lock_fd is None:
            # check that it is a store before creating a lock file beside it
            self._open_reader()
            self._close_reader()
            self._acquire_lock()
        try:
            self._open_reader()
            if mode == "a":
                self._clear_stale_journal()
        except BaseException:
            self._release_lock()
            raise

    # ------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | os.PathLike, mode: str = "r", *, for_validation: bool = False) -> Store:
        """Open an existing store, read-only (``"r"``) or for appending (``"a"``).

        ``for_validation`` (read-only) skips the check on open that refuses a store which lost a
        whole task, so that :meth:`validate` can report everything else about it too."""
        if mode not in ("r", "a"):
            raise StoreError(f"mode must be 'r' or 'a', got {mode!r}")
        if for_validation and mode != "r":
            raise StoreError("for_validation opens a store read-only (mode 'r')")
        given = Path(path)
        path = real_path(given)
        if not path.exists():
            raise StoreError(f"no store at {given}")
        if path.is_dir():
            raise StoreError(f"{given} is a directory, not a store file")
        if not path.is_file():  # a FIFO or device: h5py would block reading it
            raise StoreError(f"{given} is not a regular file (a pipe or device?), not a store file")
        if mode == "a":
            links = path.stat().st_nlink
            if links > 1:
                raise StoreError(f"{path} has {links} hard links; a write replaces the file, so the "
                                 f"other links would keep the old version. Copy the store "
                                 f"(cp {path} NEW) and write the copy")
        return cls(path, mode, _for_validation=for_validation)

    @classmethod
    def create(cls, path: str | os.PathLike, space: SearchSpace, *, overwrite: bool = False,
               provenance_info: Mapping[str, Any] | None = None) -> Store:
        """Create an empty store for ``space`` and return it open for appending."""
        if not isinstance(space, SearchSpace):  # before the lock file: nothing is left behind
            raise StoreError(f"space must be a SearchSpace (e.g. nasbench_xfer.space.get_space('nb201')), "
                             f"got {type(space).__name__} {space!r}")
        given = Path(path)
        path = output_path(given, overwrite, error=StoreError)
        # take the writer lock first: never replace a store another process is writing
        lock_fd = cls._lock(path)
        try:
            cls._write_empty(path, space, provenance_info)
            journal.remove(path)  # rows of the store just replaced, if any
        except OSError as exc:
            cls._unlock(lock_fd)
            raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from None
        except BaseException:
            cls._unlock(lock_fd)
            raise
        return cls(path, "a", _lock_fd=lock_fd)


    @classmethod
    def _write_empty(cls, path: Path, space: SearchSpace, provenance_info: Mapping[str, Any] | None) -> None:
        with h5py.File(f"{path}.new-{os.getpid()}", "w", driver="core", backing_store=False) as f:
            fill_empty(f, space, provenance_info)
            _write_checksums(f, full=True)
            f.flush()
            image = f.id.get_file_image()
        cls._commit_image(image, path)

    # ------------------------------------------------ locks and commits (see .locking)
    @staticmethod
    def _lock(path: Path) -> int:
        """Take ``path.lock`` (exclusive, non-blocking) and clear copies left by killed writers."""
        return locking.lock(path)

    @staticmethod
    def _unlock(fd: int) -> None:
        locking.unlock(fd)

    @staticmethod
    def _write_file(dest: Path, data: bytes) -> None:
        locking.write_file(dest, data)

    @staticmethod
    def _durable_replace(tmp: Path, path: Path) -> None:
        """fsync ``tmp``, rename it over ``path`` (keeping ``path``'s permission bits), fsync
        the folder: after it returns the new version is on disk, whatever happens next."""
        locking.durable_replace(tmp, path)

    @staticmethod
    def _remove_journal(path: Path) -> None:
        """Remove the journal of the store file ``path`` (after a command replaced the file)."""
        journal.remove(path)

    @classmethod
    def _commit_image(cls, image: bytes, path: Path) -> None:
        """Write a file image beside ``path`` and atomically replace ``path`` with it."""
        # looked up on the class at call time: fault tests patch Store._write_file
        locking.commit_image(image, path, cls._write_file, cls._durable_replace)

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
        """Open the file and apply its journal.  A compaction that replaces the file between
        the two (it folds the journal into a new file, then removes the journal) would leave the
        old file without its journal's rows, so the file's identity is compared before and
        after, and the pair read again if it changed."""
        for _ in range(50):
            before = _identity(self.path)
            self._open_file()
            if before is not None and _identity(self.path) == before:
                return
            self._close_reader()
        self._open_file()  # a store replaced this often: the last version read

    def _open_file(self) -> None:
        try:
            # readers take no HDF5 file lock: writers never change a file in place (a commit
            # renames a new file over it), and the store's own lock file orders the writers
            f = h5py.File(self.path, "r", locking=False)
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
            lost = [] if self._for_validation else _lost_tasks(f)
            if lost:
                raise StoreError(f"{self.path}: damaged store: task(s) {', '.join(lost)} listed in its "
                                 f"checksums but missing from the file; run `nasbench-xfer validate "
                                 f"{self.path}` for a full report")
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
        self._dense_cache = None
        self._load_journal()
        try:
            self._check_hash_rule()
        except StoreError:
            self._close_journal_writer()
            self._close_reader()
            raise

    def _check_hash_rule(self) -> None:
        """Refuse a store whose hashes an older version computed by a rule since changed (a
        NAS-Bench-Graph op subset's hashes depended on its op list, so its hash lookups would
        find nothing and appends would store duplicates).  Only spaces whose rule changed are
        checked, every architecture (journal included); a hash that matches neither rule is
        damage, for ``validate`` to report."""
        if not getattr(self.space, "hash_rule_changed", False):
            return
        try:
            n = self.num_archs
            stored, archs = self.arch_hashes(np.arange(n)), self.archs() if n else []
        except Exception:  # noqa: BLE001 - damage: validate reports it
            return
        for h, arch in zip(stored, archs):
            try:
                old = h != self.space.hash(arch) and h == SearchSpace.hash(self.space, arch)
            except Exception:  # noqa: BLE001 - damaged tokens: validate reports them
                continue
            if old:
                raise StoreError(f"{self.path} was written by an older nasbench_xfer whose architecture "
                                 f"hashes of this {self.space.name} space depended on its op list; they "
                                 f"changed so that the same network has one hash in every op subset. "
                                 f"Re-import the store (e.g. nasbench-xfer import nas-bench-graph "
                                 f"--proteins separate)")

    def _load_journal(self) -> None:
        """Scan the journal and apply its records if it extends this version of the file."""
        self._close_journal_writer()
        scan = self._jscan = journal.scan(journal.journal_path(self.path))
        self._overlay = journal.EMPTY
        self._journal_problem = None
        try:
            attrs = self._h5.attrs if self._h5 is not None else {}
            gen, parent = attrs.get(GENERATION_ATTR, ""), attrs.get(PARENT_ATTR, None)
            self._generation = gen.decode() if isinstance(gen, bytes) else str(gen)
            self._parent_generation = (parent.decode() if isinstance(parent, bytes) else
                                       None if parent is None else str(parent))
        except Exception as exc:  # a damaged attribute: validate's checksum pass reports it
            self._generation = "\0unreadable"
            self._parent_generation = None
            if scan.exists:
                self._journal_problem = (f"the file's {GENERATION_ATTR} attribute cannot be read "
                                         f"({exc.__class__.__name__}), so the journal cannot be matched")
            return
        if not scan.exists or scan.base != self._generation:
            if scan.exists and scan.base is None and scan.damage:
                self._journal_problem = scan.damage  # cannot tell which file it extends
            return
        ov = journal.Overlay(self.space.seq_len)
        try:
            if scan.records:
                assert self._h5 is not None, "called with the reader open"
                tasks = self._h5["tasks"]
                file_rows = {t: int(tasks[t]["arch"].shape[0]) for t in tasks}
                extras = {t: list(_jload(tasks[t].attrs.get("extra_columns"), [])) for t in tasks}
                file_archs = int(self._h5["space/hash"].shape[0])
                for rec in scan.records:
                    ov.apply(rec, file_archs=file_archs, file_rows=file_rows, extras=extras)
        except Exception as exc:
            self._journal_problem = f"record {ov.records + 1}: does not fit the store ({exc.__class__.__name__}: {exc})"
        if scan.damage and self._journal_problem is None:
            self._journal_problem = scan.damage
        self._overlay = ov

    def _journal_folded(self) -> bool:
        """Whether the journal beside the file, which does not extend it, was folded into it:
        it extends the generation this file's commit replaced (its writer was killed before
        removing it).  A header a killed writer left torn holds nothing either."""
        scan = self._jscan
        return scan.base == self._parent_generation or (scan.base is None and not scan.records)

    def _clear_stale_journal(self) -> None:
        """(writer, under the lock) Remove a journal that a commit has already folded in, or
        whose header a killed writer left torn.  A journal of another version of the file
        (copied or restored beside it by hand; or any, beside a file written before parents
        were recorded) is kept aside as ``STORE.journal.orphan-<generation>`` with a warning:
        its rows may be in no file."""
        scan = self._jscan
        if not scan.exists or scan.base == self._generation or (scan.base is None and scan.damage):
            return
        if self._journal_folded():
            journal.remove(self.path)
        else:
            where = journal.journal_path(self.path)
            aside = journal.orphan_path(self.path, scan.base)
            os.replace(where, aside)
            what = ("does not extend this version of" if self._parent_generation is None  # an older file
                    else "extends another version of")
            get_logger(__name__).warning(
                f"{where} {what} {self.path.name} (generation {scan.base}; this file is "
                f"{self._generation}): its {len(scan.records)} append(s) may be in no file, so it was "
                f"kept aside as {aside.name}")
        self._jscan = journal.Scan()

    def _close_journal_writer(self) -> None:
        if self._jw is not None:
            self._jw.close()
            self._jw = None

    def close(self) -> None:
        self._close_journal_writer()
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

