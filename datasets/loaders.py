"""Image-dataset loaders and the paper's data splits (appendix B).

Two layers:

* :func:`load_raw` reads a dataset's standard splits into uint8 arrays
  ``(N, C, H, W)`` with int64 labels (:class:`RawDataset`).
* :func:`load_task` turns a raw dataset into a *task* (:class:`TaskData`):
  the train / validation / test tensors in memory, the class names, the split
  seed and held-out indices, and a description of the preprocessing.

Where the files come from.  Every loader first looks for local files under
``root`` (argument, else ``$NASBENCH_XFER_DATA``, else
``~/.cache/nasbench_xfer/data``) in the layouts listed in :data:`LAYOUTS`.  Only
when none is there and ``download`` allows it (the default ``None`` means: if
the network is reachable) does it call torchvision's downloader (CIFAR,
SVHN, MNIST, Fashion-MNIST) into ``root``.  Nothing ever requires the network:
a dataset that is neither local nor downloadable raises
:class:`FileNotFoundError` naming every path looked for.

Supported names: ``cifar10``, ``cifar100``, ``svhn``, ``mnist``,
``fashion_mnist``, ``quickdraw`` and two generic forms,
``imagefolder:<dir or .tar/.tar.gz>`` (``<split>/<class>/*.jpg|png``, splits
``train`` and ``test``; a folder with class folders only is one pooled set) and
``npz:<file>`` (``images``/``labels``, or ``train_images``/``train_labels``/
``test_images``/``test_labels``).

Decoded JPEG/PNG archives are cached as ``.npz`` under the user cache dir
(``$NASBENCH_XFER_CACHE``, else ``$XDG_CACHE_HOME/nasbench_xfer``, else
``~/.cache/nasbench_xfer``), never inside the repository; decoding the 60,000
CIFAR-10 JPEGs takes about 6 s on one core, reading the cache well under 1 s.

Splits (appendix B).  Datasets with a standard train/test split keep it and
hold out ``val_size`` (5,000) training images for validation, chosen by a
seeded permutation (``split_seed``; the indices are kept in
:attr:`TaskData.val_indices` and their SHA-1 in the metadata).  *Pooled* sets
(Quickdraw, an ``npz``/image folder without a test split) pick
``num_classes`` classes at random (seeded) and per class ``train_per_class``
(450) training, ``val_per_class`` (50) validation and ``test_per_class`` (100)
test images at random.

Preprocessing (appendix A), recorded in ``meta["preprocessing"]``: images stay
uint8; per-channel standardisation uses the mean and standard deviation of the
training split (after the hold-out, before any ``train_limit``); grayscale
images (1 channel) smaller than ``pad_to`` (32) are zero-padded symmetrically
at load time (28x28 -> 32x32: 2 zero pixels on each side) and stay 1-channel.
Training augmentation (pad 4 + random 32x32 crop, horizontal flip, optional
cutout 16) is applied per batch on the device by
:mod:`nasbench_xfer.harness.data`.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import socket
import struct
import tarfile
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RawDataset", "TaskData", "DATASETS", "LAYOUTS", "load_raw", "load_task", "make_task",
           "data_root", "cache_dir", "canonical_name", "read_idx", "read_image_archive", "decode_images"]

DATA_ENV = "NASBENCH_XFER_DATA"
CACHE_ENV = "NASBENCH_XFER_CACHE"

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
                      "/usr/share/datasets/fashion-mnist/ (Debian dataset-fashion-mnist)", "fashion_mnist.npz"],
    "quickdraw": ["quickdraw.npz", "quickdraw4.npz", "quickdraw*.npz",
                  "quickdraw/ (<class>.npy or full_numpy_bitmap_<class>.npy, official 28x28 bitmaps)"],
}

_IDX_FILES = {
    "train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte",
}
_CLASSES = {
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
    "mnist": [str(i) for i in range(10)],
    "svhn": [str(i) for i in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"],
}
_QUICKDRAW4_CLASSES = ["cat", "fish", "apple", "bicycle"]
_QUICKDRAW_URL = "https://storage.googleapis.com/quickdraw_dataset/full/numpy_bitmap/{}.npy"


# ---------------------------------------------------------------- paths
def data_root(root: str | os.PathLike | None = None) -> Path:
    """``root``, else ``$NASBENCH_XFER_DATA``, else ``~/.cache/nasbench_xfer/data``."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return Path.home() / ".cache" / "nasbench_xfer" / "data"


