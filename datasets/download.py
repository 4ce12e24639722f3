"""Downloads: the network probe and the per-dataset downloaders.

Owns the hosts probed before downloading (:data:`DOWNLOAD_HOSTS`), the probe
itself (:func:`reachable`) and the downloaders: torchvision's for CIFAR-10/100,
SVHN, MNIST and Fashion-MNIST, and the official Quick, Draw! bitmaps
(one ``<class>.npy`` per class).  Everything is written under the data root
given by the caller; nothing here decides *whether* to download
(:func:`nasbench_xfer.datasets.discovery.load_raw` does).
"""
from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["DOWNLOAD_HOSTS", "QUICKDRAW_URL", "reachable", "download"]

#: the host whose reachability decides ``download=None`` for each dataset
DOWNLOAD_HOSTS = {"cifar10": "www.cs.toronto.edu", "cifar100": "www.cs.toronto.edu",
                  "svhn": "ufldl.stanford.edu", "mnist": "ossci-datasets.s3.amazonaws.com",
                  "fashion_mnist": "fashion-mnist.s3-website.eu-central-1.amazonaws.com",
                  "quickdraw": "storage.googleapis.com"}
QUICKDRAW_URL = "https://storage.googleapis.com/quickdraw_dataset/full/numpy_bitmap/{}.npy"

#: dataset -> (torchvision.datasets class name, the keyword arguments of each split downloaded)
_TORCHVISION: dict[str, tuple[str, tuple[dict[str, Any], ...]]] = {
    "cifar10": ("CIFAR10", ({"train": True}, {"train": False})),
    "cifar100": ("CIFAR100", ({"train": True}, {"train": False})),
    "svhn": ("SVHN", ({"split": "train"}, {"split": "test"})),
    "mnist": ("MNIST", ({"train": True},)),  # torchvision fetches all four IDX files at once
    "fashion_mnist": ("FashionMNIST", ({"train": True},)),
}


def reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _torchvision_download(name: str, root: Path) -> None:
    import torchvision.datasets as tvd
    if name not in _TORCHVISION:
        raise FileNotFoundError(name)
    root.mkdir(parents=True, exist_ok=True)
    cls_name, splits = _TORCHVISION[name]
    for kwargs in splits:
        getattr(tvd, cls_name)(str(root), download=True, **kwargs)


def _download_quickdraw(root: Path, classes: Sequence[str]) -> None:
    import urllib.request
    folder = root / "quickdraw"
    folder.mkdir(parents=True, exist_ok=True)
    for c in classes:
        dest = folder / f"{c}.npy"
        if dest.is_file():
            continue
        tmp = dest.with_name(dest.name + f".tmp-{os.getpid()}")
        urllib.request.urlretrieve(QUICKDRAW_URL.format(c.replace(" ", "%20")), tmp)
        os.replace(tmp, dest)


def download(name: str, root: Path, classes: Sequence[str] | None = None) -> None:
    """Download canonical dataset ``name`` into ``root`` (Quickdraw: the given ``classes``)."""
    if name == "quickdraw":
        _download_quickdraw(root, classes or ())
    else:
        _torchvision_download(name, root)
