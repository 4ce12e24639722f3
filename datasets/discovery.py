"""Discovery: which dataset a name means and where its files are found.

Owns the supported names (:data:`DATASETS`, aliases, :func:`canonical_name`),
the known class names, the file layouts looked for under the data root
(:data:`LAYOUTS`), one finder per dataset (the :data:`_FINDERS` table) and
:func:`load_raw`, which tries the local layouts first and only then the
downloaders of :mod:`nasbench_xfer.datasets.download`.

Where the files come from.  Every dataset is looked for under ``root``
(argument, else ``$NASBENCH_XFER_DATA``, else ``~/.cache/nasbench_xfer/data``;
see :mod:`nasbench_xfer.datasets.paths`) in the layouts listed in
:data:`LAYOUTS`, and nowhere else.  Only when none is there and ``download``
allows it (the default ``None`` means: if the network is reachable) does it call
torchvision's downloader (CIFAR, SVHN, MNIST, Fashion-MNIST) or fetch the
official Quick, Draw! bitmaps into ``root``.  Nothing ever requires the network:
a dataset that is neither local nor downloadable raises
:class:`FileNotFoundError` naming every path looked for.

Supported names: ``cifar10``, ``cifar100``, ``svhn``, ``mnist``,
``fashion_mnist``, ``quickdraw`` and two generic forms,
``imagefolder:<dir or .tar/.tar.gz>`` (``<split>/<class>/*.jpg|png``, splits
``train`` and ``test``; a folder with class folders only is one pooled set) and
``npz:<file>`` (``images``/``labels``, or ``train_images``/``train_labels``/
``test_images``/``test_labels``).
"""
from __future__ import annotations

import contextlib
import gzip
import os
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nasbench_xfer.datasets.decode import (
    RawDataset,
    find_idx,
    load_idx_folder,
    load_npz,
    load_quickdraw_dir,
    read_image_archive,
    to_nchw,
)
from nasbench_xfer.datasets.download import DOWNLOAD_HOSTS, reachable
from nasbench_xfer.datasets.download import download as fetch  # load_raw's argument is named download
from nasbench_xfer.datasets.paths import DATA_ENV, data_root

__all__ = ["DATASETS", "LAYOUTS", "CLASSES", "canonical_name", "load_raw"]

#: canonical dataset name -> (channels, size, has a standard test split)
DATASETS: dict[str, dict[str, Any]] = {
    "cifar10": {"channels": 3, "size": 32, "test_split": True},
    "cifar100": {"channels": 3, "size": 32, "test_split": True},
    "svhn": {"channels": 3, "size": 32, "test_split": True},
    "mnist": {"channels": 1, "size": 28, "test_split": True},
    "fashion_mnist": {"channels": 1, "size": 28, "test_split": True},
    "quickdraw": {"channels": 1, "size": 28, "test_split": False},
}

_ALIASES = {"cifar-10": "cifar10", "cifar_10": "cifar10", "cifar-100": "cifar100",
            "cifar_100": "cifar100", "fashion-mnist": "fashion_mnist", "fashionmnist": "fashion_mnist",
            "fmnist": "fashion_mnist", "quick_draw": "quickdraw", "quick-draw": "quickdraw"}

#: where each dataset is looked for under ``root`` (in this order)
LAYOUTS: dict[str, list[str]] = {
    "cifar10": ["cifar-10-batches-py/ (torchvision)", "cifar10-jpeg.tar.gz", "cifar10-jpeg.tar",
                "cifar10/ (train/<class>/*.jpg, test/<class>/*.jpg)", "cifar10.npz"],
    "cifar100": ["cifar-100-python/ (torchvision)", "cifar100-jpeg.tar.gz", "cifar100-jpeg.tar",
                 "cifar100/ (train/<class>/*, test/<class>/*)", "cifar100.npz"],
    "svhn": ["train_32x32.mat + test_32x32.mat (torchvision)", "svhn/train_32x32.mat + svhn/test_32x32.mat",
             "svhn.npz"],
    "mnist": ["mnist/ (IDX files, .gz or not)", "MNIST/raw/ (torchvision)", "./ (IDX files)", "mnist.npz"],
    "fashion_mnist": ["fashion-mnist/ (IDX files)", "fashion_mnist/", "FashionMNIST/raw/ (torchvision)",
                      "fashion_mnist.npz"],
    "quickdraw": ["quickdraw.npz", "quickdraw4.npz", "quickdraw*.npz",
                  "quickdraw/ (<class>.npy or full_numpy_bitmap_<class>.npy, official 28x28 bitmaps)"],
}

