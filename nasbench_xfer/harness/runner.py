"""Run many evaluations into a benchmark store: resumable, sharded, checked up front.

:func:`run` trains every (architecture, seed) job of its shard with
:func:`~nasbench_xfer.harness.train.train_one` and appends each finished
evaluation to the HDF5 store (:mod:`nasbench_xfer.store`) at once, so a killed
run loses at most the evaluation in progress.  Running it again skips the
jobs the store already holds for the same task, protocol and seed (failed
ones too, unless ``retry_failed``).

Everything that can be checked is checked before the first training starts:
the protocol, the shard spec, every architecture (valid in the protocol's
``B``), the device, the store (its space must be the NASNet space with that
``B``; the task's dataset, class count and validation split must match what
is loaded) and the dataset files.

Sharding: ``shard=(i, n)`` (0 <= i < n) takes every n-th job starting at i of
the deduplicated job list, so n processes/GPUs share the work.  Shards may
write the same store file (each append takes the store's writer lock for a
moment, waiting while another shard holds it) or separate files joined later
with ``nasbench-xfer merge``.  Within one machine, ``device="cuda:0,cuda:1"`` starts one
worker process per listed device (listing a GPU twice trains two architectures on it at
once), each taking every k-th job still to do and appending to the same store.

Store rows: ``val_metric``/``test_metric`` are accuracies as fractions in
[0, 1] (final-epoch validation accuracy, test accuracy after the last epoch),
``curve`` the per-epoch validation accuracy, plus ``params``, ``flops``
(multiply-adds per image), ``train_seconds``, ``status``, ``protocol``,
``device``, ``seed`` and ``finished_at``.
"""
from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..logs import get_logger, progress_bar
from ..space.base import SpaceError
from ..space.nasnet import NASNetArch, NASNetSpace, from_json, named_arch
from .parallel import run_jobs
from .protocols import Protocol, get_protocol
from .train import SpeedFlags, train_concurrent

__all__ = ["RunError", "parse_shard", "parse_devices", "load_archs", "shard_jobs", "to_store_row", "run"]


class RunError(ValueError):
    """Bad input to a run, found before any training."""


