"""nasbench_xfer: transfer neural architecture search (XferNAS, Wistuba 2019).

Public entry points:

* :mod:`nasbench_xfer.space`     search spaces (NASNet, NB201-style edge cells, NAS-Bench-Graph)
* :mod:`nasbench_xfer.store`     the HDF5 benchmark store
* :mod:`nasbench_xfer.importers` importers of real benchmarks into stores
* :func:`nasbench_xfer.load`     a store by path, or a known benchmark by name (:mod:`.catalog`)
"""
from __future__ import annotations

from pathlib import Path as _Path

__version__ = "0.1.0"

# The design card keeps datasets/, baselines/ and evaluate/ at the top of the repository;
# installs map them to nasbench_xfer.datasets etc. (setup.py).  When the package runs
# straight from a source checkout (PYTHONPATH=.), let the same names resolve there.
_checkout = _Path(__file__).resolve().parent.parent
if (_checkout / "setup.py").is_file() and all(
        (_checkout / _d / "__init__.py").is_file() for _d in ("datasets", "baselines", "evaluate")):
    __path__.append(str(_checkout))  # type: ignore[name-defined]



def load(name_or_path, **kwargs):
    """An open, read-only store from a path or a known benchmark name (see :func:`nasbench_xfer.catalog.load`)."""
    from .catalog import load as _load
    return _load(name_or_path, **kwargs)


__all__ = ["__version__", "load"]
