"""Decoding: dataset files in memory as :class:`RawDataset` arrays.

Owns the in-memory form of a dataset's standard splits (:class:`RawDataset`:
uint8 ``(N, C, H, W)`` images, int64 labels) and every file format read into it:
IDX files (MNIST format, gzip or not), ``.npz`` archives, JPEG/PNG images in a
folder or a ``.tar``/``.tar.gz`` archive (``<split>/<class>/*``; decoded arrays
are cached under :func:`nasbench_xfer.datasets.paths.cache_dir`) and a folder of
per-class Quick, Draw! ``.npy`` bitmaps.  *Which* files a dataset name means is
:mod:`nasbench_xfer.datasets.discovery`'s job.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import struct
import tarfile
import warnings
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasbench_xfer.datasets.paths import cache_dir

__all__ = ["RawDataset", "to_nchw", "read_idx", "find_idx", "load_idx_folder", "decode_images",
           "read_image_archive", "load_npz", "load_quickdraw_dir"]

_IDX_FILES = {
    "train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte",
}


@dataclass
class RawDataset:
    """A dataset's standard splits as uint8 ``(N, C, H, W)`` arrays and int64 labels.

    ``test_x`` is ``None`` for pooled sets without a test split (Quickdraw).
    """

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray | None
    test_y: np.ndarray | None
    classes: list[str]
    source: str

    def __post_init__(self) -> None:
        for which in ("train", "test"):
            x, y = getattr(self, f"{which}_x"), getattr(self, f"{which}_y")
            if x is None:
                continue
            if x.dtype != np.uint8 or x.ndim != 4:
                raise ValueError(f"{self.name} {which}: expected uint8 (N, C, H, W), got {x.dtype} {x.shape}")
            if len(x) != len(y):
                raise ValueError(f"{self.name} {which}: {len(x)} images but {len(y)} labels")
            if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
                raise ValueError(f"{self.name} {which}: labels must be a 1-D integer array, got "
                                 f"{y.dtype} {y.shape}")
            if len(y) and int(y.min()) < 0:
                raise ValueError(f"{self.name} {which}: labels must be class indices 0..K-1, found "
                                 f"{int(y.min())} ({self.source})")
            if which == "train" and (n_classes := len(np.unique(y))) < 2:
                raise ValueError(f"{self.name} train: the labels hold {n_classes} class; a "
                                 f"classification task needs at least 2 ({self.source})")


def to_nchw(x: np.ndarray, where: str) -> np.ndarray:
    """``x`` as contiguous uint8 ``(N, C, H, W)`` (from float in [0, 1] or 0..255, flat, NHW or NHWC)."""
    x = np.asarray(x)
    if x.dtype != np.uint8:
        if np.issubdtype(x.dtype, np.floating) and x.size and float(x.max()) <= 1.0:
            x = x * 255.0
        x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    if x.ndim == 2:  # flat (N, H*W) bitmaps
        side = int(round(np.sqrt(x.shape[1])))
        if side * side != x.shape[1]:
            raise ValueError(f"{where}: flat images of {x.shape[1]} pixels are not square")
        x = x.reshape(len(x), 1, side, side)
    elif x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        if x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
            x = x.transpose(0, 3, 1, 2)
    else:
        raise ValueError(f"{where}: cannot read images of shape {x.shape}")
    return np.ascontiguousarray(x)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (MNIST format), gzip-compressed or not."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(">" + "I" * ndim, data[4: 4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"{path}: truncated IDX file ({arr.size} of {int(np.prod(shape))} values)")
    return arr.reshape(shape).copy()


def find_idx(folder: Path) -> dict[str, Path] | None:
    """The four standard IDX files (``.gz`` preferred) in ``folder``, or None if one is missing."""
    found = {}
    for key, stem in _IDX_FILES.items():
        for cand in (folder / f"{stem}.gz", folder / stem):
            if cand.is_file():
                found[key] = cand
                break
        else:
            return None
    return found


def load_idx_folder(name: str, files: dict[str, Path], classes: Sequence[str]) -> RawDataset:
    """The train/test splits of the IDX files found by :func:`find_idx`."""
    tx, ty = read_idx(files["train_x"]), read_idx(files["train_y"]).astype(np.int64)
    vx, vy = read_idx(files["test_x"]), read_idx(files["test_y"]).astype(np.int64)
    return RawDataset(name, to_nchw(tx, name), ty, to_nchw(vx, name), vy, list(classes),
                      str(files["train_x"].parent))


def _tv_io():
    """torchvision's image decoders, or None (deprecated in torchvision 0.29, to be removed)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from torchvision.io import ImageReadMode, decode_image, decode_jpeg
        return ImageReadMode, decode_image, decode_jpeg
    except (ImportError, AttributeError):
        return None


