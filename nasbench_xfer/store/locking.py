"""Locking and whole-file commits: the one place that uses ``fcntl``.

A writer holds ``path.lock`` (exclusive ``flock``, with its PID inside for messages)
for as long as it may write.  A commit writes a complete file image to
``path.tmp-<pid>``, fsyncs it, renames it over ``path`` (atomic on POSIX, keeping
the permission bits) and fsyncs the folder.  Paths are resolved through symbolic
links first (:func:`real_path`), so the lock and the replace act on the real file.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Callable
from pathlib import Path

from .schema import StoreError, StoreLocked


def fsync_dir(path: Path) -> None:
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)



def real_path(path: str | os.PathLike) -> Path:
    """``path`` with every symbolic link resolved: the file a writer must lock and replace."""
    return Path(os.path.realpath(os.fspath(path)))


def output_path(given: str | os.PathLike, overwrite: bool, *, error: type[Exception],
                hint: str = "pass overwrite=True / --overwrite to replace it") -> Path:
    """The real path a command that writes a new store file at ``given`` will replace, after
    the checks every such command makes: not a folder, not an existing file unless
    ``overwrite``, and its folder created (``error`` naming the problem otherwise)."""
    out = real_path(given)
    if out.is_dir():
        raise error(f"{given} is a directory; give the path of the store file to write")
    if out.exists() and not overwrite:
        raise error(f"{given} already exists ({hint})")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"cannot create the folder {out.parent} for {given}: {exc.strerror or exc}") from None
    return out


def lock_holder(path: str | os.PathLike) -> int | None:
    """PID written in the lock file of the store at ``path`` by its last writer (None if unknown)."""
    lock_path = real_path(path)
    lock_path = lock_path.with_name(lock_path.name + ".lock")
    try:
        text = lock_path.read_text().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


#: the lock files this process holds, by open descriptor: (device, inode) of each.  Whether a
#: refused lock is held here is decided by the file's identity, not by the PID written in it
#: (another PID namespace can reuse ours, and the PID is not cleared on unlock)
_HELD: dict[int, tuple[int, int]] = {}


def _held_here(lock_path: Path) -> bool:
    try:
        st = os.stat(lock_path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) in set(_HELD.values())


def lock(path: Path) -> int:
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
        if _held_here(lock_path):  # flock is per open file: a Store of this process left open
            raise StoreLocked(f"{path} is being written by another writer in this process (PID "
                              f"{os.getpid()}: a Store opened for writing and not yet closed holds the lock "
                              f"{lock_path}; close it first, or use `with Store.open(...)`)",
                              os.getpid(), here=True) from None
        pid = lock_holder(path)
        who = f"PID {pid}" if pid else "another process"
        raise StoreLocked(f"{path} is being written by another process "
                          f"({who} holds the lock {lock_path})", pid) from None
    try:  # the lock file may have been removed (a failed merge's) after we opened it: lock the new one
        same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
    except OSError:
        same = False
    if not same:
        unlock(fd)
        return lock(path)
    st = os.fstat(fd)
    _HELD[fd] = (st.st_dev, st.st_ino)
    with contextlib.suppress(OSError):  # for messages only: who holds the lock
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    # no other writer is alive: copies left by a killed writer are garbage
    for stale in path.parent.glob(path.name + ".tmp-*"):
        with contextlib.suppress(OSError):
            stale.unlink()
    return fd



def unlock(fd: int) -> None:
    _HELD.pop(fd, None)
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def write_file(dest: Path, data: bytes) -> None:
    """Write ``data`` to a new file ``dest`` and fsync it."""
    fd = os.open(str(dest), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_replace(tmp: Path, path: Path) -> None:
    """fsync ``tmp``, rename it over ``path`` (keeping ``path``'s permission bits), fsync
    the folder: after it returns the new version is on disk, whatever happens next."""
    with contextlib.suppress(FileNotFoundError):
        os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def commit_image(image: bytes, path: Path, write: Callable[[Path, bytes], None] = write_file,
                 replace: Callable[[Path, Path], None] = durable_replace) -> None:
    """Write a file image beside ``path`` and atomically replace ``path`` with it.

    ``write`` and ``replace`` are looked up on ``Store`` by the caller (``Store._write_file``,
    ``Store._durable_replace``) so that fault tests can patch them there."""
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    try:
        write(tmp, image)
        replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StoreError(f"cannot write {path}: {exc.strerror or exc} "
                         f"(the store is unchanged)") from None