def parse_shard(spec: str | tuple[int, int] | None) -> tuple[int, int]:
    """``"i/n"`` (0 <= i < n) -> ``(i, n)``; ``None`` -> ``(0, 1)``."""
    if spec is None:
        return (0, 1)
    if isinstance(spec, tuple):
        i, n = spec
    else:
        try:
            a, b = str(spec).split("/")
            i, n = int(a), int(b)
        except ValueError:
            raise RunError(f"bad shard {spec!r}: expected i/n with 0 <= i < n, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise RunError(f"bad shard {spec!r}: need 0 <= i < n (shards are numbered from 0)")
    return (int(i), int(n))


def parse_devices(spec: str | Sequence[str]) -> list[str]:
    """``"cuda:0,cuda:1"`` or a list -> checked device names (CUDA ones must exist)."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    items = [str(d).strip() for d in (spec.split(",") if isinstance(spec, str) else spec) if str(d).strip()]
    if not items:
        raise RunError("no device given")
    for d in items:
        try:
            dev = torch.device(d)
        except RuntimeError:
            raise RunError(f"invalid device {d!r} (use cpu, cuda or cuda:N)") from None
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise RunError(f"device {d!r} requested but CUDA is not available")
            if dev.index is not None and dev.index >= torch.cuda.device_count():
                raise RunError(f"device {d!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
        elif dev.type != "cpu":
            raise RunError(f"device {d!r}: only cpu and cuda devices are supported")
    return items


def load_archs(named: Sequence[str] = (), files: Sequence[str | Path] = (), random: int = 0,
               arch_seed: int = 0, num_blocks: int = 5) -> list[NASNetArch]:
    """Architectures from names (``xfernasnet``) or appendix-C JSON strings, files and random samples.

    A file holds a JSON list of appendix-C objects, or one architecture per line
    (compact JSON, as ``space.to_string`` writes).  ``random`` samples that many
    distinct architectures with ``arch_seed``.
    """
    space = NASNetSpace(num_blocks)
    out: list[NASNetArch] = []
    for s in named:
        if s.lstrip().startswith("["):
            raise RunError(f"architecture {s[:60]!r}...: a JSON list; --arch takes one architecture (a name "
                           f"or one appendix-C object): write the list to a file for --archs-file")
        try:
            out.append(from_json(s) if s.lstrip().startswith("{") else named_arch(s))
        except SpaceError as exc:
            raise RunError(f"architecture {s[:60]!r}: {exc}") from None
    for f in files:
        path = Path(f)
        if not path.is_file():
            raise RunError(f"architecture file not found: {path}")
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError) as exc:
            raise RunError(f"cannot read the architecture file {path}: {exc}") from None
        try:
            doc = json.loads(text)
            items = doc if isinstance(doc, list) else [doc]
        except json.JSONDecodeError:
            items = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        for k, item in enumerate(items):
            try:
                out.append(from_json(item))
            except SpaceError as exc:
                raise RunError(f"{path}: architecture {k}: {exc}") from None
    if random:
        out += space.sample_many(int(random), np.random.default_rng(arch_seed))
    for k, a in enumerate(out):
        try:
            space.validate(a)
        except SpaceError as exc:
            raise RunError(f"architecture {k}: {exc}") from None
    return out


def shard_jobs(archs: Sequence[NASNetArch], seeds: Sequence[int], shard: tuple[int, int],
               space: NASNetSpace) -> list[tuple[NASNetArch, int]]:
    """The deduplicated (architecture, seed) jobs of one shard, in a stable order."""
    seen: set[tuple[str, int]] = set()
    jobs = []
    for a in archs:
        h = space.hash(a)
        for s in seeds:
            if (h, int(s)) not in seen:
                seen.add((h, int(s)))
                jobs.append((a, int(s)))
    i, n = shard
    return jobs[i::n]


def to_store_row(rec: dict[str, Any], arch: NASNetArch) -> dict[str, Any]:
    """A :func:`train_one` record as a row for :meth:`Store.append`."""
    return {"arch": arch, "seed": rec["seed"], "val_metric": rec["val_acc"], "test_metric": rec["test_acc"],
            "params": rec["params"], "flops": rec["flops"], "train_seconds": rec["train_seconds"],
            "status": rec["status"], "protocol": rec["protocol"], "device": rec["device"],
            "finished_at": rec["finished_at"], "curve": rec["val_curve"]}


def _open_store(path: Path, mode: str, wait_s: float):
    """Open the store, waiting up to ``wait_s`` seconds for another writer's lock; logs a
    warning at once that names the process it waits for."""

    from ..store import Store, StoreLocked
    t0 = time.monotonic()
    told = False
    while True:
        try:
            return Store.open(path, mode)
        except StoreLocked as exc:
            pid = exc.pid
            if exc.here:
                who = f"PID {pid} (this process: a Store it has open for writing)"
            elif pid is None:
                who = "another process"
            else:
                who = f"PID {pid}"
            if time.monotonic() - t0 > wait_s:
                raise StoreLocked(f"gave up after {wait_s:g} s waiting for the lock on {path} held by "
                                  f"{who} (--lock-timeout sets how long to wait)", pid, here=exc.here) from None
            if not told:
                get_logger(__name__).warning(f"waiting for the lock on {path} held by {who} (up to {wait_s:g} s; "
                                             f"--lock-timeout sets how long)")
                told = True
            time.sleep(min(0.5, max(0.01, wait_s / 4)))


# ------------------------------------------- finished evaluations the store could not take
_PENDING_GLOB = ".pending-*.jsonl"


def _pending_dirs(path: Path) -> list[Path]:
    """Where records that could not be appended to ``path`` are kept: beside the store, or
    (when that folder cannot be written, e.g. a full disk) a per-user fallback folder."""
    import hashlib
    import os
    import tempfile

    from ..store import real_path
    real = real_path(path)
    key = hashlib.sha1(str(real).encode()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return [real.parent, base / "nasbench_xfer" / "pending" / key,
            Path(tempfile.gettempdir()) / f"nasbench_xfer-pending-{os.getuid()}" / key]


def _pending_files(path: Path) -> list[Path]:
    from ..store import real_path
    name = real_path(path).name
    found: list[Path] = []
    for d in _pending_dirs(path):
        found += sorted(d.glob(name + _PENDING_GLOB))
    return found


def _save_pending(path: Path, task_name: str, rows: Sequence[dict[str, Any]]) -> Path | None:
    """Write ``rows`` (store rows, ``arch`` as a spec string) as JSON lines, fsynced; the first
    folder that takes them wins.  None if none could (the caller then prints them)."""
    import os

    from ..store import real_path
    name = real_path(path).name
    text = "".join(json.dumps({"task": task_name, "row": r}, default=float) + "\n" for r in rows)
    for d in _pending_dirs(path):
        dest = d / f"{name}.pending-{os.getpid()}-{time.time_ns()}.jsonl"
        try:
            d.mkdir(parents=True, exist_ok=True)
            fd = os.open(str(dest), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, text.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            return dest
        except OSError:
            try:
                dest.unlink()
            except OSError:
                pass
    return None


def _recover_pending(st, path: Path) -> int:
    """Append records saved by an earlier run that could not write the store (``st`` is open
    for appending, so no other run recovers them at the same time); rows already in the store
    (same architecture, seed, protocol and finish time) are not added twice."""
    from ..store import StoreError
    added = 0
    for f in _pending_files(path):
        try:
            entries = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
            by_task: dict[str, list[dict[str, Any]]] = {}
            for e in entries:
                row = dict(e["row"])
                row["arch"] = st.space.from_string(row["arch"])
                by_task.setdefault(e["task"], []).append(row)
            for task, rows in by_task.items():
                have = st.evaluations(task) if task in st.tasks else None
                if have is not None and len(have):
                    seen = set(zip(have["hash"], have["seed"], have["protocol"], have["finished_at"]))
                    rows = [r for r in rows if (st.space.hash(r["arch"]), r["seed"], r["protocol"],
                                                r["finished_at"]) not in seen]
                added += st.append(task, rows)
        except (OSError, ValueError, KeyError, TypeError, SpaceError, StoreError) as exc:
            raise RunError(f"{f} holds finished evaluations for {path} that could not be added "
                           f"({exc}); fix or remove that file and run again") from None
        f.unlink()
        get_logger(__name__).info(f"added {len(entries)} finished evaluation(s) saved earlier in {f} to {path}")
    return added


def _task_info(task) -> dict[str, Any]:
    return {"split_seed": task.meta.get("split_seed"), "val_indices_sha1": task.meta.get("val_indices_sha1"),
            "split": task.meta.get("split"), "source": task.meta.get("source"),
            "classes": list(task.classes), "image_shape": list(task.train_x.shape[1:]),
            "metric_unit": "fraction of correctly classified images (0..1)"}


def check_store_fits(st, path: Path, task_name: str, task, protocol: Protocol) -> None:
    """A :class:`RunError` unless the open store ``st`` can take ``task``'s evaluations under
    ``task_name`` at ``protocol``: the NASNet space of the protocol's blocks, and a task of that
    name (if any) of the same dataset, classes and validation split."""
    space = NASNetSpace(protocol.num_blocks)
    if st.space.name != "nasnet" or st.space.config() != space.config():
        raise RunError(f"{path} holds space {st.space!r}, protocol {protocol.name} needs {space!r}")
    dataset = task.meta.get("dataset", task.name)
    if task_name in st.tasks:
        info = st.task_info(task_name)
        if info["dataset"] != dataset or info["num_classes"] != task.num_classes:
            raise RunError(f"task {task_name!r} in {path} is dataset {info['dataset']!r} with "
                           f"{info['num_classes']} classes; loaded {dataset!r} with {task.num_classes}")
        stored = info["info"].get("val_indices_sha1")
        if stored and stored != task.meta.get("val_indices_sha1"):
            raise RunError(f"task {task_name!r} in {path} was evaluated on another validation split "
                           f"(split seed {info['info'].get('split_seed')}); loaded split seed "
                           f"{task.meta.get('split_seed')}")


def _prepare_store(path: Path, task_name: str, task, protocol: Protocol, create: bool, wait_s: float):
    """Check (or create) the store and its task; register the protocol. Returns done keys."""
    from ..store import Store, StoreError
    space = NASNetSpace(protocol.num_blocks)
    try:
        if not path.exists() and _pending_files(path):
            raise RunError(f"no store at {path}, but finished evaluations for it were saved in "
                           f"{', '.join(map(str, _pending_files(path)))}; restore the store (or move "
                           f"those files away) and run again")
        if not path.exists():
            if not create:
                raise RunError(f"no store at {path} (pass create=True / --create to make one)")
            st = Store.create(path, space)
        else:
            st = _open_store(path, "a", wait_s)
    except StoreError as exc:
        raise RunError(str(exc)) from None
    try:
        check_store_fits(st, path, task_name, task, protocol)
        dataset = task.meta.get("dataset", task.name)
        if task_name not in st.tasks:
            st.add_task(task_name, dataset=dataset, metric="accuracy", num_classes=task.num_classes,
                        preprocessing=task.preprocessing, info=_task_info(task))
        st.register_protocol(task_name, protocol.name, protocol.to_dict())
        _recover_pending(st, path)
        ev = st.evaluations(task_name)
    except StoreError as exc:
        raise RunError(str(exc)) from None
    finally:
        st.close()
    return _done_keys(ev, protocol)


def _done_keys(ev, protocol: Protocol) -> dict[tuple[str, int], str]:
    """{(architecture hash, seed): best status} of the stored evaluations under ``protocol``."""
    done: dict[tuple[str, int], str] = {}
    for h, s, p, status in zip(ev["hash"], ev["seed"], ev["protocol"], ev["status"]):
        if p == protocol.name:
            key = (str(h), int(s))
            if done.get(key) != "ok":
                done[key] = str(status)
    return done


def prepare_store(store: str | Path, task_data, protocol: Protocol | str, *, task_name: str | None = None,
                  create: bool = True, wait_s: float = 600.0) -> None:
    """Create the store if missing, add the task and register the protocol, training nothing:
    what :func:`run` does before its first training (and a ``dry_run`` does not)."""
    _prepare_store(Path(store), task_name or task_data.name, task_data, get_protocol(protocol), create, wait_s)


def _stored_keys(path: Path, task_name: str, task, protocol: Protocol, create: bool) -> dict[tuple[str, int], str]:
    """What :func:`_prepare_store` would return, with its checks, read-only: a dry run changes
    nothing on disk but refuses what the real run would refuse."""
    from ..store import Store, StoreError
    from ..store.schema import normal_protocol
    if not path.exists():
        if not create:
            raise RunError(f"no store at {path} (pass create=True / --create to make one)")
        return {}
    try:
        with Store.open(path) as st:
            check_store_fits(st, path, task_name, task, protocol)
            if task_name in st.tasks:
                stored = st.task_info(task_name)["protocols"].get(protocol.name)
                if stored is not None and stored != normal_protocol(protocol.name, protocol.to_dict()):
                    raise RunError(f"task {task_name!r} in {path} already has a protocol {protocol.name!r} "
                                   f"with another definition")
            return _done_keys(st.evaluations(task_name), protocol) if task_name in st.tasks else {}
    except StoreError as exc:
        raise RunError(str(exc)) from None


def run(store: str | Path, dataset: str, archs: Sequence[NASNetArch], protocol: Protocol | str, *,
        seeds: Sequence[int] = (0,), device: str | Sequence[str] = "cpu",
        shard: str | tuple[int, int] | None = None,
        task_name: str | None = None, data_root: str | None = None, split_seed: int = 0,
        num_classes: int | None = None, flags: SpeedFlags | None = None, retry_failed: bool = False,
        create: bool = True, dry_run: bool = False, wait_s: float = 600.0,
        log: Callable[[str], None] | None = None, task_data=None, progress: bool = False,
        concurrent: int = 1, time_limit: float | None = None, flush_seconds: float = 5.0,
        executor: Any = None) -> dict[str, Any]:
    """Train the shard's jobs not yet in ``store`` and append each result; returns a summary.

    ``executor``: a Ray or SLURM :class:`~nasbench_xfer.executors.Executor` trains each job
    as one task (``device`` ``"auto"``: the task's GPU when it has one, else its CPU) and
    this process appends each record to ``store`` as it comes back (the only writer);
    a failed job is reported at the end while the others are stored.  ``None`` or a local
    executor: the trainings run on this machine as below.

    ``device`` is one device or several (a list or ``"cuda:0,cuda:1"``): with several, one
    worker process per entry trains its share of the jobs (repeat a GPU to train several
    architectures on it at once).  ``task_data`` (a loaded
    :class:`~nasbench_xfer.datasets.ImageTask`) skips loading ``dataset`` (tests, notebooks).
    ``progress`` shows a progress bar with an ETA.

    ``concurrent`` (one device): trainings in flight at once in this process, each on its
    own CUDA stream (:mod:`.engine`); with more than one, finished evaluations are appended
    in groups at least every ``flush_seconds`` (and at the end, also when interrupted), so a
    killed run loses at most that many seconds of finished work besides the trainings in
    flight.  ``time_limit`` (seconds): start no new training after it; the summary then says
    ``stopped_early`` and a rerun resumes.
    """
    t_start = time.monotonic()
    log = log or get_logger(__name__).info
    protocol = get_protocol(protocol)
    shard_t = parse_shard(shard)
    space = NASNetSpace(protocol.num_blocks)
    if not archs:
        raise RunError("no architectures to train")
    for k, a in enumerate(archs):
        try:
            space.validate(a)
        except SpaceError as exc:
            raise RunError(f"architecture {k}: {exc} (protocol {protocol.name} has B={protocol.num_blocks})") from None
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise RunError("no seeds")
    remote = executor is not None and not executor.local
    device_list = ["auto"] if device == "auto" and (remote or dry_run) else parse_devices(device)
    if len(device_list) > 1 and remote:
        raise RunError(f"--devices is for the local executor; with {executor.name} each task gets its own device")
    if task_data is None:
        from .. import datasets as ds
        try:
            task_data = ds.load_task(dataset, data_root, split_seed=split_seed, num_classes=num_classes)
        except (FileNotFoundError, ValueError) as exc:
            raise RunError(str(exc)) from None
    task_name = task_name or task_data.name
    from ..store import StoreError, check_task_name

    try:
        check_task_name(task_name)
    except StoreError as exc:
        raise RunError(str(exc)) from None
    path = Path(store)
    done = (_stored_keys(path, task_name, task_data, protocol, create) if dry_run
            else _prepare_store(path, task_name, task_data, protocol, create, wait_s))
    jobs = shard_jobs(archs, seeds, shard_t, space)
    todo = [(a, s) for a, s in jobs
            if (space.hash(a), s) not in done or (retry_failed and done[(space.hash(a), s)] != "ok")]
    summary: dict[str, Any] = {"store": str(path), "task": task_name, "protocol": protocol.name,
                               "shard": f"{shard_t[0]}/{shard_t[1]}", "jobs": len(jobs),
                               "skipped": len(jobs) - len(todo), "trained": 0, "ok": 0, "failed": 0,
                               "records": []}
    log(f"{task_name} / {protocol.name}: shard {summary['shard']}: {len(jobs)} jobs, "
        f"{summary['skipped']} already in {path.name}, {len(todo)} to train on "
        f"{f'{executor.name} ({device_list[0]})' if remote else ','.join(device_list)}")
    if dry_run:
        summary["todo"] = [(space.to_string(a), s) for a, s in todo]
        return summary
    if len(todo) == 0:
        return summary
    bar = _progress_bar(len(todo), f"{task_name} / {protocol.name}") if progress else None
    say = bar.write if bar is not None and not bar.disable else log  # quiet: through the logger

    def collect(rec: dict[str, Any], where: str) -> None:
        summary["trained"] += 1
        summary["ok" if rec["status"] == "ok" else "failed"] += 1
        summary["records"].append(rec)
        say(f"[{summary['trained']}/{len(todo)}] {rec['arch_hash']} seed {rec['seed']} on {where}: "
            f"{rec['status']} val {rec['val_acc']:.4f} test {rec['test_acc']:.4f} ({rec['total_seconds']:.1f} s)")
        if bar is not None:
            bar.update(1)

    try:
        if remote:
            _run_remote(executor, todo, task_data, protocol, device_list[0], flags, path, task_name, wait_s,
                        collect, say, summary)
        elif len(device_list) == 1:
            pending: list[tuple[dict[str, Any], NASNetArch]] = []
            last_flush = [time.monotonic()]
            every = 0.0 if concurrent <= 1 else float(flush_seconds)

            def flush() -> None:
                if pending:
                    _append_records(path, task_name, wait_s, pending)
                    pending.clear()
                last_flush[0] = time.monotonic()

            def on_rec(k: int, rec: dict[str, Any]) -> None:
                pending.append((rec, todo[k][0]))
                collect(rec, device_list[0])
                if time.monotonic() - last_flush[0] >= every:
                    flush()

            def stop() -> bool:
                over = time_limit is not None and time.monotonic() - t_start > time_limit
                if over:
                    summary["stopped_early"] = True
                return over

            try:
                train_concurrent([a for a, _ in todo], task_data, protocol, [s for _, s in todo],
                                 device_list[0], concurrency=concurrent, flags=flags, on_record=on_rec,
                                 should_stop=stop)
            finally:
                flush()
        else:
            errors = run_jobs([(k, a, s) for k, (a, s) in enumerate(todo)], task_data, protocol, device_list,
                              flags=flags, sink=functools.partial(_append_record, str(path), task_name, wait_s),
                              on_record=lambda k, rec, where: collect(rec, where), say=say)
            if errors:
                raise RunError("; ".join(errors) + f" ({summary['ok']} evaluations ok, {summary['failed']} "
                               f"failed were stored in {path}; run again to resume)")
    finally:
        if bar is not None:
            bar.close()
    summary["seconds"] = time.monotonic() - t_start
    return summary


def _train_task(k: int, arch_json: str, seed: int, task_data, protocol_dict: dict[str, Any], device: str,
                flags: SpeedFlags | None) -> tuple[int, dict[str, Any], str]:
    """One training as a remote task: (job index, record, where it ran)."""
    import socket

    from .train import train_one

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    rec = train_one(from_json(arch_json), task_data, Protocol.from_dict(protocol_dict), seed, device, flags=flags)
    return k, rec, f"{socket.gethostname()}:{device}"


def _run_remote(executor, todo: Sequence[tuple[NASNetArch, int]], task_data, protocol: Protocol, device: str,
                flags: SpeedFlags | None, path: Path, task_name: str, wait_s: float,
                collect: Callable[[dict[str, Any], str], None], say: Callable[[str], None],
                summary: dict[str, Any]) -> None:
    """Train ``todo`` through a remote executor, appending each record here as it arrives."""
    import dataclasses

    from ..executors import JobError

    data = executor.put(task_data)
    # a task trains on the CPUs it was given: more threads than that only contend (many times slower)
    flags = dataclasses.replace(flags or SpeedFlags(), threads=(flags.threads if flags and flags.threads
                                                                else max(1, int(executor.cpus_per_task))))
    jobs = [(k, a.to_json(), s, data, protocol.to_dict(), device, flags) for k, (a, s) in enumerate(todo)]
    errors: list[str] = []
    for job, result in executor.map_unordered(_train_task, jobs, uses_gpu=True):
        if isinstance(result, JobError):
            a, s = todo[job[0]]
            errors.append(f"{a.to_json()} seed {s}: {result}")
            say(f"error: {errors[-1]}")
            continue
        k, rec, where = result
        _append_record(path, task_name, wait_s, rec, todo[k][0])
        collect(rec, where)
    if errors:
        raise RunError(f"{len(errors)} training job(s) failed on {executor.name}: " + "; ".join(errors[:5])
                       + f" ({summary['ok']} evaluations ok, {summary['failed']} failed were stored in {path}; "
                       f"run again to resume)")


def _progress_bar(total: int, desc: str):
    return progress_bar(total=total, desc=desc, unit="eval", dynamic_ncols=True)


def _append_record(path: str | Path, task_name: str, wait_s: float, rec: dict[str, Any], arch: NASNetArch) -> None:
    """Append one finished evaluation to the store at once (a killed run loses only jobs in progress)."""
    _append_records(path, task_name, wait_s, [(rec, arch)])


def _not_stored(st, task_name: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` less those whose (architecture, seed, protocol) the store already holds as a
    finished evaluation: read under the writer lock, so two runs that trained the same job (two
    identical commands, or workers of a killed run still finishing) store it once."""
    if task_name not in st.tasks or not rows:
        return rows
    ids = st.arch_ids([r["arch"] for r in rows])  # -1: not in the store yet, so not evaluated
    if not (ids >= 0).any():
        return rows
    # only the rows of these architectures are read and decoded (an append stays cheap on a
    # large store)
    arch = st._column(task_name, "arch")
    mine = np.flatnonzero(np.isin(arch, ids[ids >= 0]))
    if not len(mine):
        return rows

    def text(v: Any) -> str:
        return v.decode() if isinstance(v, bytes) else str(v)

    seed, proto, status = (st._column(task_name, c)[mine] for c in ("seed", "protocol", "status"))
    have = {(int(a), int(s), text(p)) for a, s, p, ok in zip(arch[mine], seed, proto, status) if text(ok) == "ok"}
    fresh = [r for r, i in zip(rows, ids) if (int(i), int(r["seed"]), str(r["protocol"])) not in have]
    if len(fresh) < len(rows):
        get_logger(__name__).info(f"{len(rows) - len(fresh)} evaluation(s) were already in {st.path} "
                                  f"(trained by another run meanwhile); not stored twice")
    return fresh


def _append_records(path: str | Path, task_name: str, wait_s: float,
                    items: Sequence[tuple[dict[str, Any], NASNetArch]]) -> None:
    """Append finished evaluations to the store in one atomic write.  When the store cannot take
    them (a full disk, an I/O error, ...), they are saved in a side file (fsynced) that the next
    run on this store appends first, and the error says where."""
    import sys

    from ..store import StoreError
    rows = [to_store_row(rec, arch) for rec, arch in items]
    try:
        with _open_store(Path(path), "a", wait_s) as st:
            fresh = _not_stored(st, task_name, rows)
            if fresh:
                st.append(task_name, fresh)
        return
    except (StoreError, OSError) as exc:
        reason = str(exc)
    space = NASNetSpace(items[0][1].num_blocks)
    plain = [{**r, "arch": space.to_string(r["arch"]), "curve": [float(v) for v in r["curve"]]}
             for r in rows]
    side = _save_pending(Path(path), task_name, plain)
    if side is None:
        for r in plain:  # nowhere to write them: the terminal is the last place they can go
            print(json.dumps({"task": task_name, "row": r}, default=float), file=sys.stderr, flush=True)
        raise RunError(f"could not append {len(rows)} finished evaluation(s) to {path}: {reason}; "
                       f"no folder could take a side file either, so they were printed above as "
                       f"JSON lines") from None
    raise RunError(f"could not append {len(rows)} finished evaluation(s) to {path}: {reason}; "
                   f"they are saved in {side} and the next run on this store adds them") from None
