"""Deprecated: the former single loaders module, kept importable for one release.

Its contents moved to :mod:`~nasbench_xfer.datasets.paths`,
:mod:`~nasbench_xfer.datasets.download`, :mod:`~nasbench_xfer.datasets.decode`,
:mod:`~nasbench_xfer.datasets.discovery` and :mod:`~nasbench_xfer.datasets.tasks`;
this module re-exports the public names (import them from
``nasbench_xfer.datasets``).
"""
from __future__ import annotations

from nasbench_xfer.datasets import (
    DATASETS,
    LAYOUTS,
    ImageTask,
    RawDataset,
    cache_dir,
    canonical_name,
    data_root,
    decode_images,
    load_raw,
    load_task,
    make_task,
    read_idx,
    read_image_archive,
)

__all__ = ["RawDataset", "ImageTask", "DATASETS", "LAYOUTS", "load_raw", "load_task", "make_task",
           "data_root", "cache_dir", "canonical_name", "read_idx", "read_image_archive", "decode_images"]


def __getattr__(name: str):
    if name == "TaskData":  # the deprecated alias of ImageTask (warns)
        import nasbench_xfer.datasets
        return nasbench_xfer.datasets.TaskData
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
