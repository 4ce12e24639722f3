"""Checksums of the store's own: SHA-256 digests of every object's attributes and of the
variable-length string datasets, kept in the root attribute :data:`CHECKSUM_ATTR`
(numeric data is covered by HDF5's per-chunk fletcher32 filter); written before each
commit, verified by ``validate``.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any

import h5py
import numpy as np

from .schema import CHECKSUM_ATTR, _jload


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



def _lost_tasks(f: h5py.File) -> list[str]:
    """Tasks whose group the stored digests list but the file lacks (a task deleted outside
    nasbench_xfer): cheap enough for every open, unlike the full check of ``validate``."""
    try:
        ck = _jload(f.attrs.get(CHECKSUM_ATTR))
        listed = {n.split("/")[2] for n in ck["attrs"] if n.startswith("/tasks/") and n.count("/") == 2}
    except Exception:  # noqa: BLE001 - no or damaged digests: validate reports them
        return []
    return sorted(t for t in listed if t not in f["tasks"])


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


def _stale_digests(f: h5py.File) -> list[str]:
    """Objects of ``f`` whose attributes or strings no longer match the stored digests (empty
    for a store written before digests were kept).  A commit checks this before it writes
    fresh digests, so it never re-signs damage."""
    try:
        ck = _jload(f.attrs.get(CHECKSUM_ATTR))
    except Exception as exc:
        return [f"attribute {CHECKSUM_ATTR} is damaged ({exc.__class__.__name__}: {exc})"]
    if ck is None:
        return []
    problems: list[str] = []
    try:
        _compare_digests(f, _objects(f), ck["attrs"], ck["strings"], problems)
    except Exception as exc:
        problems.append(f"the stored digests cannot be compared ({exc.__class__.__name__}: {exc})")
    return problems


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
            _compare_digests(f, objects, attrs, strings, problems)
    if unchecked and raw is not None:
        notes.append(f"{len(unchecked)} dataset(s) without per-chunk checksums (written before "
                     f"nasbench_xfer kept them): {', '.join(unchecked[:5])}"
                     + (" ..." if len(unchecked) > 5 else ""))
    elif unchecked:
        notes.append(f"{len(unchecked)} dataset(s) without per-chunk checksums")
    return problems, notes



def _compare_digests(f: h5py.File, objects: list[tuple[str, Any]], attrs: dict[str, str],
                     strings: dict[str, list], problems: list[str]) -> None:
    """Compare every object's attributes and every string dataset with its stored digest."""
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
