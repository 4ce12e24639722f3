"""Ablation benchmark: wall time of the paper's default grid (4 source sizes x 7 target sizes x
10 splits = 280 predictor fits) on one target, on the CPU and, when present, on a CUDA GPU.

Run:  python benchmarks/ablation_bench.py --store runs/transnas.h5 --target class_object
      [--jobs 2] [--devices cpu,cuda] [--splits 10] [--keep DIR]
Writes benchmarks/results/ablation_bench.json (``cpu_grid_seconds``, ``gpu_grid_seconds``,
seconds per fit, the machine) and prints a table.  ``--splits 1`` gives a quick reading
(28 fits); the JSON records which grid was timed.  ``--keep DIR`` keeps the timed grid of
the first device as DIR/runs.jsonl: the same file ``nasbench-xfer ablation -o DIR`` with
default options writes (when that device is the predictor's default), so running that
command afterwards finds every fit done and only writes the table and the plots.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def time_grid(store: str, target: str, device: str, jobs: int, splits: int, keep: str | None = None) -> dict:
    import torch

    from nasbench_xfer.evaluate.ablation import AblationSpec, run_ablation
    from nasbench_xfer.store import Store

    with Store.open(store) as st:
        sources = [t for t in st.tasks if t != target]
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    spec = AblationSpec(store=store, target=target, sources=sources, splits=splits,
                        predictor_options={} if device == default_device else {"device": device})
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(keep) / "runs.jsonl" if keep else Path(tmp) / "runs.jsonl"
        if results.exists():
            raise SystemExit(f"{results} exists: the bench times a whole grid, give an empty folder")
        t0 = time.perf_counter()
        runs = run_ablation(spec, results, jobs=jobs, progress=True)
        wall = time.perf_counter() - t0
    fitted = runs[runs["status"] == "ok"]
    return {"device": device, "jobs": jobs, "fits": int(len(runs)), "fitted": int(len(fitted)),
            "grid_seconds": wall, "wall_seconds_per_fit": wall / len(runs),
            "mean_fit_seconds": float(fitted["fit_seconds"].mean()),
            "mean_pearson_zero_target_150_source": float(
                runs[(runs.source_size == max(spec.source_sizes)) & (runs.target_size == 0)]["pearson"].mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--devices", default="cpu,cuda")
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--out", default=str(HERE / "results" / "ablation_bench.json"))
    ap.add_argument("--keep", default=None, help="Keep the first device's timed grid as KEEP/runs.jsonl.")
    args = ap.parse_args()
    import torch

    report = {"store": args.store, "target": args.target,
              "grid": f"4 source sizes x 7 target sizes x {args.splits} splits",
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
                         f"torch {torch.__version__}",
              "cpu_grid_seconds": None, "gpu_grid_seconds": None, "runs": []}
    for device in args.devices.split(","):
        if device == "cuda" and not torch.cuda.is_available():
            print("no CUDA device: GPU grid not timed")
            continue
        r = time_grid(args.store, args.target, device, args.jobs, args.splits, keep=args.keep)
        args.keep = None
        if device == "cuda":
            r["gpu_name"] = torch.cuda.get_device_name(0)
        report["runs"].append(r)
        report["cpu_grid_seconds" if device == "cpu" else "gpu_grid_seconds"] = r["grid_seconds"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nablation grid on {args.target} ({report['grid']}), {report['machine']}")
    print(f"{'device':8s} {'jobs':>4s} {'fits':>5s} {'grid s':>9s} {'s/fit wall':>11s} {'s/fit':>7s}")
    for r in report["runs"]:
        print(f"{r['device']:8s} {r['jobs']:4d} {r['fits']:5d} {r['grid_seconds']:9.1f} "
              f"{r['wall_seconds_per_fit']:11.2f} {r['mean_fit_seconds']:7.2f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
