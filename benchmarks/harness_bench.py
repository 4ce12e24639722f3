"""Training throughput of the harness against the loop NAS code bases write, on one GPU.

In one process and one call, for the same architectures at the paper's search
setting (``paper-search``: B=5, N=3, F=32, batch 128, SGD momentum 0.9, cosine
lr, weight decay 5e-4, drop-path 0.3, gradient clipping 5) on the CIFAR-10
training split (45,000 images):

(a) **reference**: fp32 eager, images decoded to PIL and augmented by torchvision
    transforms (RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor,
    Normalize) in a ``DataLoader`` with worker processes, ``torch.optim.SGD``,
    ``clip_grad_norm_``, a ``loss.item()`` per step, one architecture at a time;
(b) **the harness with each speed feature added in turn** (a table), all in fp32:
    the engine's eager step with the data on the GPU and augmented as tensors; +
    cuDNN autotuning; + the whole step as one CUDA graph; + K architectures in
    flight on K CUDA streams; + horizontal fusion (``SpeedFlags(fuse=G)``: G different
    architectures trained as one fused network, ``harness/fused.py``, one CUDA graph for
    all G); and two side rows with bf16 autocast + channels_last,
    which change accuracy (``parity_variants.py``) and so never count as (c);
(c) **the best configuration**: the fastest fp32 row of (b).

Steady state: every training first runs ``--warm`` steps (reported separately as start-up
seconds: the model build with its parameter and FLOP count, as every training of the package
does; the first epoch's augmentation, cuDNN autotuning, graph capture), then ``--steps`` timed
steps; images/s is timed images over the wall time of the timed phase for all architectures of
the configuration.
Architectures per GPU-hour at ``paper-search`` = images/s / (45,000 x 100 epochs)
x 3,600 (training only; the per-epoch validation pass adds about 11%).

Accuracy parity: (a) and the harness with its default flags (fp32, the whole step as
a CUDA graph, the seeds in flight together) train the same architecture for ``--parity-epochs``
epochs on ``--parity-train`` training images with ``--parity-seeds`` seeds each and
report validation accuracy per seed, so the seed spread is measured next to the
difference between the two; with fusion rows, also the seeds fused into one network
(``harness_fused``), and ``best_parity`` names the run that matches (c).

Writes ``benchmarks/results/harness_bench.json`` and prints the table.  ``--tiny``
runs the whole script on CPU in seconds (a smoke check of the script, written to
``harness_bench_cpu_smoke.json``, never to be mistaken for the GPU measurement).

Usage::

    python benchmarks/harness_bench.py --data DATA            # GPU
    python benchmarks/harness_bench.py --tiny --data DATA     # CPU smoke check
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import nasbench_xfer.datasets  # noqa: E402
from nasbench_xfer.harness.protocols import get_protocol  # noqa: E402
from nasbench_xfer.harness.train import (  # noqa: E402
    DeviceTask,
    SpeedFlags,
    _prepare,
    build_for_task,
    device_name,
    start_fused_training,
    start_training,
    train_concurrent,
)
from nasbench_xfer.space.nasnet import NASNetSpace  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


# --------------------------------------------------------------- reference
class _ArrayDataset(torch.utils.data.Dataset):
    """uint8 (N, C, H, W) images served as PIL images through torchvision transforms."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform):
        self.x, self.y, self.transform = x.numpy(), y.numpy(), transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        from PIL import Image
        a = self.x[i]
        img = Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0))
        return self.transform(img), int(self.y[i])


def _reference_parts(arch, task, protocol, seed: int, device, loader_workers: int):
    import torchvision.transforms as T
    torch.manual_seed(seed)
    pre = task.preprocessing
    mean = [m / 255 for m in pre["mean"]]
    std = [s / 255 for s in pre["std"]]
    train_tf = T.Compose([T.RandomCrop(task.image_size, padding=protocol.pad), T.RandomHorizontalFlip(),
                          T.ToTensor(), T.Normalize(mean, std)])
    eval_tf = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
    bs = protocol.effective_batch_size
    kw = dict(num_workers=loader_workers, pin_memory=device.type == "cuda",
              persistent_workers=loader_workers > 0)
    train_dl = torch.utils.data.DataLoader(_ArrayDataset(task.train_x, task.train_y, train_tf), bs,
                                           shuffle=True, drop_last=True, **kw)
    val_dl = torch.utils.data.DataLoader(_ArrayDataset(task.val_x, task.val_y, eval_tf),
                                         protocol.eval_batch_size, **kw)
    model = build_for_task(arch, protocol, task).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=protocol.lr_max, momentum=protocol.momentum,
                          weight_decay=protocol.weight_decay)
    return model, opt, train_dl, val_dl


