"""Where jobs run: one interface, three backends (``--executor local|ray|slurm``).

``compare``, ``ablation``, ``train`` and ``search`` hand their independent jobs (a search for
one optimizer and seed, a group of predictor fits, one training) to an :class:`Executor` and
get each result back in the driver process as it finishes; the driver is the only process
that writes results (a store, ``OUT/runs/``, ``runs.jsonl``), so every command resumes the
same way whichever backend ran its jobs.

* ``local``: this machine; with ``workers > 1`` a pool of that many processes, else the
  jobs run one after the other in this process.
* ``ray``: one Ray task per job on an existing cluster (``address="HEAD:6379"``) or on a Ray
  started on this machine (no address).  Training jobs ask for ``gpus_per_task`` GPUs each
  (a fraction packs several on one GPU; default: 1 when the cluster has GPUs, else 0).
* ``slurm``: a SLURM array job through submitit (logs and pickles under ``folder``, which
  must be on a file system the nodes share); ``cluster="local"`` runs the same code path as
  local processes (testing without SLURM).

A job that raises, or whose worker dies, comes back as a :class:`JobError` in place of its
result while the other jobs go on.  Ray and submitit are imported only when their backend is
used (``pip install 'nasbench_xfer[ray]'`` / ``'nasbench_xfer[slurm]'``).  The files a job
reads (a store, a dataset root) must be readable at the same path on every node.
"""
from __future__ import annotations

import abc
import os
import pickle
import shutil
import socket
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from .registry import Registry, RegistryError

__all__ = ["Executor", "ExecutorError", "JobError", "LocalExecutor", "RayExecutor", "SlurmExecutor",
           "EXECUTORS", "make_executor", "list_executors"]


class ExecutorError(RegistryError):
    """An executor cannot be made or reached (unknown name, bad option, missing package,
    unreachable cluster)."""


