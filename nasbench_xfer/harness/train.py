"""Train one architecture on one task under a protocol and return a record.

:func:`train_one` is the unit of work of the benchmark: it builds the network
(:mod:`.network`), keeps the task's images on the device
(:mod:`.data`), trains with SGD + cosine learning rate + drop-path, evaluates
the validation accuracy after every epoch and the test accuracy at the end, and
returns a plain ``dict`` (JSON-serialisable) with the results and everything
needed to interpret them (see :data:`RECORD_FIELDS`).  It never raises for a
failed training: the record's ``status`` is ``"ok"`` or ``"failed: <reason>"``
(bad *arguments*, e.g. an architecture with the wrong B, do raise).

Speed path (:class:`SpeedFlags`): on CUDA by default cuDNN autotuning and the
whole training step captured as one CUDA graph (:mod:`.engine`: forward, backward,
clipping and a foreach SGD with the learning rate and drop-path probability as
device tensors, over an epoch augmented at once on the device); bf16 autocast and
channels_last are opt-in (bf16 changed accuracy on an H100).  ``compile``
(``torch.compile`` of the forward, eager steps) is kept for comparison.  On CPU, a
seed gives bit-identical records (timings aside).
"""
from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, cast

import torch

from ..space.nasnet import NASNetArch, NASNetSpace, from_json
from .data import DeviceSplit
from .engine import ArchTrainer, train_concurrently
from .fused import FusedNetwork, FusedTrainer
from .network import NetConfig, Network, count_flops, count_params
from .protocols import Protocol, get_protocol

__all__ = ["SpeedFlags", "train_one", "train_concurrent", "RECORD_FIELDS", "device_name",
           "build_for_task", "parse_arch", "DeviceTask", "start_training", "finish_record",
           "start_fused_training", "finish_fused_records"]

#: Keys of the record :func:`train_one` returns.  The record's names are the
#: harness's own and stay as they are (stored runs and the runner read them); the
#: store names some differently, and :func:`~nasbench_xfer.harness.runner.to_store_row`
#: maps them: record ``val_acc`` -> store ``val_metric``, ``test_acc`` ->
#: ``test_metric``, ``val_curve`` -> ``curve`` (accuracies as fractions in [0, 1];
#: ``seed``, ``params``, ``flops``, ``train_seconds``, ``status``, ``protocol``,
#: ``device`` and ``finished_at`` keep their names; the rest is not stored).
RECORD_FIELDS = (
    "arch", "arch_hash", "task", "dataset", "split_seed", "num_classes", "seed", "protocol",
    "protocol_config", "protocol_key", "status", "val_acc", "test_acc", "val_curve", "train_loss_curve",
    "train_acc_curve", "epochs_done", "params", "flops", "train_seconds", "eval_seconds", "total_seconds",
    "setup_seconds", "images_per_second", "device", "flags", "data_sizes", "torch_version", "finished_at",
)


@dataclass(frozen=True)
class SpeedFlags:
    """How fast, not what: ``None`` means "on for CUDA, off elsewhere".

    Defaults follow the H100 measurements in ``benchmarks/results/``: the whole
    step as one CUDA graph and cuDNN autotuning are on for CUDA (the fp32 graph
    step matched the reference loop's accuracy, ``parity_variants.json``); bf16
    autocast and channels_last are opt-in, because bf16 lowered the validation
    accuracy after 4 epochs by 4.3-4.7 points (2 seeds each) and bought no speed
    once the step was a graph.  Every record stores the flags it was trained with.
    """

    bf16: bool | None = False
    channels_last: bool | None = False
    graph_step: bool | None = None       # the whole step as one CUDA graph (engine.py)
    cudnn_benchmark: bool | None = None
    compile: bool = False                # torch.compile the forward (eager steps; no graph_step)
    threads: int | None = None           # CPU: torch.set_num_threads
    fuse: int = 1                        # train this many architectures as one fused network (fused.py)

    def resolve(self, device: torch.device) -> dict[str, Any]:
        cuda = torch.device(device).type == "cuda"

        def on(v: bool | None) -> bool:
            return bool(cuda if v is None else v) and cuda

        return {
            "bf16": on(self.bf16),
            "channels_last": on(self.channels_last),
            "graph_step": on(self.graph_step) and not self.compile,
            "cudnn_benchmark": on(self.cudnn_benchmark),
            "compile": bool(self.compile),
            "threads": self.threads,
            "fuse": _fuse_width(self.fuse),
        }


def _fuse_width(fuse: int) -> int:
    if int(fuse) != fuse or fuse < 1:
        raise ValueError(f"fuse must be a whole number >= 1, got {fuse!r}")
    return int(fuse)


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return str(device)


