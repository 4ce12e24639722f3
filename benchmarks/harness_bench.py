"""Throughput of the training harness against a straightforward reference loop.

On a GPU, in one call, the same architectures are trained under the same
protocol twice:

(a) **reference**: fp32, images decoded to PIL and augmented by torchvision
    transforms (RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor,
    Normalize) in a ``DataLoader``, one architecture after the other, a
    ``loss.item()`` per step: the loop of most NAS code bases;
(b) **harness**: :func:`nasbench_xfer.harness.train.train_many`: data resident on
    the GPU, batched tensor augmentation, bf16 autocast, channels_last, several
    architectures concurrently in ``--workers`` processes.

It reports images/s (training images processed per second of wall time of the
whole phase, evaluation included), architectures per GPU-hour, the final
validation/test accuracies of both (the harness must not buy its speed with
accuracy) and the GPU name, prints a table and writes
``benchmarks/results/harness_bench.json`` (fields ``speedup``,
``ref_images_per_s``, ``harness_images_per_s``, ``accuracies``, ``gpu_name``, ...).

``--tiny`` is a CPU smoke check of the script itself (smoke protocol, two
architectures, a few hundred images); its JSON says ``"mode": "cpu-smoke"`` and
goes to ``benchmarks/results/harness_bench_cpu_smoke.json`` so that it can
never be mistaken for the GPU measurement.

Usage::

    python benchmarks/harness_bench.py                     # GPU: proxy-10ep, 4 archs, 4 workers
    python benchmarks/harness_bench.py --archs 8 --workers 8 --compile
    python benchmarks/harness_bench.py --tiny              # CPU smoke check
"""
from __future__ import annotations

import argparse
import json
import os
import platform
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
from nasbench_xfer.harness.train import SpeedFlags, build_for_task, device_name, train_many  # noqa: E402
from nasbench_xfer.space.nasnet import NASNetSpace, named_arch  # noqa: E402

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


def reference_train(arch, task, protocol, seed: int, device: torch.device, loader_workers: int) -> dict:
    """The straightforward loop (fp32, torchvision transforms in a DataLoader)."""
    import torchvision.transforms as T
    torch.manual_seed(seed)
    pre = task.preprocessing
    mean = [m / 255 for m in pre["mean"]]
    std = [s / 255 for s in pre["std"]]
    size = task.image_size
    train_tf = T.Compose([T.RandomCrop(size, padding=protocol.pad), T.RandomHorizontalFlip(),
                          T.ToTensor(), T.Normalize(mean, std)])
    eval_tf = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
    bs = protocol.effective_batch_size
    kw = dict(num_workers=loader_workers, pin_memory=device.type == "cuda",
              persistent_workers=loader_workers > 0)
    train_dl = torch.utils.data.DataLoader(_ArrayDataset(task.train_x, task.train_y, train_tf), bs,
                                           shuffle=True, drop_last=len(task.train_y) >= bs, **kw)
    val_dl = torch.utils.data.DataLoader(_ArrayDataset(task.val_x, task.val_y, eval_tf),
                                         protocol.eval_batch_size, **kw)
    test_dl = torch.utils.data.DataLoader(_ArrayDataset(task.test_x, task.test_y, eval_tf),
                                          protocol.eval_batch_size, **kw)
    model = build_for_task(arch, protocol, task).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=protocol.lr_max, momentum=protocol.momentum,
                          weight_decay=protocol.weight_decay)
    total = protocol.epochs * len(train_dl)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1), eta_min=protocol.lr_min)

    def evaluate(dl) -> float:
        model.eval()
        correct = n = 0
        with torch.no_grad():
            for x, y in dl:
                x, y = x.to(device), y.to(device)
                correct += (model(x).argmax(1) == y).sum().item()
                n += len(y)
        return correct / max(n, 1)

    step, images, curve = 0, 0, []
    for epoch in range(protocol.epochs):
        model.train()
        for x, y in train_dl:
            x, y = x.to(device), y.to(device)
            model.set_drop_path_progress(step / total)
            out = model(x)
            if isinstance(out, tuple):
                loss = F.cross_entropy(out[0], y) + protocol.aux_weight * F.cross_entropy(out[1], y)
            else:
                loss = F.cross_entropy(out, y)
            opt.zero_grad()
            loss.backward()
            if protocol.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), protocol.grad_clip)
            opt.step()
            sched.step()
            _ = loss.item()  # logging, as reference loops do
            step += 1
            images += len(y)
        curve.append(evaluate(val_dl))
    return {"val_acc": curve[-1], "test_acc": evaluate(test_dl), "val_curve": curve, "images": images}


