"""Train one architecture on one task under a protocol and return a record.

:func:`train_one` is the unit of work of the benchmark: it builds the network
(:mod:`.network`), keeps the task's images on the device
(:mod:`.data`), trains with SGD + cosine learning rate + drop-path, evaluates
the validation accuracy after every epoch and the test accuracy at the end, and
returns a plain ``dict`` (JSON-serialisable) with the results and everything
needed to interpret them (see :data:`RECORD_FIELDS`).  It never raises for a
failed training: the record's ``status`` is ``"ok"`` or ``"failed: <reason>"``
(bad *arguments*, e.g. an architecture with the wrong B, do raise).

Speed path (:class:`SpeedFlags`, all off on CPU): bf16 autocast,
channels_last, ``torch.compile`` and CUDA graphs (``torch.compile`` with
``mode="reduce-overhead"``).  The drop-path probability and the learning rate
change every step without recompiling: the former is a tensor buffer of the
model updated in place, the latter lives in the optimizer outside the compiled
graph.  On CPU, a seed gives bit-identical records (timings aside).
"""
from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..space.nasnet import NASNetArch, NASNetSpace, from_json
from .data import Augment, DeviceSplit
from .network import NetConfig, Network, count_flops, count_params
from .protocols import Protocol, get_protocol

__all__ = ["SpeedFlags", "train_one", "train_many", "RECORD_FIELDS", "device_name", "build_for_task",
           "parse_arch"]

#: keys of the record :func:`train_one` returns
RECORD_FIELDS = (
    "arch", "arch_hash", "task", "dataset", "split_seed", "num_classes", "seed", "protocol",
    "protocol_config", "protocol_key", "status", "val_acc", "test_acc", "val_curve", "train_loss_curve",
    "train_acc_curve", "epochs_done", "params", "flops", "train_seconds", "eval_seconds", "total_seconds",
    "images_per_second", "device", "flags", "data_sizes", "torch_version", "finished_at",
)


@dataclass(frozen=True)
class SpeedFlags:
    """How fast, not what: ``None`` means "on for CUDA, off elsewhere"."""

    bf16: bool | None = None
    channels_last: bool | None = None
    compile: bool = False
    cuda_graphs: bool = False        # implies compile (mode="reduce-overhead")
    threads: int | None = None       # CPU: torch.set_num_threads

    def resolve(self, device: torch.device) -> dict[str, Any]:
        cuda = device.type == "cuda"
        return {
            "bf16": bool(cuda if self.bf16 is None else self.bf16) and cuda,
            "channels_last": bool(cuda if self.channels_last is None else self.channels_last),
            "compile": bool(self.compile or self.cuda_graphs),
            "cuda_graphs": bool(self.cuda_graphs) and cuda,
            "threads": self.threads,
        }


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


