"""nasbench_xfer: transfer neural architecture search (XferNAS, Wistuba 2019).

Public entry points:

* :mod:`nasbench_xfer.space`     search spaces (NASNet, NB201-style edge cells, NAS-Bench-Graph)
* :mod:`nasbench_xfer.store`     the HDF5 benchmark store
* :mod:`nasbench_xfer.importers` importers of real benchmarks into stores
* :func:`nasbench_xfer.load`     a store by path, or a known benchmark by name (:mod:`.catalog`)
"""
from __future__ import annotations

__version__ = "0.1.0"

def load(name_or_path, **kwargs):
    """An open, read-only store from a path or a known benchmark name (see :func:`nasbench_xfer.catalog.load`)."""
    from .catalog import load as _load
    return _load(name_or_path, **kwargs)


__all__ = ["__version__", "load"]
