"""Image datasets (installed as ``nasbench_xfer.datasets``): loaders, splits, task metadata.

See :mod:`nasbench_xfer.datasets.loaders` for the supported datasets, the file
layouts looked for, the splits of appendix B and the preprocessing record.
"""
from __future__ import annotations

from .loaders import (DATASETS, LAYOUTS, RawDataset, TaskData, cache_dir, canonical_name, data_root,
                      decode_images, load_raw, load_task, make_task, read_idx,
                      read_image_archive)

__all__ = ["DATASETS", "LAYOUTS", "RawDataset", "TaskData", "cache_dir", "canonical_name", "data_root",
           "decode_images", "load_raw", "load_task", "make_task", "read_idx",
           "read_image_archive"]
