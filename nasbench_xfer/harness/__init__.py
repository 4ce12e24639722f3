"""Training harness: build NASNet-space networks, train them on image tasks, record the results.

* :mod:`.ops`        the 19 operations (any stride, any channel count)
* :mod:`.network`    cells, the CIFAR-style network, parameter and FLOP counts
* :mod:`.data`       device-resident batches with tensor-op augmentation
* :mod:`.protocols`  named, serialisable training protocols (paper-search, proxies, smoke)
* :mod:`.engine`     one training as a sequence of device work (optionally one CUDA graph per
                     step); several trainings in flight on their own CUDA streams
* :mod:`.train`      ``train_one`` / ``train_concurrent`` -> record dicts (one process)
* :mod:`.parallel`   worker processes, one per device entry (``train_many``, ``--devices``)
* :mod:`.runner`     resumable, sharded runs that append to an HDF5 store
"""
from __future__ import annotations

from .network import NetConfig, Network, build_network, count_flops, count_params
from .parallel import train_many
from .protocols import PROTOCOLS, Protocol, get_protocol, list_protocols
from .train import SpeedFlags, train_concurrent, train_one

__all__ = ["NetConfig", "Network", "build_network", "count_flops", "count_params", "PROTOCOLS", "Protocol",
           "get_protocol", "list_protocols", "SpeedFlags", "train_concurrent", "train_many", "train_one"]
