"""Train jobs in worker processes, one per device entry: the engine behind
:func:`train_many` (several architectures at once on one
device, one process each) and ``nasbench-xfer train --devices`` (:mod:`.runner`: several GPUs, each finished
evaluation appended to a store by the worker that trained it).

Each worker is a spawned process with its own pipe to the parent; the parent waits on the
pipes and on the processes' exits together, so a worker that dies (out of memory, a crash)
is reported with its exit code while the others go on, and nothing hangs.  Interrupting
the parent (Ctrl-C, SIGTERM) stops every worker; a worker whose parent is gone stops at the
next job boundary.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..space.nasnet import NASNetArch, from_json
from .protocols import Protocol, get_protocol
from .train import SpeedFlags, parse_arch, train_one

__all__ = ["run_jobs", "train_many"]

#: a job: (index, architecture, seed); the index comes back with the record
Job = tuple[int, NASNetArch, int]


def _send(conn, msg) -> None:
    try:
        conn.send(msg)
    except (BrokenPipeError, OSError):  # the parent is gone
        pass


def _worker(jobs: list[tuple[int, str, int]], task_data, protocol_dict: dict, device: str,
            flags: SpeedFlags, threads: int, sink, conn, parent_pid: int) -> None:
    """Train ``jobs`` on ``device``; after each, call ``sink(record, arch)`` (if any) and send
    ``("rec", index, record)``; on failure ``("error", None, text)``; at the end ``("done", ...)``."""
    try:
        torch.set_num_threads(threads)
        if torch.device(device).type == "cuda":
            torch.cuda.set_device(torch.device(device))
        protocol = Protocol.from_dict(protocol_dict)
        for i, arch_json, seed in jobs:
            if os.getppid() != parent_pid:  # the parent is gone: stop at a job boundary
                return
            arch = from_json(arch_json)
            rec = train_one(arch, task_data, protocol, seed, device, flags=flags)
            if sink is not None:
                sink(rec, arch)
            _send(conn, ("rec", i, rec))
    except BaseException as exc:  # report it, never leave the parent waiting
        _send(conn, ("error", None, f"{type(exc).__name__}: {exc}"))
    finally:
        _send(conn, ("done", None, None))
        conn.close()


def run_jobs(jobs: Sequence[Job], task_data, protocol: Protocol, devices: Sequence[str], *,
             flags: SpeedFlags | None = None, threads: int | None = None,
             sink: Callable[[dict, NASNetArch], None] | None = None,
             on_record: Callable[[int, dict, str], None] = lambda i, rec, device: None,
             say: Callable[[str], None] = print) -> list[str]:
    """Deal ``jobs`` round-robin to one worker process per entry of ``devices`` (repeat an entry
    for several workers on it); returns the workers' errors (empty when all went well).

    ``sink`` (picklable: a module-level function or a ``functools.partial`` of one) runs in the
    worker after each job, e.g. to store the record; ``on_record(index, record, device)`` runs
    in the parent as each record arrives.  ``threads`` per worker defaults to
    ``flags.threads``, else an equal share of the cores this process may use."""
    import signal
    import threading
    from multiprocessing.connection import wait

    import torch.multiprocessing as mp
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    flags = flags or SpeedFlags()
    threads = threads or flags.threads or max(1, cores // len(devices))
    flags = dataclasses.replace(flags, threads=threads)
    ctx = mp.get_context("spawn")
    workers: dict[int, tuple[Any, Any]] = {}
    old_term = None
    if threading.current_thread() is threading.main_thread():
        def _term(signum, frame):
            raise SystemExit(128 + signum)
        old_term = signal.signal(signal.SIGTERM, _term)
    errors: list[str] = []
    try:
        for j, dev in enumerate(devices):
            share = [(i, a.to_json(), s) for i, a, s in list(jobs)[j::len(devices)]]
            if not share:
                continue
            recv, send = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_worker, daemon=True,
                            args=(share, task_data, protocol.to_dict(), dev, flags, threads, sink, send,
                                  os.getpid()))
            p.start()
            send.close()
            workers[j] = (p, recv)
        said_done: set[int] = set()
        while workers:
            wait([c for _, c in workers.values()] + [p.sentinel for p, _ in workers.values()], timeout=30)
            for j in list(workers):
                p, conn = workers[j]
                gone = not p.is_alive()  # checked before draining: all it wrote is in the pipe by now
                try:
                    while conn.poll():
                        kind, i, payload = conn.recv()
                        if kind == "rec":
                            on_record(i, payload, devices[j])
                        elif kind == "error":
                            errors.append(f"worker {j} ({devices[j]}): {payload}")
                            say(f"error: {errors[-1]}")
                        else:
                            said_done.add(j)
                            gone = True
                except (EOFError, OSError, ValueError, TypeError):  # closed or torn by a dying worker
                    gone = True
                except Exception as exc:  # unpickling a torn message
                    gone = True
                    errors.append(f"worker {j} ({devices[j]}): unreadable message ({exc})")
                if gone:
                    p.join(timeout=30)
                    if j not in said_done:
                        errors.append(f"worker {j} ({devices[j]}) died with exit code {p.exitcode}")
                        say(f"error: {errors[-1]}")
                    conn.close()
                    del workers[j]
    finally:
        for p, _ in workers.values():  # interrupted: stop the rest
            if p.is_alive():
                p.terminate()
            p.join(timeout=10)
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    return errors


def train_many(archs: Sequence[NASNetArch | str], task_data, protocol: Protocol | str,
               seeds: Sequence[int] | int = 0, device: torch.device | str = "cpu", *,
               workers: int = 1, flags: SpeedFlags | None = None,
               threads_per_worker: int | None = None) -> list[dict]:
    """Train several architectures, ``workers`` processes at a time on the same device.

    Several small networks share one GPU far better than one at a time (each
    alone leaves most of it idle).  Records come back in the order of ``archs``.
    """
    protocol = get_protocol(protocol)
    parsed = [parse_arch(a) for a in archs]
    seed_list = [seeds] * len(parsed) if isinstance(seeds, int) else list(seeds)
    if len(seed_list) != len(parsed):
        raise ValueError(f"{len(parsed)} architectures but {len(seed_list)} seeds")
    flags = flags or SpeedFlags()
    if workers <= 1 or len(parsed) <= 1:
        return [train_one(a, task_data, protocol, s, device, flags=flags) for a, s in zip(parsed, seed_list)]
    out: dict[int, dict] = {}
    errors = run_jobs([(i, a, s) for i, (a, s) in enumerate(zip(parsed, seed_list))], task_data, protocol,
                      [str(device)] * min(workers, len(parsed)), flags=flags, threads=threads_per_worker,
                      on_record=lambda i, rec, where: out.__setitem__(i, rec), say=lambda msg: None)
    if errors:
        raise RuntimeError("train_many: " + "; ".join(errors))
    return [out[i] for i in range(len(parsed))]
