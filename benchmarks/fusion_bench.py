"""What horizontal fusion changes in one training step, counted on any device.

For K architectures of the NASNet space at the paper's search setting (B=5, N=3,
F=32, CIFAR-10 shapes), one training step (forward, loss, backward, per-network
gradient clipping, SGD) is run (1) as K separate networks, one after another, the
harness's step, and (2) as one :class:`~nasbench_xfer.harness.fused.FusedNetwork`
of the K, side by side in the same process.  Counted for each, with a
``TorchDispatchMode`` that sees every ATen operation the step dispatches:

* **operations** per step (each one is at least one kernel launch on a GPU; the
  quantity the CUDA-graph and fusion routes attack: the H100 reference loop is bound
  by launches and host work);
* **bytes written** by those operations (the outputs' sizes: a proxy of the extra
  memory traffic the channel gathers of fusion add);
* the **wall time** on this device (CPU: not the GPU result; reported as a ratio to
  the separate networks measured in the same call, median of ``--repeats``).

Writes ``benchmarks/results/fusion_bench.json`` and prints a table.  The GPU
throughput of fusion is measured by ``harness_bench.py`` (its fused rows).

Usage::

    python benchmarks/fusion_bench.py [--ks 2,4,8,16] [--batch 16] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from nasbench_xfer.harness.engine import sgd_update_  # noqa: E402
from nasbench_xfer.harness.fused import FusedNetwork  # noqa: E402
from nasbench_xfer.harness.network import NetConfig, Network  # noqa: E402
from nasbench_xfer.harness.protocols import get_protocol  # noqa: E402
from nasbench_xfer.space.nasnet import NASNetSpace  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


VIEWS = {"detach", "view", "_unsafe_view", "t", "expand", "unsqueeze", "squeeze", "reshape", "alias", "slice",
         "select", "narrow", "split", "split_with_sizes", "permute", "transpose", "as_strided", "unbind", "lift_fresh"}


class Counter(TorchDispatchMode):
    """Counts the ATen operations dispatched, and the bytes of the tensors they return."""

    def __init__(self):
        super().__init__()
        self.ops = 0
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func._schema.name.split("::")[-1] in VIEWS:
            return out  # views launch nothing and write nothing
        self.ops += 1
        for t in (out if isinstance(out, (list, tuple)) else [out]):
            if isinstance(t, torch.Tensor):
                self.bytes += t.numel() * t.element_size()
        return out


def _step_separate(nets, bufs, x, y, clip, lr):
    for k, net in enumerate(nets):
        params = list(net.parameters())
        for p in params:
            p.grad = None
        F.cross_entropy(net(x[:, k]), y[:, k]).backward()
        live = [i for i, p in enumerate(params) if p.grad is not None]  # as the engine: a dead cell has none
        torch.nn.utils.clip_grad_norm_([params[i] for i in live], clip, foreach=True)
        sgd_update_([params[i] for i in live], [params[i].grad for i in live], [bufs[k][i] for i in live],
                    lr, 0.9, 5e-4)


def _step_fused(fused, bufs, x, y, clip, lr):
    """FusedTrainer's step: gradients and parameters in one flat buffer each."""
    fused.flat_grad.zero_()
    logits = fused(x)
    B, K, c = logits.shape
    F.cross_entropy(logits.reshape(B * K, c), y.reshape(-1), reduction="none").reshape(B, K).mean(0).sum().backward()
    fused.clip_grad_norm_(clip)
    sgd_update_([fused.flat_param], [fused.flat_grad], bufs, lr, 0.9, 5e-4)


def measure(K: int, batch: int, repeats: int, seed: int) -> dict:
    p = get_protocol("paper-search")
    cfg = NetConfig(num_cells=p.num_cells, filters=p.filters, num_classes=10, drop_path=p.drop_path)
    archs = NASNetSpace(p.num_blocks).sample_many(K, np.random.default_rng(seed))
    nets = []
    for i, a in enumerate(archs):
        torch.manual_seed(i)
        nets.append(Network(a, cfg))
    fused = FusedNetwork(nets)
    groups = [[len(pos.packed) for pos in cell.slots] for cell in fused.cells]
    distinct = float(np.mean([g for cell in groups for g in cell]))
    sep_bufs = [[torch.zeros_like(q) for q in n.parameters()] for n in nets]
    fused.flatten_()
    fus_bufs = [torch.zeros_like(fused.flat_param)]
    x = torch.randn(batch, K, 3, 32, 32)
    y = torch.randint(0, 10, (batch, K))
    lr = torch.tensor(0.01)
    row: dict = {"K": K, "batch": batch, "distinct_ops_per_position": distinct}
    for name, fn, args in (("separate", _step_separate, (nets, sep_bufs)), ("fused", _step_fused, (fused, fus_bufs))):
        fn(*args, x, y, p.grad_clip, lr)  # warm-up (allocator, first-call costs)
        with Counter() as c:
            fn(*args, x, y, p.grad_clip, lr)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(*args, x, y, p.grad_clip, lr)
            times.append(time.perf_counter() - t0)
        row[name] = {"ops_per_step": c.ops, "bytes_written_per_step": c.bytes,
                     "seconds_per_step": statistics.median(times)}
    s, f = row["separate"], row["fused"]
    row["ops_ratio"] = s["ops_per_step"] / f["ops_per_step"]
    row["bytes_ratio_fused_over_separate"] = f["bytes_written_per_step"] / s["bytes_written_per_step"]
    row["time_ratio_separate_over_fused"] = s["seconds_per_step"] / f["seconds_per_step"]
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ks", default="2,4,8,16")
    ap.add_argument("--batch", type=int, default=16, help="images per network per step (counts do not depend on it)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "fusion_bench.json"))
    args = ap.parse_args(argv)
    rows = []
    for K in [int(k) for k in args.ks.split(",")]:
        rows.append(measure(K, args.batch, args.repeats, args.seed))
        r = rows[-1]
        print(f"K={K}: {r['separate']['ops_per_step']} -> {r['fused']['ops_per_step']} operations "
              f"({r['ops_ratio']:.2f}x fewer), bytes written x{r['bytes_ratio_fused_over_separate']:.2f}, "
              f"time {r['time_ratio_separate_over_fused']:.2f}x", flush=True)
    result = {
        "what": "one training step of K NASNet-space networks (paper-search: B=5, N=3, F=32, CIFAR-10 shapes), "
                "separately vs as one fused network; operations = ATen operations dispatched (>= kernel launches "
                "on a GPU), bytes = bytes of their outputs, time = this device's wall time (median)",
        "device": f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "repeats": args.repeats, "batch": args.batch, "seed": args.seed,
        "rows": rows,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'K':>3}  {'distinct ops/pos':>16}  {'ops separate':>12}  {'ops fused':>9}  {'ratio':>6}  "
          f"{'bytes fused/sep':>15}  {'CPU time sep/fused':>18}")
    for r in rows:
        print(f"{r['K']:>3}  {r['distinct_ops_per_position']:>16.2f}  {r['separate']['ops_per_step']:>12}  "
              f"{r['fused']['ops_per_step']:>9}  {r['ops_ratio']:>5.2f}x  {r['bytes_ratio_fused_over_separate']:>15.2f}"
              f"  {r['time_ratio_separate_over_fused']:>17.2f}x")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
