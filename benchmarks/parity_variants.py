"""Which speed feature moves accuracy: the harness's parity run under each flag set.

Trains the parity architecture of ``harness_bench.py`` (the first of its 8, the same
short protocol: paper-search cells and batch, ``--epochs`` epochs on ``--train``
CIFAR-10 images) with seeds 0..``--seeds``-1 under: eager fp32, eager bf16 +
channels_last, CUDA graph fp32, CUDA graph bf16 + channels_last.  Prints validation
accuracy per variant and seed, writes ``benchmarks/results/parity_variants.json``.
Needs a GPU (the graph variants); ``harness_bench.py`` gives the reference loop's
accuracy on the same protocol.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import nasbench_xfer.datasets  # noqa: E402
from nasbench_xfer.harness.protocols import get_protocol  # noqa: E402
from nasbench_xfer.harness.train import SpeedFlags, device_name, train_concurrent  # noqa: E402
from nasbench_xfer.space.nasnet import NASNetSpace  # noqa: E402

VARIANTS = {
    "eager fp32": SpeedFlags(bf16=False, channels_last=False, graph_step=False),
    "eager bf16 + channels_last": SpeedFlags(bf16=True, channels_last=True, graph_step=False),
    "graph fp32": SpeedFlags(bf16=False, channels_last=False, graph_step=True),
    "graph bf16 + channels_last": SpeedFlags(bf16=True, channels_last=True, graph_step=True),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--train", type=int, default=10000)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "parity_variants.json"))
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: the graph variants need a GPU", file=sys.stderr)
        return 2
    base = get_protocol("paper-search")
    pp = base.replace(name="parity", epochs=args.epochs, train_images=args.train)
    task = nasbench_xfer.datasets.load_task("cifar10", args.data, download=False)
    task = task.subset(train=args.train, val=None, test=None, seed=0)
    arch = NASNetSpace(base.num_blocks).sample_many(8, np.random.default_rng(0))[0]
    seeds = list(range(args.seeds))
    rows = []
    for name, flags in VARIANTS.items():
        t0 = time.perf_counter()
        recs = train_concurrent([arch] * len(seeds), task, pp, seeds, "cuda", concurrency=len(seeds), flags=flags)
        accs = [r["val_acc"] for r in recs]
        rows.append({"variant": name, "val_acc": accs, "mean": float(np.mean(accs)),
                     "sd": statistics.stdev(accs) if len(accs) > 1 else None,
                     "flags": recs[0].get("flags"), "status": [r["status"] for r in recs],
                     "seconds": time.perf_counter() - t0})
        print(f"  {name:<28} val {np.mean(accs):.4f}  seeds {' '.join(f'{a:.4f}' for a in accs)}", flush=True)
    res = {"gpu_name": torch.cuda.get_device_name(0), "device": device_name("cuda"),
           "torch_version": torch.__version__, "protocol": pp.to_dict(), "seeds": seeds, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