def parse_arch(arch: NASNetArch | str | dict) -> NASNetArch:
    """An architecture from a NASNetArch, its appendix-C JSON (string or dict) or a named one."""
    if isinstance(arch, NASNetArch):
        return arch
    if isinstance(arch, str) and not arch.lstrip().startswith("{"):
        from ..space.nasnet import named_arch
        return named_arch(arch)
    return from_json(arch)


def _net_config(protocol: Protocol, task) -> NetConfig:
    return NetConfig(num_cells=protocol.num_cells, filters=protocol.filters,
                     num_classes=task.num_classes, in_channels=task.in_channels,
                     input_size=task.image_size, stem_multiplier=protocol.stem_multiplier,
                     auxiliary=protocol.aux_weight > 0, drop_path=protocol.drop_path,
                     dropout=protocol.dropout, dil_sep_layers=protocol.dil_sep_layers)


def build_for_task(arch: NASNetArch, protocol: Protocol, task) -> Network:
    """The network ``protocol`` trains for ``arch`` on ``task`` (classes, channels, size from the task)."""
    return Network(arch, _net_config(protocol, task))


def _subset(task, protocol: Protocol):
    if protocol.train_images is None and protocol.val_images is None and protocol.test_images is None:
        return task
    return task.subset(train=protocol.train_images, val=protocol.val_images, test=protocol.test_images,
                       seed=int(task.meta.get("split_seed", 0)))


def _new_record(arch: NASNetArch, space: NASNetSpace, task, protocol: Protocol, seed: int,
                device: torch.device, fl: dict[str, Any]) -> dict[str, Any]:
    return {
        "arch": space.to_string(arch), "arch_hash": space.hash(arch), "task": task.name,
        "dataset": task.meta.get("dataset", task.name), "split_seed": task.meta.get("split_seed"),
        "num_classes": task.num_classes, "seed": int(seed), "protocol": protocol.name,
        "protocol_config": protocol.to_dict(), "protocol_key": protocol.key(), "status": "ok",
        "val_acc": math.nan, "test_acc": math.nan, "val_curve": [], "train_loss_curve": [],
        "train_acc_curve": [], "epochs_done": 0, "params": None, "flops": None,
        "train_seconds": 0.0, "eval_seconds": 0.0, "total_seconds": 0.0, "setup_seconds": 0.0,
        "images_per_second": None, "device": device_name(device), "flags": dict(fl),
        "data_sizes": task.sizes(), "torch_version": torch.__version__, "finished_at": None,
    }


class DeviceTask:
    """A task's three splits resident on one device (shared by every training on it)."""

    def __init__(self, task, device: torch.device):
        mean, std = task.preprocessing["mean"], task.preprocessing["std"]
        self.task = task
        self.train = DeviceSplit(task.train_x, task.train_y, mean, std, device)
        self.val = DeviceSplit(task.val_x, task.val_y, mean, std, device)
        self.test = DeviceSplit(task.test_x, task.test_y, mean, std, device)


def _open_record(arch: NASNetArch | str | dict, task, protocol: Protocol, seed: int, device: torch.device,
                 fl: dict[str, Any]) -> tuple[NASNetArch, dict[str, Any]]:
    """The validated architecture and its new record, its clock started (bad arguments raise)."""
    arch = parse_arch(arch)
    space = NASNetSpace(protocol.num_blocks)
    space.validate(arch)
    rec = _new_record(arch, space, task, protocol, seed, device, fl)
    rec["_t0"] = time.perf_counter()
    return arch, rec


def _build_counted(arch: NASNetArch, protocol: Protocol, task, seed: int, rec: dict[str, Any]) -> Network:
    """The network (initialised from ``seed``), its parameters and FLOPs written into ``rec``."""
    torch.manual_seed(seed)
    model = build_for_task(arch, protocol, task)
    rec["params"] = count_params(model)
    rec["flops"] = count_flops(model)
    return model


def start_training(arch: NASNetArch | str | dict, dtask: DeviceTask, protocol: Protocol, seed: int,
                   device: torch.device, fl: dict[str, Any], log: Callable[[str], None] | None = None
                   ) -> tuple[ArchTrainer | None, dict[str, Any]]:
    """Build the network and its :class:`ArchTrainer`; ``(None, failed record)`` if building fails."""
    parsed, rec = _open_record(arch, dtask.task, protocol, seed, device, fl)
    try:
        model = _build_counted(parsed, protocol, dtask.task, seed, rec).to(device)
        if fl["channels_last"]:
            model = model.to(memory_format=torch.channels_last)
        if fl["compile"]:
            model.forward = torch.compile(model.forward)  # type: ignore[method-assign]
        trainer = ArchTrainer(model, dtask.train, dtask.val, dtask.test, protocol, seed, device, fl, log=log)
    except Exception as exc:  # noqa: BLE001
        finish_record(rec, None, exc)
        return None, rec
    return trainer, rec