def _decode(data: bytes, where: str) -> np.ndarray:
    """One image as uint8 (C, H, W): torchvision if it can, else Pillow."""
    tv = _tv_io()
    try:
        if tv is not None:
            import torch
            ImageReadMode, decode_image, _ = tv
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8),
                                    mode=ImageReadMode.UNCHANGED).numpy()
        from PIL import Image
        with Image.open(io.BytesIO(data)) as opened:
            im = opened if opened.mode in ("L", "RGB") else opened.convert("RGB")
            arr = np.asarray(im)
        return np.ascontiguousarray(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
    except Exception as exc:  # noqa: BLE001 - any decoder failure names the file
        raise ValueError(f"{where}: cannot decode image ({exc})") from None


def _decode_many(items: list[tuple[str, bytes]]) -> list[np.ndarray]:
    """Decode (name, bytes) pairs; JPEGs in batches (torchvision), the rest one by one."""
    out: list[np.ndarray | None] = [None] * len(items)
    tv = _tv_io()
    jpg = [i for i, (n, _) in enumerate(items) if n.lower().endswith((".jpg", ".jpeg"))] if tv else []
    for s in range(0, len(jpg), 4096):
        import torch
        decode_jpeg = tv[2]
        chunk = jpg[s: s + 4096]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                dec = decode_jpeg([torch.frombuffer(bytearray(items[i][1]), dtype=torch.uint8) for i in chunk])
        except Exception:  # noqa: BLE001 - fall back to one by one to name the bad file
            dec = [torch.from_numpy(_decode(items[i][1], items[i][0])) for i in chunk]
        for i, im in zip(chunk, dec):
            out[i] = im.numpy()
    for i, (n, d) in enumerate(items):
        if out[i] is None:
            out[i] = _decode(d, n)
    return out  # type: ignore[return-value]


def decode_images(items: Sequence[tuple[str, bytes]]) -> list[np.ndarray]:
    """Decode ``(name, bytes)`` JPEG/PNG pairs to uint8 ``(C, H, W)`` arrays, as the loaders do."""
    return _decode_many(list(items))


def _image_entries(path: Path) -> Iterable[tuple[str, bytes]]:
    """(relative path, bytes) of every .jpg/.jpeg/.png under a folder or in a tar archive."""
    exts = (".jpg", ".jpeg", ".png")
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.suffix.lower() in exts and p.is_file():
                yield p.relative_to(path).as_posix(), p.read_bytes()
    else:
        with tarfile.open(path) as tf:
            for m in tf:
                if m.isfile() and m.name.lower().endswith(exts):
                    f = tf.extractfile(m)
                    if f is not None:
                        yield m.name, f.read()


def _cache_key(path: Path) -> str:
    st = path.stat()
    latest = st.st_mtime
    if path.is_dir():  # a folder: its own and its class folders' mtimes
        latest = max([latest] + [p.stat().st_mtime for p in path.rglob("*") if p.is_dir()])
    text = f"{path.resolve()}|{st.st_size}|{latest}|v1"
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def read_image_archive(path: str | os.PathLike, name: str | None = None, *,
                       use_cache: bool = True) -> RawDataset:
    """Read ``<split>/<class>/*.jpg|png`` from a folder or a ``.tar``/``.tar.gz`` archive.

    Splits ``train`` and ``test`` (``val``/``valid`` also accepted as the test
    split when no ``test`` exists); with no split folders the class folders form
    one pooled set.  Classes are the sorted folder names; images must all have
    the same size and channel count.  Decoded arrays are cached (see module doc).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"image archive not found: {path}")
    name = name or f"imagefolder:{path}"
    cache = cache_dir() / "decoded" / f"{path.name.split('.')[0]}-{_cache_key(path)}.npz"
    if use_cache and cache.is_file():
        raw = _read_cache(cache, name, path)
        if raw is not None:
            return raw
    by_split = _entries_by_split(path)
    train_key, test_key = _split_keys(by_split, path)
    classes = sorted({c for k in (train_key, test_key) if k for c, _, _ in by_split[k]})
    cindex = {c: i for i, c in enumerate(classes)}
    train_x, train_y = _decode_split(by_split[train_key], cindex, path)
    test_x = test_y = None
    if test_key:
        test_x, test_y = _decode_split(by_split[test_key], cindex, path)
    if use_cache:
        _write_cache(cache, train_x, train_y, test_x, test_y, classes)
    return RawDataset(name, train_x, train_y, test_x, test_y, classes, str(path))


def _read_cache(cache: Path, name: str, path: Path) -> RawDataset | None:
    """The decoded arrays cached for ``path``, or None if the cache file is damaged."""
    try:
        with np.load(cache, allow_pickle=False) as z:
            classes = json.loads(str(z["classes"]))
            test_x = z["test_x"] if z["test_x"].size else None
            test_y = z["test_y"] if test_x is not None else None
            return RawDataset(name, z["train_x"], z["train_y"], test_x, test_y, classes, str(path))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # a damaged cache (empty, truncated, not a zip) is rebuilt


def _write_cache(cache: Path, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray | None,
                 test_y: np.ndarray | None, classes: list[str]) -> None:
    """Store decoded arrays atomically; a failure is ignored (caching is an optimisation only)."""
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + f".tmp-{os.getpid()}.npz")
        np.savez(tmp, train_x=train_x, train_y=train_y,
                 test_x=test_x if test_x is not None else np.zeros((0,), np.uint8),
                 test_y=test_y if test_y is not None else np.zeros((0,), np.int64),
                 classes=json.dumps(classes))
        os.replace(tmp, cache)
    except OSError:
        pass


def _entries_by_split(path: Path) -> dict[str, list[tuple[str, str, bytes]]]:
    """split (lower case; ``"all"`` without split folders) -> (class, relative path, bytes) of its images."""
    by_split: dict[str, list[tuple[str, str, bytes]]] = {}
    for rel, data in _image_entries(path):
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        if len(parts) >= 3:
            split, cls = parts[-3], parts[-2]
        elif len(parts) == 2:
            split, cls = "all", parts[0]
        else:
            continue
        by_split.setdefault(split.lower(), []).append((cls, rel, data))
    if not by_split:
        raise FileNotFoundError(f"{path}: no <split>/<class>/*.jpg|png images found")
    return by_split


def _split_keys(by_split: dict[str, Any], path: Path) -> tuple[str, str | None]:
    """Which split is the training set and which (if any) the test set."""
    train_key = "train" if "train" in by_split else ("all" if "all" in by_split else None)
    if train_key is None:
        raise ValueError(f"{path}: no 'train' split folder (found {sorted(by_split)})")
    test_key = next((k for k in ("test", "val", "valid", "validation") if k in by_split), None)
    if train_key == "all":
        test_key = None
    return train_key, test_key


def _decode_split(items: list[tuple[str, str, bytes]], cindex: dict[str, int],
                  path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One split's images (ordered by class, then file name) and labels; all images of one shape."""
    items = sorted(items, key=lambda t: (cindex[t[0]], t[1]))
    imgs = _decode_many([(f"{path}:{rel}", d) for _, rel, d in items])
    shape = imgs[0].shape
    for (_, rel, _), im in zip(items, imgs):
        if im.shape != shape:
            raise ValueError(f"{path}:{rel}: image shape {tuple(im.shape)} differs from "
                             f"{tuple(shape)} of the first image")
    return (np.ascontiguousarray(np.stack(imgs)),
            np.asarray([cindex[c] for c, _, _ in items], dtype=np.int64))


def _labels(y: np.ndarray, where: str) -> np.ndarray:
    """``y`` as int64 class indices; ValueError naming ``where`` for labels that are not whole
    numbers (an astype would truncate 0.5 to 0) or not one per image."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{where}: labels must be one class index per image (1-D), got shape {y.shape}")
    if np.issubdtype(y.dtype, np.floating):
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            raise ValueError(f"{where}: labels must be integer class indices 0..K-1, found "
                             f"{float(y[bad][0]):g} ({int(bad.sum())} non-integer labels)")
    elif not (np.issubdtype(y.dtype, np.integer) or y.dtype == bool):
        raise ValueError(f"{where}: labels must be integer class indices 0..K-1, got dtype {y.dtype}")
    return y.astype(np.int64)


def load_npz(path: Path, name: str, classes: Sequence[str] | None = None) -> RawDataset:
    """An ``.npz`` with ``images``/``labels`` (one pooled set) or ``train_``/``test_`` arrays."""
    if not path.is_file():
        raise FileNotFoundError(f"npz file not found: {path}")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head != b"PK\x03\x04":  # an .npz is a zip archive
        raise ValueError(f"{path} is not an .npz archive (numpy.savez/savez_compressed output; this "
                         f"file starts with {head!r}); npz:<path> needs arrays 'images' and 'labels' "
                         f"(or train_/test_ ones)")
    with np.load(path, allow_pickle=False) as z:
        keys = set(z.files)
        vx: np.ndarray | None
        vy: np.ndarray | None
        if {"train_images", "train_labels"} <= keys:
            tx, ty = to_nchw(z["train_images"], str(path)), _labels(z["train_labels"], f"{path}: train_labels")
            if {"test_images", "test_labels"} <= keys:
                vx, vy = to_nchw(z["test_images"], str(path)), _labels(z["test_labels"], f"{path}: test_labels")
            else:
                vx = vy = None
        elif {"images", "labels"} <= keys:
            tx, ty = to_nchw(z["images"], str(path)), _labels(z["labels"], f"{path}: labels")
            vx = vy = None
        else:
            raise ValueError(f"{path}: expected arrays 'images' and 'labels' (or train_/test_ ones), "
                             f"found {sorted(keys)}")
        if "classes" in keys:
            classes = [str(c) for c in z["classes"]]
    n = int(max(ty.max(), vy.max() if vy is not None else 0)) + 1
    if classes is None or len(classes) < n:
        classes = [str(i) for i in range(n)]
    return RawDataset(name, tx, ty, vx, vy, list(classes), str(path))


def load_quickdraw_dir(folder: Path, classes: Sequence[str] | None, max_per_class: int) -> RawDataset:
    """The first ``max_per_class`` bitmaps of each ``<class>.npy`` (or ``classes`` only) as one pooled set."""
    files = {}
    for p in sorted(folder.glob("*.npy")):
        cls = p.stem.replace("full_numpy_bitmap_", "")
        files[cls] = p
    if classes is not None:
        missing = [c for c in classes if c not in files]
        if missing:
            raise FileNotFoundError(f"quickdraw: no {', '.join(str(folder / (c + '.npy')) for c in missing)}")
        files = {c: files[c] for c in classes}
    if not files:
        raise FileNotFoundError(f"quickdraw: no <class>.npy files in {folder}")
    xs, ys = [], []
    for i, p in enumerate(files.values()):
        arr = np.load(p, mmap_mode="r")[:max_per_class]
        xs.append(to_nchw(np.asarray(arr), str(p)))
        ys.append(np.full(len(arr), i, dtype=np.int64))
    return RawDataset("quickdraw", np.concatenate(xs), np.concatenate(ys), None, None, list(files), str(folder))