@torch.no_grad()
def _evaluate(model: Callable, split: DeviceSplit, batch_size: int, bf16: bool,
              channels_last: bool, cuda_graphs: bool = False) -> float:
    correct = torch.zeros((), dtype=torch.int64, device=split.device)
    for x, y in split.eval_batches(batch_size):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with torch.autocast(split.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        correct += (logits.argmax(1) == y).sum()
    return float(correct.item()) / max(len(split), 1)


def train_one(arch: NASNetArch | str | dict, task_data, protocol: Protocol | str | dict, seed: int = 0,
              device: torch.device | str = "cpu", *, flags: SpeedFlags | None = None,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train ``arch`` on ``task_data`` (a :class:`~nasbench_xfer.datasets.TaskData`) under
    ``protocol`` with ``seed`` on ``device``; return the record (see the module doc)."""
    t_start = time.perf_counter()
    arch = parse_arch(arch)
    protocol = get_protocol(protocol)
    space = NASNetSpace(protocol.num_blocks)
    space.validate(arch)
    device = torch.device(device)
    flags = flags or SpeedFlags()
    fl = flags.resolve(device)
    if fl["threads"] and device.type == "cpu":
        torch.set_num_threads(int(fl["threads"]))
    task = _subset(task_data, protocol)
    rec: dict[str, Any] = {
        "arch": space.to_string(arch), "arch_hash": space.hash(arch), "task": task.name,
        "dataset": task.meta.get("dataset", task.name), "split_seed": task.meta.get("split_seed"),
        "num_classes": task.num_classes, "seed": int(seed), "protocol": protocol.name,
        "protocol_config": protocol.to_dict(), "protocol_key": protocol.key(), "status": "ok",
        "val_acc": math.nan, "test_acc": math.nan, "val_curve": [], "train_loss_curve": [],
        "train_acc_curve": [], "epochs_done": 0, "params": None, "flops": None,
        "train_seconds": 0.0, "eval_seconds": 0.0, "total_seconds": 0.0, "images_per_second": None,
        "device": device_name(device), "flags": fl, "data_sizes": task.sizes(),
        "torch_version": torch.__version__, "finished_at": None,
    }
    model = None
    try:
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(int(seed))
        mean, std = task.preprocessing["mean"], task.preprocessing["std"]
        train = DeviceSplit(task.train_x, task.train_y, mean, std, device)
        val = DeviceSplit(task.val_x, task.val_y, mean, std, device)
        test = DeviceSplit(task.test_x, task.test_y, mean, std, device)
        model = build_for_task(arch, protocol, task)
        rec["params"] = count_params(model)
        rec["flops"] = count_flops(model)
        model = model.to(device)
        if fl["channels_last"]:
            model = model.to(memory_format=torch.channels_last)
        run: Callable = model
        if fl["compile"]:
            run = torch.compile(model, mode="reduce-overhead" if fl["cuda_graphs"] else None)
        opt = torch.optim.SGD(model.parameters(), lr=protocol.lr_max, momentum=protocol.momentum,
                              weight_decay=protocol.weight_decay, nesterov=protocol.nesterov)
        aug = Augment(pad=protocol.pad, hflip=protocol.hflip, cutout=protocol.cutout)
        bs = protocol.effective_batch_size
        nb = train.num_batches(bs, drop_last=True)
        total_steps = max(protocol.epochs * nb, 1)
        step = 0
        train_time = eval_time = 0.0
        images = 0
        for epoch in range(protocol.epochs):
            model.train()
            t0 = time.perf_counter()
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), dtype=torch.int64, device=device)
            seen = 0
            for x, y in train.train_batches(bs, aug, gen, drop_last=True):
                if protocol.lr_schedule == "cosine-per-epoch":
                    frac = epoch / protocol.epochs
                else:
                    frac = step / total_steps
                lr = protocol.lr_min + 0.5 * (protocol.lr_max - protocol.lr_min) * (1 + math.cos(math.pi * frac))
                for g in opt.param_groups:
                    g["lr"] = lr
                model.set_drop_path_progress(step / total_steps)
                if fl["channels_last"]:
                    x = x.contiguous(memory_format=torch.channels_last)
                if fl["cuda_graphs"]:  # a new step: earlier graph outputs may be overwritten
                    torch.compiler.cudagraph_mark_step_begin()
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fl["bf16"]):
                    out = run(x)
                    if isinstance(out, tuple):
                        logits, aux = out
                        loss = F.cross_entropy(logits, y) + protocol.aux_weight * F.cross_entropy(aux, y)
                    else:
                        logits = out
                        loss = F.cross_entropy(logits, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if protocol.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), protocol.grad_clip)
                opt.step()
                loss_sum += loss.detach().float() * len(y)
                correct += (logits.detach().argmax(1) == y).sum()
                seen += len(y)
                step += 1
            loss_v = float(loss_sum.item()) / max(seen, 1)  # one sync per epoch
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            train_time += time.perf_counter() - t0
            images += seen
            rec["train_loss_curve"].append(loss_v)
            rec["train_acc_curve"].append(float(correct.item()) / max(seen, 1))
            if not math.isfinite(loss_v):
                raise FloatingPointError(f"non-finite training loss in epoch {epoch + 1}")
            t0 = time.perf_counter()
            model.eval()
            acc = _evaluate(run, val, protocol.eval_batch_size, fl["bf16"], fl["channels_last"],
                            fl["cuda_graphs"])
            eval_time += time.perf_counter() - t0
            rec["val_curve"].append(acc)
            rec["epochs_done"] = epoch + 1
            if log:
                log(f"epoch {epoch + 1}/{protocol.epochs} loss {loss_v:.4f} val_acc {acc:.4f}")
        t0 = time.perf_counter()
        model.eval()
        rec["test_acc"] = _evaluate(run, test, protocol.eval_batch_size, fl["bf16"],
                                    fl["channels_last"], fl["cuda_graphs"])
        eval_time += time.perf_counter() - t0
        rec["val_acc"] = rec["val_curve"][-1]
        rec["train_seconds"] = round(train_time, 4)
        rec["eval_seconds"] = round(eval_time, 4)
        rec["images_per_second"] = images / train_time if train_time > 0 else None
    except Exception as exc:  # noqa: BLE001 - a failed training is a result, not a crash
        oom = isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()
        reason = "out of memory" if oom else f"{type(exc).__name__}: {exc}"
        rec["status"] = "failed: " + reason.replace("\n", " ")[:300]
        if oom and device.type == "cuda":
            model = None
            torch.cuda.empty_cache()
    rec["total_seconds"] = round(time.perf_counter() - t_start, 4)
    rec["finished_at"] = time.time()
    return rec


# ---------------------------------------------------------------- several at once
def train_many(archs: Sequence[NASNetArch | str], task_data, protocol: Protocol | str,
               seeds: Sequence[int] | int = 0, device: torch.device | str = "cpu", *,
               workers: int = 1, flags: SpeedFlags | None = None,
               threads_per_worker: int | None = None) -> list[dict]:
    """Train several architectures, ``workers`` processes at a time on the same device.

    Several small networks share one GPU far better than one at a time (each
    alone leaves most of it idle).  Records come back in the order of ``archs``.
    """
    protocol = get_protocol(protocol)
    archs = [parse_arch(a) for a in archs]
    seeds = [seeds] * len(archs) if isinstance(seeds, int) else list(seeds)
    if len(seeds) != len(archs):
        raise ValueError(f"{len(archs)} architectures but {len(seeds)} seeds")
    flags = flags or SpeedFlags()
    if workers <= 1 or len(archs) <= 1:
        return [train_one(a, task_data, protocol, s, device, flags=flags) for a, s in zip(archs, seeds)]
    from .parallel import run_jobs
    out: list[dict | None] = [None] * len(archs)
    errors = run_jobs([(i, a, s) for i, (a, s) in enumerate(zip(archs, seeds))], task_data, protocol,
                      [str(device)] * min(workers, len(archs)), flags=flags, threads=threads_per_worker,
                      on_record=lambda i, rec, where: out.__setitem__(i, rec), say=lambda msg: None)
    if errors:
        raise RuntimeError("train_many: " + "; ".join(errors))
    return out  # type: ignore[return-value]