#: class names of the datasets whose files do not carry them
CLASSES: dict[str, list[str]] = {
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
    "mnist": [str(i) for i in range(10)],
    "svhn": [str(i) for i in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"],
}
_QUICKDRAW4_CLASSES = ["cat", "fish", "apple", "bicycle"]
_GENERIC = ("imagefolder", "npz")


def canonical_name(name: str) -> str:
    """Canonical dataset name (``cifar-10`` -> ``cifar10``); generic ``kind:path`` names unchanged."""
    if ":" in name and name.split(":", 1)[0] in _GENERIC:
        return name
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}, "
                         f"imagefolder:<path>, npz:<path>")
    return key


# ------------------------------------------------------ per-dataset finders
# Each finder takes (name, root, classes, max_per_class) and returns the dataset
# read from the first layout of LAYOUTS[name] present under root, or None.
Finder = Callable[[str, Path, Sequence[str] | None, int], RawDataset | None]


def _find_cifar(name: str, root: Path, classes: Sequence[str] | None, max_per_class: int) -> RawDataset | None:
    tv_dir = root / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    if tv_dir.is_dir():
        import torchvision.datasets as tvd
        cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
        tr, te = cls(str(root), train=True, download=False), cls(str(root), train=False, download=False)
        return RawDataset(name, to_nchw(tr.data, name), np.asarray(tr.targets, np.int64),
                          to_nchw(te.data, name), np.asarray(te.targets, np.int64),
                          list(tr.classes), str(tv_dir))
    for cand in (root / f"{name}-jpeg.tar.gz", root / f"{name}-jpeg.tar", root / name):
        if cand.exists():
            raw = read_image_archive(cand, name)
            if name == "cifar10" and raw.classes != CLASSES["cifar10"]:
                raise ValueError(f"{cand}: unexpected CIFAR-10 classes {raw.classes}")
            return raw
    return _find_npz(name, root)


def _find_svhn(name: str, root: Path, classes: Sequence[str] | None, max_per_class: int) -> RawDataset | None:
    for d in (root, root / "svhn"):
        if (d / "train_32x32.mat").is_file() and (d / "test_32x32.mat").is_file():
            import torchvision.datasets as tvd
            tr = tvd.SVHN(str(d), split="train", download=False)
            te = tvd.SVHN(str(d), split="test", download=False)
            return RawDataset(name, to_nchw(tr.data, name), tr.labels.astype(np.int64),
                              to_nchw(te.data, name), te.labels.astype(np.int64),
                              list(CLASSES["svhn"]), str(d))
    return _find_npz(name, root)


