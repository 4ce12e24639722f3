"""What the evaluation commands share: sub-seeds, resumable output folders, the job runner
(an executor of :mod:`nasbench_xfer.executors`) with its progress bar, and saving figures.

``compare`` (:mod:`.search`) and ``ablation`` (:mod:`.ablation`) both run many small
independent jobs (a search for one optimizer and seed, a predictor fit for one cell of
the grid), write each result the moment it is done, and on a rerun skip what is there.
"""
from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any


def derive_seed(seed: int, *parts: Any) -> int:
    """A 32-bit sub-seed for the job named by ``parts`` under the run's ``seed``.

    ``(seed * 1_000_003 + crc32("/".join(parts))) mod 2**32``: stable across Python
    versions and processes (unlike ``hash``), and the formula every committed result in
    docs/results/ was produced with, so it is kept rather than replaced by
    ``numpy.random.SeedSequence`` (which would change every figure).
    """
    return (int(seed) * 1_000_003 + zlib.crc32("/".join(map(str, parts)).encode())) % (2 ** 32)


def ensure_same_spec(old: Mapping[str, Any], new: Mapping[str, Any], where: str, what: str, *,
                     ignore: Sequence[str] = (), error: type[Exception] = ValueError) -> None:
    """Refuse to resume ``where`` when it holds results of another run (``ignore``: keys a
    rerun may change, such as adding seeds)."""
    a = {k: v for k, v in old.items() if k not in ignore}
    b = {k: v for k, v in new.items() if k not in ignore}
    if a != b:
        changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        raise error(f"{where} holds results of another {what} (differs in: {', '.join(changed)}); "
                    f"use a new output location")


def data_fingerprint(store: Any, tasks: Sequence[str]) -> str:
    """SHA-256 (16 hex digits) of the evaluations a run reads: for each task, in order, its
    name and every row's architecture hash, seed, status and metrics.  Independent of how
    the store lays its file out, so a compacted or merged copy of the same data matches and
    a re-import of different data does not."""
    import hashlib

    import pandas as pd

    h = hashlib.sha256()
    for task in tasks:
        ev = store.evaluations(task)
        cols = [c for c in ("hash", "seed", "status", "val_metric", "test_metric") if c in ev]
        h.update(f"{task}\0{len(ev)}\0".encode())
        if len(ev):
            h.update(pd.util.hash_pandas_object(ev[cols], index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def make_output_folder(path: str | os.PathLike, error: type[Exception] = OSError) -> Path:
    """Create the results folder ``path`` (and its parents); ``error`` naming the folder and the
    reason when it cannot be (a file in the way, no permission, a full disk)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"cannot create the output folder {path}: {exc.strerror or exc}") from None
    return path


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as JSON through a temporary file and an atomic rename (never torn)."""
    import json

    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class JobsFailed(RuntimeError):
    """Some jobs of :func:`run_jobs` failed (the others finished and were handed on)."""

    def __init__(self, message: str, errors: list[tuple[tuple, Any]]) -> None:
        super().__init__(message)
        self.errors = errors


def run_jobs(fn: Callable[..., Any], jobs: Iterable[tuple], *, workers: int = 1,
             on_done: Callable[[Any], int | None] | None = None, progress: dict[str, Any] | None = None,
             executor: Any = None, describe: Callable[[tuple], str] = repr) -> None:
    """Call ``fn(*args)`` for every ``args`` in ``jobs`` and hand each result to ``on_done``
    as it finishes (in completion order with ``workers > 1`` or a remote executor).

    ``executor``: an :class:`~nasbench_xfer.executors.Executor` to run the jobs (default: a
    local one with ``workers`` processes; ``workers > 1``: ``fn`` should then limit torch to
    one thread: the jobs are small and threads would only contend).  ``on_done`` always runs
    in this process, so it is the one place results are written.  ``progress``: keyword
    arguments of a tqdm bar (``total``, ``initial``, ``desc``, ``unit``); ``on_done`` may
    return the number of units a result counts for (default 1).  ``fn`` must be picklable (a
    module-level function) unless it runs in this process.

    A job that raises (or whose worker dies) does not stop the others: when all are done,
    :class:`JobsFailed` lists every failure (``describe(args)`` names a job), chained to the
    first one's exception.
    """
    from nasbench_xfer.executors import JobError, LocalExecutor

    bar = None
    if progress is not None:
        from nasbench_xfer.logs import progress_bar

        bar = progress_bar(**progress)
    own = executor is None
    ex = LocalExecutor(workers) if own else executor
    failed: list[tuple[tuple, Any]] = []
    try:
        for args, result in ex.map_unordered(fn, jobs):
            if isinstance(result, JobError):
                failed.append((args, result))
                if bar is not None:
                    bar.write(f"error: job {describe(args)}: {result}")
                continue
            n = on_done(result) if on_done is not None else None
            if bar is not None:
                bar.update(1 if n is None else n)
    finally:
        if bar is not None:
            bar.close()
        if own:
            ex.close()
    if failed:
        listed = "; ".join(f"{describe(a)}: {e}" for a, e in failed[:5])
        more = f"; and {len(failed) - 5} more" if len(failed) > 5 else ""
        raise JobsFailed(f"{len(failed)} job(s) failed ({listed}{more}); the other results are kept, "
                         f"rerun to retry the failed ones", failed) from failed[0][1]


def new_figure(figsize: tuple[float, float] = (6, 4), ncols: int = 1) -> tuple[Any, Any]:
    """A matplotlib figure and its axes (``ncols`` side by side) on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=figsize)


def save_figure(fig: Any, stem: str | os.PathLike, formats: Sequence[str] = ("png", "pdf"), dpi: int = 130,
                tight_layout: bool = True) -> None:
    """Write ``stem.png`` and ``stem.pdf`` and close the figure: laid out by ``tight_layout``,
    or (``tight_layout=False``, for figures that place their own axes, such as seaborn's
    clustermap) cropped to what is drawn."""
    import matplotlib.pyplot as plt

    if tight_layout:
        fig.tight_layout()
    try:
        make_output_folder(Path(stem).parent)
    except OSError:
        plt.close(fig)
        raise
    for ext in formats:  # no creation date in a PDF: a figure drawn again from the same data is the same file
        fig.savefig(f"{stem}.{ext}", dpi=dpi, **({} if tight_layout else {"bbox_inches": "tight"}),
                    **({"metadata": {"CreationDate": None}} if ext == "pdf" else {}))
    plt.close(fig)