def start_fused_training(archs: Sequence[NASNetArch | str | dict], dtask: DeviceTask, protocol: Protocol,
                         seeds: Sequence[int], device: torch.device, fl: dict[str, Any],
                         log: Callable[[str], None] | None = None
                         ) -> tuple[FusedTrainer | None, list[dict[str, Any]]]:
    """Build the networks of ``archs`` (each from its own seed, as :func:`start_training` does),
    fuse them and return their :class:`~nasbench_xfer.harness.fused.FusedTrainer` and records;
    ``(None, failed records)`` if building fails."""
    opened = [_open_record(a, dtask.task, protocol, seed, device, fl) for a, seed in zip(archs, seeds)]
    recs = [rec for _, rec in opened]
    try:
        nets = [_build_counted(a, protocol, dtask.task, seed, rec) for (a, rec), seed in zip(opened, seeds)]
        model = FusedNetwork(nets).to(device)
        del nets
        trainer = FusedTrainer(model, dtask.train, dtask.val, dtask.test, protocol, seeds, device, fl, log=log)
    except Exception as exc:  # noqa: BLE001
        for rec in recs:
            finish_record(rec, None, exc)
        return None, recs
    return trainer, recs


def finish_fused_records(recs: list[dict[str, Any]], trainer: FusedTrainer | None,
                         exc: BaseException | None) -> list[dict[str, Any]]:
    """:func:`finish_record` for each network of a fused training."""
    results = trainer.results if (trainer is not None and exc is None) else None
    for k, rec in enumerate(recs):
        view = SimpleNamespace(result=results[k], fl=trainer.fl) if results is not None and trainer else None
        finish_record(rec, cast(ArchTrainer | None, view), exc if view is None else None)
        if view is not None:
            rec["flags"]["fused_with"] = len(recs)
    return recs


def finish_record(rec: dict[str, Any], trainer: ArchTrainer | None, exc: BaseException | None) -> dict[str, Any]:
    """Fill ``rec`` from a finished trainer, or mark it failed with ``exc``."""
    try:
        if exc is None and trainer is not None and trainer.result is not None:
            _fill_results(rec, trainer)
        elif exc is not None:
            raise exc
    except Exception as err:  # noqa: BLE001 - a failed training is a result, not a crash
        _mark_failed(rec, err)
    t0 = rec.pop("_t0", None)
    rec["total_seconds"] = round(time.perf_counter() - t0, 4) if t0 is not None else 0.0
    rec["finished_at"] = time.time()
    return rec


def _fill_results(rec: dict[str, Any], trainer: ArchTrainer) -> None:
    """Curves, accuracies and timings of a finished training into ``rec``; raises on a non-finite loss."""
    r = trainer.result
    assert r is not None, "the trainer has finished"
    rec["flags"] = dict(trainer.fl)
    for k in ("train_loss_curve", "train_acc_curve", "val_curve", "test_acc", "epochs_done"):
        rec[k] = r[k]
    if not all(math.isfinite(v) for v in r["train_loss_curve"]):
        bad = next(i for i, v in enumerate(r["train_loss_curve"]) if not math.isfinite(v))
        raise FloatingPointError(f"non-finite training loss in epoch {bad + 1}")
    rec["val_acc"] = rec["val_curve"][-1] if rec["val_curve"] else math.nan
    rec["train_seconds"] = round(r["train_seconds"], 4)
    rec["eval_seconds"] = round(max(r["total_device_seconds"] - r["train_seconds"], 0.0), 4)
    rec["setup_seconds"] = round(r["setup_seconds"], 4)
    rec["images_per_second"] = r["images"] / r["train_seconds"] if r["train_seconds"] > 0 else None


def _mark_failed(rec: dict[str, Any], err: BaseException) -> None:
    """``status`` "failed: <reason>" (out of memory named as such, the cache emptied), no accuracies."""
    oom = isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()
    reason = "out of memory" if oom else f"{type(err).__name__}: {err}"
    rec["status"] = "failed: " + reason.replace("\n", " ")[:300]
    rec["val_acc"] = rec["test_acc"] = math.nan
    if oom and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _prepare(device: torch.device | str, flags: SpeedFlags | None) -> tuple[torch.device, dict[str, Any]]:
    device = torch.device(device)
    fl = (flags or SpeedFlags()).resolve(device)
    if fl["threads"] and device.type == "cpu":
        torch.set_num_threads(int(fl["threads"]))
    if device.type == "cuda":
        if device.index is None:  # "cuda": the current device (set_device needs an index)
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = bool(fl["cudnn_benchmark"])
    return device, fl


