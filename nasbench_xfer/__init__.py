"""nasbench_xfer: transfer neural architecture search (XferNAS, Wistuba 2019).

Public entry points:

* :mod:`nasbench_xfer.space`     search spaces (NASNet, NB201-style edge cells, NAS-Bench-Graph)
* :mod:`nasbench_xfer.store`     the HDF5 benchmark store
* :mod:`nasbench_xfer.importers` importers of real benchmarks into stores
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
