"""Training slots: start a training whenever a slot is free, collect each as it ends.

The live search's asynchronous batches (:mod:`nasbench_xfer.evaluate.live_search`) keep K
trainings running and ask the optimizer for a new architecture the moment one ends.  Two
kinds of slots serve it with one interface (``start``, ``wait``, ``len``):

* :class:`DeviceSlots` - this process, one device: the trainings are advanced round-robin by
  :class:`~nasbench_xfer.harness.engine.InFlight` (on CUDA each on its own stream), and
  :meth:`~DeviceSlots.wait` steps them until at least one ends;
* :class:`ExecutorSlots` - each training a task of a Ray or SLURM
  :class:`~nasbench_xfer.executors.Executor` (or a local process pool); :meth:`~ExecutorSlots.wait`
  polls the tasks' futures.

``wait()`` returns ``(key, record)`` for each training that ended (a failed training is a
record with ``status`` "failed: ..."), or ``(key, JobError)`` when the executor lost the task
itself (a crashed worker, a cancelled job).
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Hashable
from typing import Any

from .protocols import Protocol
from .train import DeviceTask, SpeedFlags, _prepare, _subset, finish_record, start_training


class DeviceSlots:
    """Trainings in flight in this process on ``device``."""

    def __init__(self, task_data, protocol: Protocol, device: str, flags: SpeedFlags | None = None):
        from .engine import InFlight

        self.protocol = protocol
        self.device, self.fl = _prepare(device, flags)
        self.dtask = DeviceTask(_subset(task_data, protocol), self.device)
        self._pool = InFlight(self.device)
        self._ended: list[tuple[Hashable, Any]] = []

    def __len__(self) -> int:
        return len(self._pool)

    def start(self, key: Hashable, arch, seed: int) -> None:
        def build():
            trainer, rec = start_training(arch, self.dtask, self.protocol, seed, self.device, self.fl)
            return trainer, (key, rec)

        failed = self._pool.start(build)
        if failed is not None:  # building the network failed: a failed record, at once
            (k, rec), _, _ = failed
            self._ended.append((k, finish_record(rec, None, None)))

    def wait(self) -> list[tuple[Hashable, Any]]:
        """Step the trainings until at least one has ended; ``(key, record)`` of each that did."""
        while not self._ended and len(self._pool):
            for (key, rec), trainer, exc in self._pool.advance():
                self._ended.append((key, finish_record(rec, trainer, exc)))
        if self._ended and self.device.type == "cuda":
            import torch

            torch.cuda.synchronize(self.device)
        out, self._ended = self._ended, []
        return out


class ExecutorSlots:
    """Each training a task of ``executor`` (``device`` "auto": the task's GPU when it has one)."""

    def __init__(self, executor, task_data, protocol: Protocol, device: str, flags: SpeedFlags | None = None,
                 poll_seconds: float | None = None):
        self.executor = executor
        self.protocol = protocol
        self.device = device
        self.data = executor.put(task_data)
        # a task trains on the CPUs it was given: more threads than that only contend
        self.flags = dataclasses.replace(flags or SpeedFlags(), threads=(
            flags.threads if flags and flags.threads else max(1, int(executor.cpus_per_task))))
        self.poll_seconds = float(poll_seconds if poll_seconds is not None
                                  else getattr(executor, "poll_seconds", 0.2))
        self._futures: dict[Any, Hashable] = {}

    def __len__(self) -> int:
        return len(self._futures)

    def start(self, key: Hashable, arch, seed: int) -> None:
        from .runner import _train_task

        fut = self.executor.submit(_train_task, 0, arch.to_json(), int(seed), self.data, self.protocol.to_dict(),
                                   self.device, self.flags, uses_gpu=True)
        self._futures[fut] = key

    def wait(self) -> list[tuple[Hashable, Any]]:
        """Poll until at least one task has ended; ``(key, record)`` or ``(key, JobError)`` of each."""
        from ..executors import JobError, _job_error

        while self._futures:
            done = [f for f in self._futures if f.done()]
            if done:
                out = []
                for f in done:
                    key = self._futures.pop(f)
                    try:
                        _, rec, where = f.result()
                        rec["where"] = where
                        out.append((key, rec))
                    except Exception as exc:  # the task itself failed (not the training: that is a record)
                        out.append((key, exc if isinstance(exc, JobError) else _job_error(exc)))
                return out
            time.sleep(self.poll_seconds)
        return []

    def cancel(self) -> None:
        """Stop what is still running (an interrupted search)."""
        for f in list(self._futures):
            try:
                f.cancel()
            except Exception:  # noqa: BLE001 - best effort: the search is stopping anyway
                pass
        self._futures.clear()
