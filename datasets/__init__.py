"""Image datasets (installed as ``nasbench_xfer.datasets``): loaders, splits, task metadata.

See :mod:`nasbench_xfer.datasets.loaders` for the supported datasets, the file
layouts looked for, the splits of appendix B and the preprocessing record.
"""
from __future__ import annotations

if __name__ != "nasbench_xfer.datasets":  # one module, one name: never a second copy as `datasets`
    raise ImportError(f"{__name__!r} is nasbench_xfer's datasets folder: import nasbench_xfer.datasets instead")

from nasbench_xfer.datasets.loaders import (
    DATASETS,
    LAYOUTS,
    RawDataset,
    TaskData,
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

__all__ = ["DATASETS", "LAYOUTS", "RawDataset", "TaskData", "cache_dir", "canonical_name", "data_root",
           "decode_images", "load_raw", "load_task", "make_task", "read_idx",
           "read_image_archive"]