def _reference_step(model, opt, x, y, protocol, progress: float) -> float:
    model.set_drop_path_progress(progress)
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), protocol.grad_clip)
    opt.step()
    return loss.item()  # logging, as reference loops do


def reference_throughput(archs, task, protocol, device, loader_workers: int, warm: int, steps: int) -> dict:
    """(a): each architecture alone, ``warm`` untimed then ``steps`` timed steps."""
    timed_s = startup_s = 0.0
    for i, arch in enumerate(archs):
        t0 = time.perf_counter()
        model, opt, train_dl, _ = _reference_parts(arch, task, protocol, i, device, loader_workers)
        model.train()
        it = iter(train_dl)
        total = protocol.epochs * len(train_dl)
        for k in range(warm + steps):
            if k == warm:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t1 = time.perf_counter()
                startup_s += t1 - t0
            x, y = next(it)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            lr = protocol.lr_min + 0.5 * (protocol.lr_max - protocol.lr_min) * (1 + np.cos(np.pi * k / total))
            for g in opt.param_groups:
                g["lr"] = lr
            _reference_step(model, opt, x, y, protocol, k / total)
        if device.type == "cuda":
            torch.cuda.synchronize()
        timed_s += time.perf_counter() - t1
        del it, train_dl
    images = len(archs) * steps * protocol.effective_batch_size
    return {"images_per_s": images / timed_s, "timed_seconds": timed_s, "startup_seconds": startup_s,
            "startup_seconds_per_arch": startup_s / len(archs)}


def reference_accuracy(arch, task, protocol, seed: int, device, loader_workers: int) -> dict:
    """(a) trained to the end of ``protocol`` (validation accuracy per epoch)."""
    model, opt, train_dl, val_dl = _reference_parts(arch, task, protocol, seed, device, loader_workers)
    total = protocol.epochs * len(train_dl)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1), eta_min=protocol.lr_min)
    curve, step = [], 0
    t0 = time.perf_counter()
    for _ in range(protocol.epochs):
        model.train()
        for x, y in train_dl:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            _reference_step(model, opt, x, y, protocol, step / total)
            sched.step()
            step += 1
        model.eval()
        correct = n = 0
        with torch.no_grad():
            for x, y in val_dl:
                x, y = x.to(device), y.to(device)
                correct += (model(x).argmax(1) == y).sum().item()
                n += len(y)
        curve.append(correct / max(n, 1))
    return {"seed": seed, "val_acc": curve[-1], "val_curve": curve, "seconds": time.perf_counter() - t0}


# --------------------------------------------------------------- harness
def _build_trainer(group: list, j0: int, task, protocol, dev, fl: dict, dtask):
    """One trainer for ``group`` (one architecture, or ``fl["fuse"]`` fused into one network),
    built as the package builds it for a training (so start-up includes what a real training
    pays: the network, its parameter and FLOP count, the trainer)."""
    if fl["fuse"] > 1:
        trainer, recs = start_fused_training(group, dtask, protocol, list(range(j0, j0 + len(group))), dev, fl)
    else:
        trainer, rec = start_training(group[0], dtask, protocol, j0, dev, fl)
        recs = [rec]
    if trainer is None:
        raise RuntimeError(f"building the trainer failed: {recs[0].get('status')}")
    return trainer


