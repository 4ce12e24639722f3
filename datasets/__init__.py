"""Image datasets (installed as ``nasbench_xfer.datasets``): loaders, splits, task metadata.

Two layers:

* :func:`load_raw` reads a dataset's standard splits into uint8 arrays
  ``(N, C, H, W)`` with int64 labels (:class:`RawDataset`).
* :func:`load_task` turns a raw dataset into a task (:class:`ImageTask`): the
  train / validation / test tensors in memory, the class names, the split seed
  and held-out indices, and a description of the preprocessing.

The modules, one job each:

* :mod:`~nasbench_xfer.datasets.paths` - the data root (``root`` argument, else
  ``$NASBENCH_XFER_DATA``, else ``~/.cache/nasbench_xfer/data``) and the cache
  directory of decoded arrays;
* :mod:`~nasbench_xfer.datasets.download` - the network probe and the downloaders;
* :mod:`~nasbench_xfer.datasets.decode` - :class:`RawDataset` and the file
  formats (IDX, ``.npz``, JPEG/PNG folders and archives);
* :mod:`~nasbench_xfer.datasets.discovery` - the supported names, the file
  layouts looked for (:data:`LAYOUTS`) and :func:`load_raw`;
* :mod:`~nasbench_xfer.datasets.tasks` - the splits of appendix B, the
  preprocessing record, :class:`ImageTask`, :func:`make_task`, :func:`load_task`.

``TaskData`` is a deprecated alias of :class:`ImageTask` (the class's name up to
0.1.0; it clashed with the unrelated :class:`nasbench_xfer.optimizer.TaskData`),
kept for one release: accessing it warns with :class:`DeprecationWarning`.
``nasbench_xfer.datasets.loaders``, the single module these came from, stays
importable for one release as a re-export of the same names.
"""
from __future__ import annotations

import warnings

if __name__ != "nasbench_xfer.datasets":  # one module, one name: never a second copy as `datasets`
    raise ImportError(f"{__name__!r} is nasbench_xfer's datasets folder: import nasbench_xfer.datasets instead")

from nasbench_xfer.datasets.decode import RawDataset, decode_images, read_idx, read_image_archive
from nasbench_xfer.datasets.discovery import DATASETS, LAYOUTS, canonical_name, load_raw
from nasbench_xfer.datasets.paths import cache_dir, data_root
from nasbench_xfer.datasets.tasks import ImageTask, load_task, make_task

__all__ = ["DATASETS", "LAYOUTS", "ImageTask", "RawDataset", "TaskData", "cache_dir", "canonical_name",
           "data_root", "decode_images", "load_raw", "load_task", "make_task", "read_idx",
           "read_image_archive"]


def __getattr__(name: str):
    if name == "TaskData":  # deprecated alias, to be removed in the release after next
        warnings.warn("nasbench_xfer.datasets.TaskData is deprecated: use ImageTask (same class)",
                      DeprecationWarning, stacklevel=2)
        return ImageTask
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