def cache_dir() -> Path:
    """User cache directory for decoded arrays (never inside the repository)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nasbench_xfer"


def canonical_name(name: str) -> str:
    """Canonical dataset name (``cifar-10`` -> ``cifar10``); generic ``kind:path`` names unchanged."""
    if ":" in name and name.split(":", 1)[0] in ("imagefolder", "npz"):
        return name
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}, "
                         f"imagefolder:<path>, npz:<path>")
    return key


def _reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# ------------------------------------------------------------- raw data
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


def _to_nchw(x: np.ndarray, where: str) -> np.ndarray:
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


def _find_idx(folder: Path) -> dict[str, Path] | None:
    found = {}
    for key, stem in _IDX_FILES.items():
        for cand in (folder / f"{stem}.gz", folder / stem):
            if cand.is_file():
                found[key] = cand
                break
        else:
            return None
    return found


def _load_idx_folder(name: str, files: dict[str, Path]) -> RawDataset:
    tx, ty = read_idx(files["train_x"]), read_idx(files["train_y"]).astype(np.int64)
    vx, vy = read_idx(files["test_x"]), read_idx(files["test_y"]).astype(np.int64)
    return RawDataset(name, _to_nchw(tx, name), ty, _to_nchw(vx, name), vy, list(_CLASSES[name]),
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
        with Image.open(io.BytesIO(data)) as im:
            if im.mode not in ("L", "RGB"):
                im = im.convert("RGB")
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
        try:
            with np.load(cache, allow_pickle=False) as z:
                classes = json.loads(str(z["classes"]))
                test_x = z["test_x"] if z["test_x"].size else None
                test_y = z["test_y"] if test_x is not None else None
                return RawDataset(name, z["train_x"], z["train_y"], test_x, test_y, classes, str(path))
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt
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
    train_key = "train" if "train" in by_split else ("all" if "all" in by_split else None)
    if train_key is None:
        raise ValueError(f"{path}: no 'train' split folder (found {sorted(by_split)})")
    test_key = next((k for k in ("test", "val", "valid", "validation") if k in by_split), None)
    if train_key == "all":
        test_key = None
    classes = sorted({c for k in (train_key, test_key) if k for c, _, _ in by_split[k]})
    cindex = {c: i for i, c in enumerate(classes)}

    def decode(items: list[tuple[str, str, bytes]]) -> tuple[np.ndarray, np.ndarray]:
        items = sorted(items, key=lambda t: (cindex[t[0]], t[1]))
        imgs = _decode_many([(f"{path}:{rel}", d) for _, rel, d in items])
        shape = imgs[0].shape
        for (_, rel, _), im in zip(items, imgs):
            if im.shape != shape:
                raise ValueError(f"{path}:{rel}: image shape {tuple(im.shape)} differs from "
                                 f"{tuple(shape)} of the first image")
        return (np.ascontiguousarray(np.stack(imgs)),
                np.asarray([cindex[c] for c, _, _ in items], dtype=np.int64))

    train_x, train_y = decode(by_split[train_key])
    test_x = test_y = None
    if test_key:
        test_x, test_y = decode(by_split[test_key])
    if use_cache:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(cache.name + f".tmp-{os.getpid()}.npz")
            np.savez(tmp, train_x=train_x, train_y=train_y,
                     test_x=test_x if test_x is not None else np.zeros((0,), np.uint8),
                     test_y=test_y if test_y is not None else np.zeros((0,), np.int64),
                     classes=json.dumps(classes))
            os.replace(tmp, cache)
        except OSError:
            pass  # caching is an optimisation only
    return RawDataset(name, train_x, train_y, test_x, test_y, classes, str(path))


def _load_npz(path: Path, name: str, classes: Sequence[str] | None = None) -> RawDataset:
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
        if {"train_images", "train_labels"} <= keys:
            tx, ty = _to_nchw(z["train_images"], str(path)), z["train_labels"].astype(np.int64)
            if {"test_images", "test_labels"} <= keys:
                vx, vy = _to_nchw(z["test_images"], str(path)), z["test_labels"].astype(np.int64)
            else:
                vx = vy = None
        elif {"images", "labels"} <= keys:
            tx, ty = _to_nchw(z["images"], str(path)), z["labels"].astype(np.int64)
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


def _load_quickdraw_dir(folder: Path, classes: Sequence[str] | None, max_per_class: int) -> RawDataset:
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
        xs.append(_to_nchw(np.asarray(arr), str(p)))
        ys.append(np.full(len(arr), i, dtype=np.int64))
    return RawDataset("quickdraw", np.concatenate(xs), np.concatenate(ys), None, None, list(files), str(folder))


def _torchvision_download(name: str, root: Path) -> None:
    import torchvision.datasets as tvd
    root.mkdir(parents=True, exist_ok=True)
    if name == "cifar10":
        tvd.CIFAR10(str(root), train=True, download=True)
        tvd.CIFAR10(str(root), train=False, download=True)
    elif name == "cifar100":
        tvd.CIFAR100(str(root), train=True, download=True)
        tvd.CIFAR100(str(root), train=False, download=True)
    elif name == "svhn":
        tvd.SVHN(str(root), split="train", download=True)
        tvd.SVHN(str(root), split="test", download=True)
    elif name == "mnist":
        tvd.MNIST(str(root), train=True, download=True)
    elif name == "fashion_mnist":
        tvd.FashionMNIST(str(root), train=True, download=True)
    else:
        raise FileNotFoundError(name)


_DOWNLOAD_HOSTS = {"cifar10": "www.cs.toronto.edu", "cifar100": "www.cs.toronto.edu",
                   "svhn": "ufldl.stanford.edu", "mnist": "ossci-datasets.s3.amazonaws.com",
                   "fashion_mnist": "fashion-mnist.s3-website.eu-central-1.amazonaws.com",
                   "quickdraw": "storage.googleapis.com"}


def _try_local(name: str, root: Path, classes: Sequence[str] | None,
               max_per_class: int) -> RawDataset | None:
    if name in ("cifar10", "cifar100"):
        tv_dir = root / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
        if tv_dir.is_dir():
            import torchvision.datasets as tvd
            cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
            tr, te = cls(str(root), train=True, download=False), cls(str(root), train=False, download=False)
            return RawDataset(name, _to_nchw(tr.data, name), np.asarray(tr.targets, np.int64),
                              _to_nchw(te.data, name), np.asarray(te.targets, np.int64),
                              list(tr.classes), str(tv_dir))
        for cand in (root / f"{name}-jpeg.tar.gz", root / f"{name}-jpeg.tar", root / name):
            if cand.exists():
                raw = read_image_archive(cand, name)
                if name == "cifar10" and raw.classes != _CLASSES["cifar10"]:
                    raise ValueError(f"{cand}: unexpected CIFAR-10 classes {raw.classes}")
                return raw
        if (root / f"{name}.npz").is_file():
            return _load_npz(root / f"{name}.npz", name, _CLASSES.get(name))
    elif name == "svhn":
        for d in (root, root / "svhn"):
            if (d / "train_32x32.mat").is_file() and (d / "test_32x32.mat").is_file():
                import torchvision.datasets as tvd
                tr = tvd.SVHN(str(d), split="train", download=False)
                te = tvd.SVHN(str(d), split="test", download=False)
                return RawDataset(name, _to_nchw(tr.data, name), tr.labels.astype(np.int64),
                                  _to_nchw(te.data, name), te.labels.astype(np.int64),
                                  list(_CLASSES["svhn"]), str(d))
        if (root / "svhn.npz").is_file():
            return _load_npz(root / "svhn.npz", name, _CLASSES["svhn"])
    elif name in ("mnist", "fashion_mnist"):
        dirs = ([root / "mnist", root / "MNIST" / "raw", root] if name == "mnist" else
                [root / "fashion-mnist", root / "fashion_mnist", root / "FashionMNIST" / "raw",
                 Path("/usr/share/datasets/fashion-mnist")])
        if name == "fashion_mnist" and root.name in ("fashion-mnist", "fashion_mnist"):
            dirs.insert(0, root)
        for d in dirs:
            files = _find_idx(d) if d.is_dir() else None
            if files:
                return _load_idx_folder(name, files)
        if (root / f"{name}.npz").is_file():
            return _load_npz(root / f"{name}.npz", name, _CLASSES[name])
    elif name == "quickdraw":
        cands = [root / "quickdraw.npz", root / "quickdraw4.npz"] + sorted(root.glob("quickdraw*.npz"))
        for cand in cands:
            if cand.is_file():
                raw = _load_npz(cand, "quickdraw")
                if cand.name == "quickdraw4.npz" and raw.classes == ["0", "1", "2", "3"]:
                    raw.classes = list(_QUICKDRAW4_CLASSES)
                if classes is not None:
                    keep = [raw.classes.index(c) for c in classes if c in raw.classes]
                    if len(keep) != len(classes):
                        raise FileNotFoundError(f"quickdraw: {cand} lacks classes "
                                                f"{[c for c in classes if c not in raw.classes]}")
                    mask = np.isin(raw.train_y, keep)
                    remap = {k: i for i, k in enumerate(keep)}
                    raw = RawDataset("quickdraw", raw.train_x[mask],
                                     np.asarray([remap[int(v)] for v in raw.train_y[mask]], np.int64),
                                     None, None, list(classes), raw.source)
                return raw
        if (root / "quickdraw").is_dir() and list((root / "quickdraw").glob("*.npy")):
            return _load_quickdraw_dir(root / "quickdraw", classes, max_per_class)
    return None


def _download_quickdraw(root: Path, classes: Sequence[str]) -> None:
    import urllib.request
    folder = root / "quickdraw"
    folder.mkdir(parents=True, exist_ok=True)
    for c in classes:
        dest = folder / f"{c}.npy"
        if dest.is_file():
            continue
        tmp = dest.with_name(dest.name + f".tmp-{os.getpid()}")
        urllib.request.urlretrieve(_QUICKDRAW_URL.format(c.replace(" ", "%20")), tmp)
        os.replace(tmp, dest)


def load_raw(name: str, root: str | os.PathLike | None = None, *, download: bool | None = None,
             classes: Sequence[str] | None = None, max_per_class: int = 5000) -> RawDataset:
    """The standard splits of dataset ``name`` (see the module doc for names and layouts).

    ``download``: ``None`` downloads with torchvision only if the files are
    missing and the network is reachable, ``False`` never downloads, ``True``
    downloads if missing.  ``classes`` / ``max_per_class`` apply to Quickdraw
    (a folder of per-class ``.npy`` files is large: only the first
    ``max_per_class`` drawings of each class are read; downloading needs
    ``classes``).
    """
    if ":" in name and name.split(":", 1)[0] in ("imagefolder", "npz"):
        kind, p = name.split(":", 1)
        path = Path(p).expanduser()
        if kind == "npz":
            return _load_npz(path, name)
        return read_image_archive(path, name)
    name = canonical_name(name)
    base = data_root(root)
    raw = _try_local(name, base, classes, max_per_class) if base.exists() else None
    if raw is not None:
        return raw
    looked = [str(base / item) for item in LAYOUTS[name]]
    can_download = name != "quickdraw" or classes is not None
    if download is None:
        download = can_download and _reachable(_DOWNLOAD_HOSTS[name])
    if download and can_download:
        try:
            if name == "quickdraw":
                _download_quickdraw(base, classes or ())
            else:
                _torchvision_download(name, base)
        except Exception as exc:  # noqa: BLE001 - report the download failure with the paths
            raise FileNotFoundError(f"{name}: not found locally (looked for: {'; '.join(looked)}) "
                                    f"and the download failed: {exc}") from None
        raw = _try_local(name, base, classes, max_per_class)
        if raw is not None:
            return raw
    hint = "" if download else " (download disabled or network unreachable)"
    raise FileNotFoundError(f"{name}: dataset files not found{hint}; looked for: {'; '.join(looked)}. "
                            f"Pass root=... or set ${DATA_ENV}.")


# ----------------------------------------------------------------- tasks
@dataclass
class TaskData:
    """A task: uint8 image tensors ``(N, C, H, W)`` and int64 labels for train/val/test, plus metadata."""

    name: str
    train_x: Any
    train_y: Any
    val_x: Any
    val_y: Any
    test_x: Any
    test_y: Any
    classes: list[str]
    meta: dict[str, Any] = field(default_factory=dict)
    val_indices: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])

    @property
    def preprocessing(self) -> dict[str, Any]:
        return self.meta.get("preprocessing", {})

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train_y), "val": len(self.val_y), "test": len(self.test_y)}

    def subset(self, train: int | None = None, val: int | None = None, test: int | None = None,
               seed: int = 0) -> TaskData:
        """A smaller task: random (seeded) ``train``/``val``/``test`` images of each split.

        The preprocessing statistics stay those of the full training split.
        """
        import torch
        rng = np.random.default_rng(seed)

        def pick(x, y, n):
            if n is None or n >= len(y):
                return x, y
            idx = torch.as_tensor(np.sort(rng.permutation(len(y))[:n]))
            return x[idx], y[idx]

        tx, ty = pick(self.train_x, self.train_y, train)
        vx, vy = pick(self.val_x, self.val_y, val)
        sx, sy = pick(self.test_x, self.test_y, test)
        meta = dict(self.meta)
        meta["subset"] = {"train": train, "val": val, "test": test, "seed": seed}
        meta["sizes"] = {"train": len(ty), "val": len(vy), "test": len(sy)}
        return TaskData(self.name, tx, ty, vx, vy, sx, sy, list(self.classes), meta, self.val_indices)


def _pad_gray(x: np.ndarray, pad_to: int | None) -> tuple[np.ndarray, dict | None]:
    if pad_to is None or x.shape[1] != 1 or x.shape[-1] >= pad_to:
        return x, None
    h, w = x.shape[-2:]
    ph, pw = pad_to - h, pad_to - w
    pads = ((0, 0), (0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2))
    rule = {"from": [int(h), int(w)], "to": [pad_to, pad_to],
            "rule": f"zero padding, {ph // 2} px top/left and {ph - ph // 2} px bottom/right"}
    return np.pad(x, pads), rule


def _channel_stats(x: np.ndarray) -> tuple[list[float], list[float]]:
    C = x.shape[1]
    s = np.zeros(C, np.float64)
    s2 = np.zeros(C, np.float64)
    n = 0
    for i in range(0, len(x), 4096):  # exact integer sums, chunked to bound memory
        chunk = x[i: i + 4096]
        s += chunk.sum(axis=(0, 2, 3), dtype=np.int64)
        sq = chunk.astype(np.int32)
        s2 += np.einsum("nchw,nchw->c", sq, sq, dtype=np.int64)
        n += chunk.shape[0] * chunk.shape[2] * chunk.shape[3]
    mean = s / n
    std = np.sqrt(np.maximum(s2 / n - mean ** 2, 1e-12))
    return [float(v) for v in mean], [float(v) for v in std]


def _sha1(a: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(a, dtype=np.int64).tobytes()).hexdigest()


def make_task(raw: RawDataset, *, split_seed: int = 0, val_size: int = 5000,
              num_classes: int | None = None, train_per_class: int = 450, val_per_class: int = 50,
              test_per_class: int = 100, train_limit: int | None = None, val_limit: int | None = None,
              test_limit: int | None = None, pad_to: int | None = 32,
              task_name: str | None = None) -> TaskData:
    """Split ``raw`` into a :class:`TaskData` (see the module doc for the rules).

    ``train_limit``/``val_limit``/``test_limit`` keep a seeded random subset of each
    split (cheap proxies and tests); the normalisation statistics are computed on
    the training split before the limit.
    """
    import torch
    rng = np.random.default_rng(split_seed)
    meta: dict[str, Any] = {"dataset": raw.name, "source": raw.source, "split_seed": int(split_seed)}
    classes = list(raw.classes)
    if raw.test_x is not None:
        n = len(raw.train_y)
        if not 0 <= val_size < n:
            raise ValueError(f"{raw.name}: val_size={val_size} must be in [0, {n})")
        perm = rng.permutation(n)
        val_idx = np.sort(perm[:val_size])
        train_idx = np.sort(perm[val_size:])
        tx, ty = raw.train_x[train_idx], raw.train_y[train_idx]
        vx, vy = raw.train_x[val_idx], raw.train_y[val_idx]
        sx, sy = raw.test_x, raw.test_y
        meta["split"] = {"rule": "standard train/test; validation held out of train by a seeded "
                                 "permutation (numpy default_rng(split_seed).permutation)",
                         "val_size": int(val_size)}
        if num_classes is not None and num_classes != len(classes):
            raise ValueError(f"{raw.name} has a fixed class set ({len(classes)}); num_classes applies "
                             f"to pooled sets (quickdraw, npz without a test split)")
    else:  # pooled: pick classes, then per-class train/val/test
        avail = np.unique(raw.train_y)
        k = len(avail) if num_classes is None else int(num_classes)
        if not 1 <= k <= len(avail):
            raise ValueError(f"{raw.name}: num_classes={k} but {len(avail)} classes are available")
        chosen = np.sort(rng.choice(avail, size=k, replace=False))
        tr, va, te = [], [], []
        for c in chosen:
            idx = rng.permutation(np.flatnonzero(raw.train_y == c))
            need = train_per_class + val_per_class
            if len(idx) < need:
                raise ValueError(f"{raw.name}: class {raw.classes[c]!r} has {len(idx)} images, "
                                 f"{need} needed ({train_per_class} train + {val_per_class} val)")
            tr.append(idx[:train_per_class])
            va.append(idx[train_per_class:need])
            te.append(idx[need: need + test_per_class])
        remap = np.full(int(raw.train_y.max()) + 1, -1, np.int64)
        remap[chosen] = np.arange(k)
        train_idx, val_idx, test_idx = (np.sort(np.concatenate(a)) for a in (tr, va, te))
        tx, ty = raw.train_x[train_idx], remap[raw.train_y[train_idx]]
        vx, vy = raw.train_x[val_idx], remap[raw.train_y[val_idx]]
        sx, sy = raw.train_x[test_idx], remap[raw.train_y[test_idx]]
        classes = [raw.classes[c] for c in chosen]
        meta["split"] = {"rule": "pooled: num_classes random classes, then per class random "
                                 "train/val/test drawings (appendix B)",
                         "class_ids": [int(c) for c in chosen], "train_per_class": train_per_class,
                         "val_per_class": val_per_class, "test_per_class": test_per_class}
    tx, gray = _pad_gray(tx, pad_to)
    vx, _ = _pad_gray(vx, pad_to)
    sx, _ = _pad_gray(sx, pad_to)
    mean, std = _channel_stats(tx)
    meta["val_indices_sha1"] = _sha1(val_idx)
    meta["num_val_indices"] = int(len(val_idx))
    meta["preprocessing"] = {
        "standardize": "per-channel (x - mean) / std on the 0..255 pixel scale",
        "mean": mean, "std": std, "stats_from": "training split (after the validation hold-out)",
        "grayscale_pad": gray,
        "augment_defaults": {"pad": 4, "crop": int(tx.shape[-1]), "hflip": True, "cutout": 0},
    }
    rng_lim = np.random.default_rng([split_seed, 1])

    def limit(x, y, n):
        if n is None or n >= len(y):
            return x, y
        idx = np.sort(rng_lim.permutation(len(y))[:n])
        return x[idx], y[idx]

    tx, ty = limit(tx, ty, train_limit)
    vx, vy = limit(vx, vy, val_limit)
    sx, sy = limit(sx, sy, test_limit)
    meta["limits"] = {"train": train_limit, "val": val_limit, "test": test_limit}
    meta["sizes"] = {"train": int(len(ty)), "val": int(len(vy)), "test": int(len(sy))}
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return TaskData(task_name or raw.name, t(tx), t(ty.astype(np.int64)), t(vx), t(vy.astype(np.int64)),
                    t(sx), t(sy.astype(np.int64)), classes, meta, val_idx)


def load_task(name: str, root: str | os.PathLike | None = None, *, download: bool | None = None,
              split_seed: int = 0, val_size: int = 5000, num_classes: int | None = None,
              train_per_class: int = 450, val_per_class: int = 50, test_per_class: int = 100,
              train_limit: int | None = None, val_limit: int | None = None,
              test_limit: int | None = None, pad_to: int | None = 32,
              classes: Sequence[str] | None = None) -> TaskData:
    """:func:`load_raw` followed by :func:`make_task` (all splits in memory as uint8 tensors)."""
    t0 = time.perf_counter()
    raw = load_raw(name, root, download=download, classes=classes)
    task = make_task(raw, split_seed=split_seed, val_size=val_size, num_classes=num_classes,
                     train_per_class=train_per_class, val_per_class=val_per_class,
                     test_per_class=test_per_class, train_limit=train_limit, val_limit=val_limit,
                     test_limit=test_limit, pad_to=pad_to)
    task.meta["load_seconds"] = round(time.perf_counter() - t0, 3)
    return task