class JobError(Exception):
    """A job that raised or whose worker died: yielded by :meth:`Executor.map_unordered` in place
    of its result.  ``str()`` is ``"<ExceptionType>: <message>"``; ``details`` the traceback
    text where the backend gave one."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


def _job_error(exc: BaseException) -> JobError:
    return JobError(f"{type(exc).__name__}: {exc}",
                    "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))


class Executor(abc.ABC):
    """Runs ``fn(*args)`` jobs somewhere and returns their results to this (driver) process.

    ``fn`` and its arguments must be picklable for every backend but local-sequential: a
    module-level function (or a ``functools.partial`` of one) and plain data.
    """

    #: registry name ("local", "ray", "slurm")
    name: str = ""
    #: whether jobs run in this process or this machine's processes (not elsewhere)
    local: bool = False
    #: CPUs each job gets (a training uses that many threads)
    cpus_per_task: float = 1.0

    @abc.abstractmethod
    def submit(self, fn: Callable[..., Any], *args: Any, uses_gpu: bool = False) -> Any:
        """Start ``fn(*args)``; returns a future-like object with ``done()``, ``cancel()`` and
        ``result()`` (which waits for it).  ``uses_gpu``: as for :meth:`map_unordered`."""

    @abc.abstractmethod
    def map_unordered(self, fn: Callable[..., Any], jobs: Iterable[tuple], *,
                      uses_gpu: bool = False) -> Iterator[tuple[tuple, Any]]:
        """Run ``fn(*job)`` for every job; yield ``(job, result)`` in completion order, with a
        :class:`JobError` as the result of a job that failed (the others go on).
        ``uses_gpu``: the jobs train networks (they get the executor's GPUs per task)."""

    def put(self, obj: Any) -> Any:
        """A handle to pass in place of a large argument shared by many jobs (a dataset): the
        job receives ``obj`` itself.  Local: ``obj``; Ray: an object-store reference; SLURM: a
        pickle written once under the log folder."""
        return obj

    def close(self) -> None:  # noqa: B027  (optional: most backends hold nothing)
        """Release what the executor holds (processes, a Ray it started)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


# ----------------------------------------------------------------------------- local
class LocalExecutor(Executor):
    """This machine: ``workers`` processes (a process pool), or this process when ``workers`` is 1."""

    name = "local"
    local = True

    def __init__(self, workers: int = 1) -> None:
        if int(workers) < 1:
            raise ExecutorError(f"the local executor needs at least 1 worker, got {workers}")
        self.workers = int(workers)
        self._pool: ProcessPoolExecutor | None = None

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers)
        return self._pool

    def submit(self, fn: Callable[..., Any], *args: Any, uses_gpu: bool = False) -> Future:
        if self.workers > 1:
            return self._get_pool().submit(fn, *args)
        fut: Future = Future()
        try:
            fut.set_result(fn(*args))
        except Exception as exc:
            fut.set_exception(exc)
        return fut

    def map_unordered(self, fn: Callable[..., Any], jobs: Iterable[tuple], *,
                      uses_gpu: bool = False) -> Iterator[tuple[tuple, Any]]:
        if self.workers <= 1:  # one at a time, each result handed back before the next starts
            for job in jobs:
                try:
                    yield job, fn(*job)
                except Exception as exc:
                    yield job, _job_error(exc)
            return
        pool = self._get_pool()
        futures = {pool.submit(fn, *job): job for job in jobs}
        suspects: list[tuple] = []  # jobs lost with a pool whose worker died
        try:
            for fut in as_completed(futures):
                try:
                    yield futures[fut], fut.result()
                except BrokenProcessPool:
                    suspects.append(futures[fut])
                except Exception as exc:  # raised by the job
                    yield futures[fut], _job_error(exc)
        finally:
            for fut in futures:
                fut.cancel()
        if suspects:  # a dying worker takes the whole pool down: retry each lost job alone to name the one
            self.close()
            yield from self._isolated(fn, suspects)

    def _isolated(self, fn: Callable[..., Any], jobs: list[tuple]) -> Iterator[tuple[tuple, Any]]:
        """Each job in a one-process pool of its own, ``workers`` at a time: a worker that dies
        fails its own job only."""
        for i in range(0, len(jobs), self.workers):
            pools = [ProcessPoolExecutor(max_workers=1) for _ in jobs[i:i + self.workers]]
            try:
                futures = {p.submit(fn, *job): job for p, job in zip(pools, jobs[i:i + self.workers])}
                for fut in as_completed(futures):
                    try:
                        yield futures[fut], fut.result()
                    except BrokenProcessPool as exc:
                        yield futures[fut], JobError(f"worker process died: {exc}")
                    except Exception as exc:
                        yield futures[fut], _job_error(exc)
            finally:
                for p in pools:
                    p.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __repr__(self) -> str:
        return f"LocalExecutor(workers={self.workers})"


# ------------------------------------------------------------------------------- ray
def _missing(package: str, extra: str, exc: ImportError) -> ExecutorError:
    return ExecutorError(f"the {extra} executor needs {package}, which is not installed ({exc}); "
                         f"pip install 'nasbench_xfer[{extra}]'")


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """What a remote worker runs: ``fn(*args)`` (``_FileRef`` arguments loaded first)."""
    return fn(*[a.load() if isinstance(a, _FileRef) else a for a in args])


def check_reachable(address: str, timeout: float) -> None:
    """Raise :class:`ExecutorError` unless a TCP connection to ``address`` (``[ray://]HOST:PORT``)
    opens within ``timeout`` seconds."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ExecutorError(f"Ray address {address!r} is not HOST:PORT (for example head-node:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ExecutorError(f"cannot reach the Ray cluster at {address} ({exc}); start it with "
                            f"`ray start --head` on the head node, or leave --ray-address out to start "
                            f"Ray on this machine") from None


class RayExecutor(Executor):
    """Ray: one task per job, on the cluster at ``address`` or on a Ray started here (no address)."""

    name = "ray"

    def __init__(self, address: str | None = None, gpus_per_task: float | None = None,
                 cpus_per_task: float = 1.0, num_cpus: int | None = None, connect_timeout: float = 10.0) -> None:
        try:
            import ray
        except ImportError as exc:
            raise _missing("ray", "ray", exc) from None
        if gpus_per_task is not None and float(gpus_per_task) < 0:
            raise ExecutorError(f"gpus_per_task must be >= 0, got {gpus_per_task}")
        self.address = address or None
        self.gpus_per_task = None if gpus_per_task is None else float(gpus_per_task)
        self.cpus_per_task = float(cpus_per_task)
        self._ray = ray
        self._owns = False
        if self.address is not None and self.address != "auto":
            check_reachable(self.address, connect_timeout)  # a clear error now, not a hang in ray.init
        if not ray.is_initialized():
            kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False)
            if self.address is None and num_cpus is not None:
                kwargs["num_cpus"] = int(num_cpus)
            try:
                ray.init(address=self.address, **kwargs)
            except Exception as exc:  # ConnectionError and Ray's own errors
                raise ExecutorError(f"could not connect to Ray at {self.address or 'a new local instance'}: "
                                    f"{type(exc).__name__}: {exc}") from None
            self._owns = True
        self._remote = ray.remote(max_retries=0)(_call)

    def _options(self, uses_gpu: bool) -> dict[str, float]:
        gpus = self.gpus_per_task
        if gpus is None:
            gpus = 1.0 if uses_gpu and self._ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        return {"num_cpus": self.cpus_per_task, "num_gpus": gpus}

    def submit(self, fn: Callable[..., Any], *args: Any, uses_gpu: bool = False) -> Any:
        ref = self._remote.options(**self._options(uses_gpu)).remote(fn, *args)
        return _RayFuture(self._ray, ref)

    def map_unordered(self, fn: Callable[..., Any], jobs: Iterable[tuple], *,
                      uses_gpu: bool = False) -> Iterator[tuple[tuple, Any]]:
        ray = self._ray
        remote = self._remote.options(**self._options(uses_gpu))
        refs = {}
        for job in jobs:
            refs[remote.remote(fn, *job)] = job
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    try:
                        yield refs[ref], ray.get(ref)
                    except Exception as exc:  # RayTaskError (the job raised), WorkerCrashedError, ...
                        cause = getattr(exc, "cause", None)
                        yield refs[ref], (_job_error(cause) if isinstance(cause, BaseException)
                                          else JobError(f"{type(exc).__name__}: {exc}"))
        finally:
            for ref in pending:  # interrupted: stop what has not finished
                ray.cancel(ref, force=True)

    def put(self, obj: Any) -> Any:
        return self._ray.put(obj)

    def close(self) -> None:
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns = False

    def __repr__(self) -> str:
        return f"RayExecutor(address={self.address!r}, gpus_per_task={self.gpus_per_task})"


class _RayFuture:
    def __init__(self, ray: Any, ref: Any) -> None:
        self._ray, self.ref = ray, ref

    def result(self, timeout: float | None = None) -> Any:
        return self._ray.get(self.ref, timeout=timeout)

    def done(self) -> bool:
        ready, _ = self._ray.wait([self.ref], timeout=0)
        return bool(ready)

    def cancel(self) -> None:
        self._ray.cancel(self.ref, force=True)


# ----------------------------------------------------------------------------- slurm
class _FileRef:
    """A large argument pickled once to a shared folder; loaded (once per process) by the job."""

    _loaded: dict[str, Any] = {}

    def __init__(self, path: str) -> None:
        self.path = path

    def load(self) -> Any:
        if self.path not in _FileRef._loaded:
            with open(self.path, "rb") as fh:
                _FileRef._loaded[self.path] = pickle.load(fh)
        return _FileRef._loaded[self.path]


def parse_minutes(value: str | int | float) -> int:
    """SLURM-style time (``MINUTES``, ``HH:MM:SS``, ``D-HH:MM:SS``) -> whole minutes (at least 1)."""
    text = str(value).strip()
    try:
        days, _, rest = text.rpartition("-") if "-" in text else ("0", "", text)
        parts = [float(p) for p in rest.split(":")]
        if len(parts) == 1:
            minutes = parts[0]
        elif len(parts) == 2:
            minutes = parts[0] * 60 + parts[1]
        elif len(parts) == 3:
            minutes = parts[0] * 60 + parts[1] + parts[2] / 60
        else:
            raise ValueError
        minutes += float(days) * 24 * 60
    except ValueError:
        raise ExecutorError(f"time {value!r} is not MINUTES, HH:MM:SS or D-HH:MM:SS") from None
    if minutes <= 0:
        raise ExecutorError(f"time must be positive, got {value!r}")
    return max(1, int(round(minutes)))


class SlurmExecutor(Executor):
    """SLURM through submitit: the jobs as one array job (``cluster="local"``: local processes)."""

    name = "slurm"

    def __init__(self, folder: str | os.PathLike = "slurm_logs", partition: str | None = None,
                 time: str | int = "60", gpus_per_task: int = 0, cpus_per_task: int = 1,
                 mem_gb: float | None = None, array_parallelism: int = 256, cluster: str = "slurm",
                 poll_seconds: float = 1.0) -> None:
        try:
            import submitit
        except ImportError as exc:
            raise _missing("submitit", "slurm", exc) from None
        if cluster not in ("slurm", "local"):
            raise ExecutorError(f"cluster must be slurm or local, got {cluster!r}")
        if cluster == "slurm" and shutil.which("sbatch") is None:
            raise ExecutorError("sbatch not found: --executor slurm submits to a SLURM cluster (run it on a "
                                "login node), or give --executor-option cluster=local to run the jobs as local "
                                "processes through submitit")
        if int(gpus_per_task) < 0 or int(cpus_per_task) < 1:
            raise ExecutorError("gpus_per_task must be >= 0 and cpus_per_task >= 1")
        self.folder = Path(folder).absolute()
        self.partition = partition
        self.timeout_min = parse_minutes(time)
        self.gpus_per_task = int(gpus_per_task)
        self.cpus_per_task = int(cpus_per_task)
        self.cluster = cluster
        self.poll_seconds = float(poll_seconds)
        self._put: list[Path] = []
        self._ex = submitit.AutoExecutor(folder=str(self.folder / "%j"), cluster=cluster)
        params: dict[str, Any] = dict(name="nasbench-xfer", timeout_min=self.timeout_min, tasks_per_node=1,
                                      nodes=1, cpus_per_task=int(cpus_per_task), gpus_per_node=self.gpus_per_task,
                                      slurm_array_parallelism=int(array_parallelism))
        if partition:
            params["slurm_partition"] = partition
        if mem_gb is not None:
            params["mem_gb"] = float(mem_gb)
        self._ex.update_parameters(**params)

    def submit(self, fn: Callable[..., Any], *args: Any, uses_gpu: bool = False) -> Any:
        # (GPUs per task are the executor's parameters: every task of this executor gets them)
        return self._ex.submit(_call, fn, *args)

    def map_unordered(self, fn: Callable[..., Any], jobs: Iterable[tuple], *,
                      uses_gpu: bool = False) -> Iterator[tuple[tuple, Any]]:
        job_list = list(jobs)
        if not job_list:
            return
        with self._ex.batch():  # one array job
            handles = [self._ex.submit(_call, fn, *job) for job in job_list]
        pending = dict(zip(handles, job_list))
        try:
            while pending:
                finished = [h for h in pending if h.done()]
                if not finished:
                    time.sleep(self.poll_seconds)
                    continue
                for h in finished:
                    job = pending.pop(h)
                    try:
                        yield job, h.result()
                    except Exception as exc:  # submitit's FailedJobError carries the job's traceback
                        yield job, JobError(f"job {h.job_id}: {type(exc).__name__}: {_first_lines(exc)}", str(exc))
        finally:
            for h in pending:  # interrupted: cancel the rest of the array
                try:
                    h.cancel(check=False)
                except Exception:
                    pass

    def put(self, obj: Any) -> Any:
        shared = self.folder / "shared"
        shared.mkdir(parents=True, exist_ok=True)
        path = shared / f"{uuid.uuid4().hex}.pkl"
        with open(path, "wb") as fh:
            pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
        self._put.append(path)
        return _FileRef(str(path))

    def close(self) -> None:
        for path in self._put:  # the shared pickles: no job reads them once the run is over
            path.unlink(missing_ok=True)
        self._put.clear()

    def __repr__(self) -> str:
        return f"SlurmExecutor(cluster={self.cluster!r}, partition={self.partition!r}, folder={str(self.folder)!r})"


def _first_lines(exc: BaseException, n: int = 6) -> str:
    """The end of a long error text (where the job's own exception is), at most ``n`` lines."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return " | ".join(lines[-n:]) if len(lines) > n else " | ".join(lines)


# -------------------------------------------------------------------------- registry
EXECUTORS: Registry[type[Executor]] = Registry("executor", "executors", error=ExecutorError)
EXECUTORS.register(LocalExecutor, name="local")
EXECUTORS.register(RayExecutor, name="ray")
EXECUTORS.register(SlurmExecutor, name="slurm")


def list_executors() -> list[str]:
    return EXECUTORS.list()


def make_executor(name: str, **options: Any) -> Executor:
    """The executor ``name`` made with ``options`` (an unknown option is an error naming the valid ones)."""
    import inspect

    cls = EXECUTORS.get(name)
    valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    bad = sorted(set(options) - set(valid))
    if bad:
        raise ExecutorError(f"executor {name!r} has no option {', '.join(map(repr, bad))}; "
                            f"its options: {', '.join(valid)}")
    return cls(**options)