def train_one(arch: NASNetArch | str | dict, task_data, protocol: Protocol | str | dict, seed: int = 0,
              device: torch.device | str = "cpu", *, flags: SpeedFlags | None = None,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train ``arch`` on ``task_data`` (a :class:`~nasbench_xfer.datasets.ImageTask`) under
    ``protocol`` with ``seed`` on ``device``; return the record (see the module doc)."""
    protocol = get_protocol(protocol)
    (rec,) = train_concurrent([parse_arch(arch)], task_data, protocol, [seed], device, concurrency=1,
                              flags=flags, log=log)
    assert rec is not None, "train_concurrent returns a record for every training it finishes"
    return rec


def train_concurrent(archs: Sequence[NASNetArch | str], task_data, protocol: Protocol | str | dict,
                     seeds: Sequence[int] | int = 0, device: torch.device | str = "cpu", *,
                     concurrency: int = 4, flags: SpeedFlags | None = None,
                     on_record: Callable[[int, dict[str, Any]], None] | None = None,
                     log: Callable[[str], None] | None = None,
                     should_stop: Callable[[], bool] | None = None) -> list[dict[str, Any] | None]:
    """Train several architectures in one process, ``concurrency`` at a time, each on its own
    CUDA stream (:func:`~nasbench_xfer.harness.engine.train_concurrently`).

    Records come back in the order of ``archs``; ``on_record(index, record)`` is called as each
    finishes.  ``should_stop()`` (checked before each new training starts) ends the run early:
    the trainings in flight finish, the ones not started are ``None`` in the result.
    """
    protocol = get_protocol(protocol)
    parsed = [parse_arch(a) for a in archs]
    seeds = [seeds] * len(parsed) if isinstance(seeds, int) else [int(s) for s in seeds]
    if len(seeds) != len(parsed):
        raise ValueError(f"{len(parsed)} architectures but {len(seeds)} seeds")
    space = NASNetSpace(protocol.num_blocks)
    for a in parsed:
        space.validate(a)  # bad arguments raise before anything trains
    device, fl = _prepare(device, flags)
    dtask = DeviceTask(_subset(task_data, protocol), device)
    out: list[dict[str, Any] | None] = [None] * len(archs)
    if fl["fuse"] > 1:
        _train_fused(parsed, seeds, dtask, protocol, device, fl, concurrency, out, on_record, log, should_stop)
        return out

    def jobs():
        for i in range(len(archs)):
            if should_stop is not None and should_stop():
                return
            yield i

    def start(i: int):
        trainer, rec = start_training(parsed[i], dtask, protocol, seeds[i], device, fl, log=log)
        return trainer, (i, rec)

    def finish(state, trainer, exc) -> None:
        i, rec = state
        out[i] = finish_record(rec, trainer, exc)
        if on_record is not None:
            on_record(i, out[i])

    # on CUDA every training gets a stream of its own, even alone (graph capture needs one)
    train_concurrently(jobs(), start, finish, concurrency, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out


def _train_fused(archs: list[NASNetArch], seeds: list[int], dtask: DeviceTask, protocol: Protocol,
                 device: torch.device, fl: dict[str, Any], concurrency: int, out: list[dict[str, Any] | None],
                 on_record: Callable[[int, dict[str, Any]], None] | None, log: Callable[[str], None] | None,
                 should_stop: Callable[[], bool] | None) -> None:
    """:func:`train_concurrent` with ``fuse`` architectures per network: the architectures in
    order, ``fl["fuse"]`` at a time, ``concurrency`` fused trainings in flight."""
    width = int(fl["fuse"])

    def jobs():
        for lo in range(0, len(archs), width):
            if should_stop is not None and should_stop():
                return
            yield list(range(lo, min(lo + width, len(archs))))

    def start(idx: list[int]):
        trainer, recs = start_fused_training([archs[i] for i in idx], dtask, protocol, [seeds[i] for i in idx],
                                             device, fl, log=log)
        return trainer, (idx, recs)

    def finish(state, trainer, exc) -> None:
        idx, recs = state
        for i, rec in zip(idx, finish_fused_records(recs, trainer, exc)):
            out[i] = rec
            if on_record is not None:
                on_record(i, rec)

    train_concurrently(jobs(), start, finish, concurrency, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
