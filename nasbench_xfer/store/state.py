"""The state and the cross-part methods every part of :class:`~nasbench_xfer.store.Store` relies
on, declared once.

``Store`` (:mod:`.core`) is assembled from parts that each own one job: :mod:`.reading`,
:mod:`.writing` and :mod:`.maintenance`.  A part calls methods another part defines (the
writer reads task groups, validate reads columns); this base class declares those attributes
and methods so that each part type-checks on its own.  Nothing here runs: the method
declarations exist for the type checker only, the definitions are in the parts.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import h5py
    import numpy as np

    from ..space import SearchSpace
    from . import journal
    from .core import Store
    from .schema import StoreError


class StoreState:
    """Attributes set by :class:`~nasbench_xfer.store.Store` and methods shared by its parts."""

    path: Path
    mode: str
    space: SearchSpace
    merge_report: dict[str, int]
    _tx: h5py.File | None
    _tx_depth: int
    _hash_index: dict[str, int] | None
    _generation: str
    _parent_generation: str | None
    _jscan: journal.Scan
    _overlay: journal.Overlay
    _journal_problem: str | None
    _jw: journal.JournalWriter | None
    _dense_cache: tuple[int, np.ndarray] | None

    if TYPE_CHECKING:
        @property
        def _f(self) -> h5py.File: ...
        @property
        def tasks(self) -> list[str]: ...
        @property
        def num_archs(self) -> int: ...
        @property
        def attrs(self) -> dict[str, Any]: ...
        @property
        def _ov(self) -> journal.Overlay: ...
        def _task_group(self, task: str) -> h5py.Group: ...
        def _check_task(self, task: str) -> h5py.Group: ...
        def task_info(self, task: str) -> dict[str, Any]: ...
        def num_evaluations(self, task: str) -> int: ...
        def _column(self, task: str, name: str) -> np.ndarray: ...
        def _max_epochs(self, task: str) -> int: ...
        def _hashes(self) -> dict[str, int]: ...
        def _open_reader(self) -> None: ...
        def _journal_folded(self) -> bool: ...
        def _close_reader(self) -> None: ...
        def _damage_error(self, exc: BaseException) -> StoreError: ...
        def add_task(self, task: str, *, dataset: str, metric: str = "accuracy",
                     higher_is_better: bool = True, num_classes: int = -1,
                     protocols: Mapping[str, Any] | None = None,
                     provenance_info: Mapping[str, Any] | None = None,
                     preprocessing: Mapping[str, Any] | None = None,
                     info: Mapping[str, Any] | None = None,
                     extra_columns: Sequence[str] = (), exist_ok: bool = False) -> None: ...
        def register_protocol(self, task: str, name: str, definition: Mapping[str, Any]) -> None: ...
        @staticmethod
        def _lock(path: Path) -> int: ...
        @staticmethod
        def _unlock(fd: int) -> None: ...
        @staticmethod
        def _durable_replace(tmp: Path, path: Path) -> None: ...
        @staticmethod
        def _remove_journal(path: Path) -> None: ...
        @classmethod
        def _commit_image(cls, image: bytes, path: Path) -> None: ...
        @classmethod
        def open(cls, path: str | os.PathLike, mode: str = "r") -> Store: ...
        @classmethod
        def create(cls, path: str | os.PathLike, space: SearchSpace, *, overwrite: bool = False,
                   provenance_info: Mapping[str, Any] | None = None) -> Store: ...
