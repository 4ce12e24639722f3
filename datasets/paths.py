"""Where dataset files and decoded caches live: the data root and the cache directory.

Owns the environment variables and their documented defaults, nothing else:

* data root: the ``root`` argument, else ``$NASBENCH_XFER_DATA``, else
  ``~/.cache/nasbench_xfer/data``;
* cache of decoded arrays: ``$NASBENCH_XFER_CACHE``, else
  ``$XDG_CACHE_HOME/nasbench_xfer``, else ``~/.cache/nasbench_xfer`` (never
  inside the repository).

No other location is ever searched.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_ENV", "CACHE_ENV", "data_root", "cache_dir"]

DATA_ENV = "NASBENCH_XFER_DATA"
CACHE_ENV = "NASBENCH_XFER_CACHE"


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