#: the folders of IDX files looked in under ``root``, in order
_IDX_DIRS = {"mnist": ("mnist", "MNIST/raw", "."),
             "fashion_mnist": ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw")}


def _find_idx_dataset(name: str, root: Path, classes: Sequence[str] | None,
                      max_per_class: int) -> RawDataset | None:
    dirs = [root / sub for sub in _IDX_DIRS[name]]
    if name == "fashion_mnist" and root.name in ("fashion-mnist", "fashion_mnist"):
        dirs.insert(0, root)  # the root is the dataset's own folder
    for d in dirs:
        files = find_idx(d) if d.is_dir() else None
        if files:
            return load_idx_folder(name, files, CLASSES[name])
    return _find_npz(name, root)


def _keep_classes(raw: RawDataset, classes: Sequence[str], source: Path) -> RawDataset:
    """Quickdraw ``raw`` restricted to ``classes``, relabelled 0..len(classes)-1 in that order."""
    keep = [raw.classes.index(c) for c in classes if c in raw.classes]
    if len(keep) != len(classes):
        raise FileNotFoundError(f"quickdraw: {source} lacks classes "
                                f"{[c for c in classes if c not in raw.classes]}")
    mask = np.isin(raw.train_y, keep)
    remap = {k: i for i, k in enumerate(keep)}
    return RawDataset("quickdraw", raw.train_x[mask],
                      np.asarray([remap[int(v)] for v in raw.train_y[mask]], np.int64),
                      None, None, list(classes), raw.source)


def _find_quickdraw(name: str, root: Path, classes: Sequence[str] | None,
                    max_per_class: int) -> RawDataset | None:
    cands = [root / "quickdraw.npz", root / "quickdraw4.npz"] + sorted(root.glob("quickdraw*.npz"))
    for cand in cands:
        if cand.is_file():
            raw = load_npz(cand, "quickdraw")
            if cand.name == "quickdraw4.npz" and raw.classes == ["0", "1", "2", "3"]:
                raw.classes = list(_QUICKDRAW4_CLASSES)
            return raw if classes is None else _keep_classes(raw, classes, cand)
    if (root / "quickdraw").is_dir() and list((root / "quickdraw").glob("*.npy")):
        return load_quickdraw_dir(root / "quickdraw", classes, max_per_class)
    return None


def _find_npz(name: str, root: Path) -> RawDataset | None:
    """The last resort of every standard dataset: ``<root>/<name>.npz``."""
    if (root / f"{name}.npz").is_file():
        return load_npz(root / f"{name}.npz", name, CLASSES.get(name))
    return None


#: canonical dataset name -> its finder (the layouts it reads are LAYOUTS[name])
_FINDERS: dict[str, Finder] = {
    "cifar10": _find_cifar,
    "cifar100": _find_cifar,
    "svhn": _find_svhn,
    "mnist": _find_idx_dataset,
    "fashion_mnist": _find_idx_dataset,
    "quickdraw": _find_quickdraw,
}


def _try_local(name: str, root: Path, classes: Sequence[str] | None, max_per_class: int) -> RawDataset | None:
    return _FINDERS[name](name, root, classes, max_per_class)


def _load_generic(name: str) -> RawDataset:
    kind, p = name.split(":", 1)
    path = Path(p).expanduser()
    if kind == "npz":
        return load_npz(path, name)
    return read_image_archive(path, name)


@contextlib.contextmanager
def _unreadable_as_value_error(name: str, where: Any) -> Iterator[None]:
    """Errors of files that exist but cannot be decoded (truncated, damaged, another format) as
    one ValueError naming the dataset and where it was read."""
    try:
        yield
    except FileNotFoundError:
        raise
    except (EOFError, zipfile.BadZipFile, gzip.BadGzipFile, tarfile.ReadError, zlib.error, struct.error,
            OSError) as exc:
        raise ValueError(f"{name}: cannot read the dataset files at {where}: {exc.__class__.__name__}: {exc} "
                         f"(truncated, damaged or not the expected format)") from None


def load_raw(name: str, root: str | os.PathLike | None = None, *, download: bool | None = None,
             classes: Sequence[str] | None = None, max_per_class: int = 5000) -> RawDataset:
    """The standard splits of dataset ``name`` (see the module doc for names and layouts).

    ``download``: ``None`` downloads only if the files are missing and the
    network is reachable, ``False`` never downloads, ``True`` downloads if
    missing.  ``classes`` / ``max_per_class`` apply to Quickdraw (a folder of
    per-class ``.npy`` files is large: only the first ``max_per_class``
    drawings of each class are read; downloading needs ``classes``).
    """
    if ":" in name and name.split(":", 1)[0] in _GENERIC:
        with _unreadable_as_value_error(name, name.split(":", 1)[1]):
            return _load_generic(name)
    name = canonical_name(name)
    base = data_root(root)
    with _unreadable_as_value_error(name, base):
        raw = _try_local(name, base, classes, max_per_class) if base.exists() else None
    if raw is not None:
        return raw
    looked = [str(base / item) for item in LAYOUTS[name]]
    can_download = name != "quickdraw" or classes is not None
    if download is None:
        download = can_download and reachable(DOWNLOAD_HOSTS[name])
    if download and can_download:
        raw = _download_and_find(name, base, classes, max_per_class, looked)
        if raw is not None:
            return raw
    hint = "" if download else " (download disabled or network unreachable)"
    raise FileNotFoundError(f"{name}: dataset files not found{hint}; looked for: {'; '.join(looked)}. "
                            f"Pass root=... (--data-root) or set ${DATA_ENV}.")


def _download_and_find(name: str, base: Path, classes: Sequence[str] | None, max_per_class: int,
                       looked: list[str]) -> RawDataset | None:
    try:
        fetch(name, base, classes)
    except Exception as exc:  # noqa: BLE001 - report the download failure with the paths
        raise FileNotFoundError(f"{name}: not found locally (looked for: {'; '.join(looked)}) "
                                f"and the download failed: {exc}") from None
    return _try_local(name, base, classes, max_per_class)