def harness_throughput(archs, task, protocol, device, flags: SpeedFlags, k: int, warm: int, steps: int) -> dict:
    """(b)/(c): at least ``len(archs)`` trainings, ``k`` trainers in flight on their own streams
    (a trainer trains one architecture, or ``flags.fuse`` different ones fused into one network;
    ``archs`` must then hold ``k * flags.fuse`` of them)."""
    dev, fl = _prepare(device, flags)
    dtask = DeviceTask(task, dev)
    per = int(fl["fuse"])
    n_jobs = max(k * per, len(archs)) if per == 1 else k * per
    if n_jobs > len(archs) and per > 1:
        raise ValueError(f"{k} x {per} fused trainings need {n_jobs} architectures, got {len(archs)}")
    jobs = [archs[i % len(archs)] for i in range(n_jobs)]
    timed_s = startup_s = 0.0
    fl_used = dict(fl)
    for g0 in range(0, len(jobs), k * per):
        group = jobs[g0:g0 + k * per]
        t0 = time.perf_counter()
        trainers, gens, streams = [], [], []
        for j in range(0, len(group), per):
            tr = _build_trainer(group[j:j + per], g0 + j, task, protocol, dev, fl, dtask)
            trainers.append(tr)
            gens.append(tr.steps())
            streams.append(torch.cuda.Stream(dev) if dev.type == "cuda" else None)
            if streams[-1] is not None:
                streams[-1].wait_stream(torch.cuda.current_stream(dev))  # model and data were made there

        def advance(n: int, gens: list, streams: list) -> None:
            for _ in range(n):
                for gen, st in zip(gens, streams):
                    if st is not None:
                        with torch.cuda.stream(st):
                            next(gen)
                    else:
                        next(gen)
        advance(warm, gens, streams)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t1 = time.perf_counter()
        startup_s += t1 - t0
        advance(steps, gens, streams)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        timed_s += time.perf_counter() - t1
        fl_used = dict(trainers[0].fl)
        del trainers, gens, streams, tr
    images = len(jobs) * steps * protocol.effective_batch_size
    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None
    return {"peak_gib": peak, "images_per_s": images / timed_s, "timed_seconds": timed_s, "startup_seconds": startup_s,
            "startup_seconds_per_arch": startup_s / len(jobs), "trainings": len(jobs), "in_flight": k,
            "fused": per,
            "flags": fl_used}