# ------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="CPU smoke check (not the GPU measurement)")
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="dataset root")
    ap.add_argument("--protocol", default=None, help="default: proxy-10ep (GPU), smoke (--tiny)")
    ap.add_argument("--archs", type=int, default=None, help="number of architectures (default 4, tiny 2)")
    ap.add_argument("--workers", type=int, default=None, help="concurrent harness processes")
    ap.add_argument("--loader-workers", type=int, default=None, help="DataLoader workers of the reference")
    ap.add_argument("--compile", action="store_true", help="harness: torch.compile")
    ap.add_argument("--cuda-graphs", action="store_true", help="harness: CUDA graphs (compile reduce-overhead)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    cuda = torch.cuda.is_available()
    if not args.tiny and not cuda:
        print("no CUDA device: the benchmark measures a GPU; run with --tiny for a CPU smoke check",
              file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.tiny else "cuda")
    mode = "cpu-smoke" if args.tiny else "gpu"
    protocol = get_protocol(args.protocol or ("smoke" if args.tiny else "proxy-10ep"))
    n_archs = args.archs or (2 if args.tiny else 4)
    workers = args.workers or (2 if args.tiny else min(n_archs, 4))
    loader_workers = args.loader_workers if args.loader_workers is not None else (
        0 if args.tiny else min(8, os.cpu_count() or 1))
    if args.tiny:
        torch.set_num_threads(1)
    out = Path(args.out) if args.out else RESULTS / ("harness_bench_cpu_smoke.json" if args.tiny
                                                     else "harness_bench.json")

    ds = nasbench_xfer.datasets
    t0 = time.perf_counter()
    task = ds.load_task(args.dataset, args.data, download=False)
    load_s = time.perf_counter() - t0
    task = task.subset(train=protocol.train_images, val=protocol.val_images, test=protocol.test_images,
                       seed=0)
    protocol_full = protocol.replace(train_images=None, val_images=None, test_images=None)
    space = NASNetSpace(protocol.num_blocks)
    archs = [named_arch("xfernasnet")] + space.sample_many(n_archs - 1, np.random.default_rng(args.seed))
    gpu = torch.cuda.get_device_name(0) if cuda and not args.tiny else None
    print(f"[{mode}] {len(archs)} archs, protocol {protocol.name}, task {task.name} {task.sizes()}, "
          f"device {device_name(device)}")

    # (a) reference: one at a time
    t0 = time.perf_counter()
    ref = []
    for i, a in enumerate(archs):
        r = reference_train(a, task, protocol_full, args.seed + i, device, loader_workers)
        ref.append(r)
        print(f"  reference arch {i}: val {r['val_acc']:.4f} test {r['test_acc']:.4f}")
    if cuda and not args.tiny:
        torch.cuda.synchronize()
    ref_s = time.perf_counter() - t0
    ref_images = sum(r["images"] for r in ref)

    # (b) harness: data on device, bf16, channels_last, concurrent processes
    flags = SpeedFlags(compile=args.compile, cuda_graphs=args.cuda_graphs,
                       threads=1 if args.tiny else None)
    t0 = time.perf_counter()
    recs = train_many(archs, task, protocol_full, [args.seed + i for i in range(len(archs))], device,
                      workers=workers, flags=flags, threads_per_worker=1 if args.tiny else None)
    har_s = time.perf_counter() - t0
    for i, r in enumerate(recs):
        print(f"  harness   arch {i}: val {r['val_acc']:.4f} test {r['test_acc']:.4f} [{r['status']}]")
    har_images = sum(r["data_sizes"]["train"] // protocol_full.effective_batch_size
                     * protocol_full.effective_batch_size * r["epochs_done"]
                     if r["data_sizes"]["train"] >= protocol_full.effective_batch_size
                     else r["data_sizes"]["train"] * r["epochs_done"] for r in recs)

    ref_ips = ref_images / ref_s
    har_ips = har_images / har_s
    result = {
        "mode": mode,
        "note": ("CPU smoke run of the benchmark script (--tiny): NOT the GPU measurement; "
                 "numbers only show that both paths run") if args.tiny else
                "GPU measurement: reference loop vs harness, same archs and protocol",
        "gpu_name": gpu,
        "device": device_name(device),
        "speedup": har_ips / ref_ips,
        "ref_images_per_s": ref_ips,
        "harness_images_per_s": har_ips,
        "ref_archs_per_gpu_hour": len(archs) / ref_s * 3600,
        "harness_archs_per_gpu_hour": len(archs) / har_s * 3600,
        "ref_seconds": ref_s,
        "harness_seconds": har_s,
        "harness_train_images_per_s_per_process": [r["images_per_second"] for r in recs],
        "accuracies": {
            "reference": [{"val": r["val_acc"], "test": r["test_acc"]} for r in ref],
            "harness": [{"val": r["val_acc"], "test": r["test_acc"], "status": r["status"]} for r in recs],
        },
        "archs": [space.to_string(a) for a in archs],
        "protocol": protocol.to_dict(),
        "task": {"name": task.name, "sizes": task.sizes(), "load_seconds": load_s},
        "workers": workers,
        "loader_workers": loader_workers,
        "harness_flags": recs[0]["flags"] if recs else None,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    rows = [("", "reference", "harness"),
            ("images/s", f"{ref_ips:,.0f}", f"{har_ips:,.0f}"),
            ("archs / GPU-hour" if not args.tiny else "archs / hour (CPU)",
             f"{result['ref_archs_per_gpu_hour']:,.1f}", f"{result['harness_archs_per_gpu_hour']:,.1f}"),
            ("wall seconds", f"{ref_s:,.1f}", f"{har_s:,.1f}"),
            ("mean val acc", f"{np.mean([r['val_acc'] for r in ref]):.4f}",
             f"{np.nanmean([r['val_acc'] for r in recs]):.4f}"),
            ("mean test acc", f"{np.mean([r['test_acc'] for r in ref]):.4f}",
             f"{np.nanmean([r['test_acc'] for r in recs]):.4f}")]
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    print(f"\n{mode}: {gpu or device_name(device)}; speedup {result['speedup']:.2f}x")
    for r in rows:
        print(f"  {r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}")
    print(f"wrote {out}")
    if args.tiny:
        print("NOTE: CPU smoke run, not the GPU measurement.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