# ------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="CPU smoke check of the script (not the GPU measurement)")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="dataset root")
    ap.add_argument("--archs", type=int, default=8)
    ap.add_argument("--warm", type=int, default=6, help="untimed steps per training (start-up)")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per training")
    ap.add_argument("--concurrency", default="2,4,8", help="K values of the in-flight rows")
    ap.add_argument("--fuse", default="8,16,32", help="G values of the horizontal-fusion rows (empty: none)")
    ap.add_argument("--loader-workers", type=int, default=None)
    ap.add_argument("--parity-epochs", type=int, default=4)
    ap.add_argument("--parity-train", type=int, default=10000)
    ap.add_argument("--parity-seeds", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    cuda = torch.cuda.is_available()
    if not args.tiny and not cuda:
        print("no CUDA device: the benchmark measures a GPU; run with --tiny for a CPU smoke check",
              file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.tiny else "cuda")
    mode = "cpu-smoke" if args.tiny else "gpu"
    protocol = get_protocol("paper-search")
    n_archs, warm, steps = args.archs, args.warm, args.steps
    ks = [int(k) for k in args.concurrency.split(",") if k.strip()]
    fuses = [int(g) for g in args.fuse.split(",") if g.strip()]
    parity_epochs, parity_train, parity_seeds = args.parity_epochs, args.parity_train, args.parity_seeds
    if args.tiny:
        protocol = protocol.replace(num_cells=1, filters=8, batch_size=16)
        n_archs, warm, steps, ks = 2, 2, 3, [2]
        fuses = [2] if fuses else []
        parity_epochs, parity_train, parity_seeds = 1, 64, 1
        torch.set_num_threads(1)
    loader_workers = args.loader_workers if args.loader_workers is not None else (
        0 if args.tiny else min(8, os.cpu_count() or 1))
    out = Path(args.out) if args.out else RESULTS / ("harness_bench_cpu_smoke.json" if args.tiny
                                                     else "harness_bench.json")
    t0 = time.perf_counter()
    task = nasbench_xfer.datasets.load_task("cifar10", args.data, download=False)
    if args.tiny:
        task = task.subset(train=256, val=64, test=64, seed=0)
    load_s = time.perf_counter() - t0
    space = NASNetSpace(protocol.num_blocks)
    # the first n_archs are the architectures of every unfused row; fused rows take more
    pool = space.sample_many(max([n_archs] + [2 * g for g in fuses]), np.random.default_rng(0))
    archs = pool[:n_archs]
    gpu = torch.cuda.get_device_name(0) if cuda and not args.tiny else None
    print(f"[{mode}] {len(archs)} archs, {protocol.name} (N={protocol.num_cells}, F={protocol.filters}, "
          f"batch {protocol.effective_batch_size}), cifar10 {task.sizes()}, {device_name(device)}", flush=True)

    def release() -> None:
        gc.collect()
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    # accuracy parity first: a failed capture later (out of memory at a large K) must not
    # leave the device's random generator mid-capture for the reference's training
    pp = protocol.replace(name="parity", epochs=parity_epochs, train_images=parity_train)
    ptask = task.subset(train=parity_train, val=None, test=None, seed=0)
    parity_arch = archs[0]
    acc_ref = [reference_accuracy(parity_arch, ptask, pp, s, device, loader_workers) for s in range(parity_seeds)]
    parity_flags = SpeedFlags()  # the defaults: fp32, CUDA graph, cuDNN autotuning
    recs = train_concurrent([parity_arch] * parity_seeds, ptask, pp, list(range(parity_seeds)), device,
                            concurrency=parity_seeds, flags=parity_flags)
    acc_har = [{"seed": r["seed"], "val_acc": r["val_acc"], "val_curve": r["val_curve"], "status": r["status"],
                "flags": r.get("flags")} for r in recs]
    acc_fus = None
    if fuses:
        recs = train_concurrent([parity_arch] * parity_seeds, ptask, pp, list(range(parity_seeds)), device,
                                concurrency=1, flags=SpeedFlags(fuse=parity_seeds))
        acc_fus = [{"seed": r["seed"], "val_acc": r["val_acc"], "val_curve": r["val_curve"], "status": r["status"],
                    "flags": r.get("flags")} for r in recs]
    for i, (a, b) in enumerate(zip(acc_ref, acc_har)):
        fz = f", fused val {acc_fus[i]['val_acc']:.4f}" if acc_fus else ""
        print(f"  parity seed {a['seed']}: reference val {a['val_acc']:.4f}, harness val {b['val_acc']:.4f}{fz}",
              flush=True)
    release()

    ref = reference_throughput(archs, task, protocol, device, loader_workers, warm, steps)
    print(f"  (a) reference: {ref['images_per_s']:,.0f} images/s", flush=True)
    release()
    fp32 = dict(bf16=False, channels_last=False)
    bf16 = dict(bf16=True, channels_last=True)
    ladder = [
        ("engine, data on GPU, tensor augmentation (fp32 eager)", SpeedFlags(**fp32, cudnn_benchmark=False,
                                                                              graph_step=False), 1),
        ("+ cuDNN autotuning", SpeedFlags(**fp32, graph_step=False), 1),
        ("+ whole step as one CUDA graph", SpeedFlags(**fp32, graph_step=True), 1),
    ] + [(f"+ {k} architectures in flight (streams)", SpeedFlags(**fp32, graph_step=True), k) for k in ks] + [
        ("(side row, changes accuracy) bf16 autocast + channels_last, eager", SpeedFlags(**bf16, graph_step=False), 1),
        (f"(side row, changes accuracy) bf16 + channels_last, graph, {max(ks)} in flight",
         SpeedFlags(**bf16, graph_step=True), max(ks))] + [
        (f"+ horizontal fusion: {g} architectures as one network (graph)",
         SpeedFlags(**fp32, graph_step=True, fuse=g), 1)
        for g in fuses] + ([(f"+ horizontal fusion: {max(fuses)} per network, 2 networks in flight",
                             SpeedFlags(**fp32, graph_step=True, fuse=max(fuses)), 2)] if fuses else [])
    rows = []
    k_failed = False
    for name, flags, k in ladder:
        if k > 1 and k_failed:
            rows.append({"feature": name, "error": "skipped: a smaller K failed", "images_per_s": None,
                         "speedup": None})
            continue
        try:
            r = harness_throughput(archs if flags.fuse == 1 else pool, task, protocol, device, flags, k, warm, steps)
            r["speedup"] = r["images_per_s"] / ref["images_per_s"]
        except Exception as exc:  # noqa: BLE001 - a failed row is reported, not dropped
            r = {"error": f"{type(exc).__name__}: {exc}"[:300], "images_per_s": None, "speedup": None}
            k_failed = k_failed or k > 1
        release()
        r["feature"] = name
        r["flags_in"] = {k: getattr(flags, k)
                         for k in ("bf16", "channels_last", "graph_step", "cudnn_benchmark", "fuse")}
        rows.append(r)
        ips = r["images_per_s"]
        print(f"  (b) {name}: " + (f"{ips:,.0f} images/s ({r['speedup']:.2f}x), start-up "
                                   f"{r['startup_seconds_per_arch']:.2f} s/arch" if ips else r["error"]),
              flush=True)
    ok = [r for r in rows if r["images_per_s"] and not r["flags_in"]["bf16"]]  # (c): fp32 rows only
    best = max(ok, key=lambda r: r["images_per_s"])
    print(f"  (c) best: {best['feature']}", flush=True)

    def spread(v):
        return statistics.stdev(v) if len(v) > 1 else None
    ref_acc = [a["val_acc"] for a in acc_ref]
    har_acc = [b["val_acc"] for b in acc_har]
    fus_acc = [b["val_acc"] for b in acc_fus] if acc_fus else None
    per_hour = lambda ips: ips / (45000 * 100) * 3600  # noqa: E731
    result = {
        "mode": mode,
        "note": ("CPU smoke run of the benchmark script (--tiny): NOT the GPU measurement" if args.tiny else
                 "GPU measurement, one process: reference loop vs the harness, same architectures"),
        "gpu_name": gpu,
        "device": device_name(device),
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "protocol": protocol.to_dict(),
        "archs": [space.to_string(a) for a in archs],
        "warm_steps": warm, "timed_steps": steps,
        "task": {"name": "cifar10", "sizes": task.sizes(), "load_seconds": load_s},
        "loader_workers": loader_workers,
        "ref_images_per_s": ref["images_per_s"],
        "harness_images_per_s": best["images_per_s"],
        "speedup": best["images_per_s"] / ref["images_per_s"],
        "best_configuration": best["feature"],
        "ref_archs_per_gpu_hour_paper_search": per_hour(ref["images_per_s"]),
        "harness_archs_per_gpu_hour_paper_search": per_hour(best["images_per_s"]),
        "startup_seconds_per_arch": {"reference": ref["startup_seconds_per_arch"],
                                     "harness_best": best["startup_seconds_per_arch"]},
        "reference": ref,
        "features": rows,
        "accuracies": {
            "protocol": pp.to_dict(), "arch": space.to_string(parity_arch),
            "reference": acc_ref, "harness": acc_har,
            "reference_mean": float(np.mean(ref_acc)), "harness_mean": float(np.mean(har_acc)),
            "reference_seed_std": spread(ref_acc), "harness_seed_std": spread(har_acc),
            "difference_of_means": float(np.mean(har_acc) - np.mean(ref_acc)),
            "harness_fused": acc_fus,
            "harness_fused_mean": float(np.mean(fus_acc)) if fus_acc else None,
            "harness_fused_seed_std": spread(fus_acc) if fus_acc else None,
            "best_parity": "harness_fused" if best["flags_in"].get("fuse", 1) > 1 else "harness",
        },
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"\n{mode}: {gpu or device_name(device)}, torch {torch.__version__}")
    w = max(len(r["feature"]) for r in rows)
    print(f"  {'configuration':<{w}}  {'images/s':>10}  {'speed-up':>8}  {'start-up s/arch':>15}")
    print(f"  {'(a) reference loop':<{w}}  {ref['images_per_s']:>10,.0f}  {1.0:>7.2f}x  "
          f"{ref['startup_seconds_per_arch']:>15.2f}")
    for r in rows:
        if r["images_per_s"]:
            print(f"  {r['feature']:<{w}}  {r['images_per_s']:>10,.0f}  {r['speedup']:>7.2f}x  "
                  f"{r['startup_seconds_per_arch']:>15.2f}")
        else:
            print(f"  {r['feature']:<{w}}  failed: {r['error']}")
    acc = result["accuracies"]
    print(f"  accuracy after {pp.epochs} epochs on {parity_train} images ({parity_seeds} seeds): reference "
          f"{acc['reference_mean']:.4f} (sd {acc['reference_seed_std']}), harness {acc['harness_mean']:.4f} "
          f"(sd {acc['harness_seed_std']})" + (f", fused {acc['harness_fused_mean']:.4f} "
                                                f"(sd {acc['harness_fused_seed_std']})" if acc_fus else ""))
    print(f"wrote {out}")
    if args.tiny:
        print("NOTE: CPU smoke run, not the GPU measurement.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
