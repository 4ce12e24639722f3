"""Fit time of the transfer predictor at the paper's scale.

Fits :class:`nasbench_xfer.predictor.TransferPredictor` with its default
configuration (the paper's model size: embedding 32, LSTM encoder/decoder 96)
on 800 source evaluations (4 tasks x 200 random NASNet architectures, as in
section 4.2) plus 150 target evaluations, then reports the fit time on the
CPU and, when CUDA is available, on the GPU, with the held-out ranking
quality and reconstruction accuracy of the fitted model.

The scores are SYNTHETIC (no real training involved): every task scores an
architecture by summing per-operation values shared by all tasks plus a
task-specific per-operation term, on a task-specific scale (accuracy-like in
percent for some tasks, in [0, 1] for others).

Writes ``benchmarks/results/predictor_bench.json`` (``cpu_fit_seconds``,
``gpu_fit_seconds`` - null when no GPU is present - and details) and prints a
table.  Usage::

    python benchmarks/predictor_bench.py [--device auto|cpu|cuda] [--threads 2] [--out PATH]
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
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nasbench_xfer.predictor import PredictorConfig, TransferPredictor  # noqa: E402
from nasbench_xfer.space import OPS, NASNetSpace  # noqa: E402

N_SOURCES, N_PER_SOURCE, N_TARGET, N_HELDOUT = 4, 200, 150, 500


def synthetic_scores(space: NASNetSpace, archs: list, task: int) -> np.ndarray:
    """Shared per-operation values + a task-specific per-operation term, on a task scale."""
    shared = np.random.default_rng(12345).normal(size=len(OPS))
    own = np.random.default_rng(1000 + task).normal(size=len(OPS))
    off = space.num_blocks + 2
    tok = np.array([space.encode(a) for a in archs])[:, 1::2] - off  # operation tokens
    s = shared[tok].sum(1) + 0.5 * own[tok].sum(1)
    return 80.0 + 1.5 * s if task % 2 == 0 else 0.7 + 0.01 * s


def run(device: str) -> dict:
    space = NASNetSpace()
    rng = np.random.default_rng(0)
    archs = space.sample_many(N_SOURCES * N_PER_SOURCE + N_TARGET + N_HELDOUT, rng)
    history = {}
    for t in range(N_SOURCES):
        a = archs[t * N_PER_SOURCE:(t + 1) * N_PER_SOURCE]
        history[f"source{t}"] = (a, synthetic_scores(space, a, t))
    k = N_SOURCES * N_PER_SOURCE
    target = archs[k:k + N_TARGET]
    history["target"] = (target, synthetic_scores(space, target, N_SOURCES))
    held = archs[k + N_TARGET:]
    pred = TransferPredictor(space, PredictorConfig(device=device))
    t0, c0 = time.perf_counter(), time.process_time()
    pred.fit(history, target="target")
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    yhat = pred.predict("target", held)
    predict_s = time.perf_counter() - t0
    starts = [target[i] for i in np.argsort(-history["target"][1])[:20]]
    t0 = time.perf_counter()
    props = pred.propose("target", starts, n=20, exclude=archs[:k + N_TARGET])
    propose_s = time.perf_counter() - t0
    return {
        "device": str(pred.device),
        "fit_seconds": round(fit_s, 2),
        "fit_process_cpu_seconds": round(fit_cpu, 2),
        "steps": pred.train_steps,
        "epochs": len(pred.train_log),
        "final_loss": [round(v, 5) for v in pred.train_log[-1]],
        "heldout_spearman": round(float(spearmanr(yhat, synthetic_scores(space, held, N_SOURCES))[0]), 4),
        "heldout_reconstruction": round(pred.reconstruction_accuracy(held), 4),
        "predict_seconds_500": round(predict_s, 3),
        "propose_seconds_20": round(propose_s, 3),
        "proposals": len(props),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                    help="auto: CPU, and the GPU too when CUDA is available")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (this machine: 2 cores)")
    ap.add_argument("--repeats", type=int, default=1, help="CPU fits; the fastest is reported")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "predictor_bench.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    cpu = None
    if args.device in ("auto", "cpu"):  # the fastest of --repeats fits (the machine is shared)
        cpu = min((run("cpu") for _ in range(args.repeats)), key=lambda r: r["fit_seconds"])
    gpu = None
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            ap.error("--device cuda but CUDA is not available")
        run("cuda")  # warm-up (CUDA context, kernels)
        gpu = run("cuda")
    cfg = PredictorConfig()
    result = {
        "benchmark": "predictor_fit",
        "data": f"SYNTHETIC scores; {N_SOURCES} source tasks x {N_PER_SOURCE} + {N_TARGET} target "
                f"random NASNet (B=5) architectures; {N_HELDOUT} held out",
        "cpu_fit_seconds": cpu["fit_seconds"] if cpu else None,
        "gpu_fit_seconds": gpu["fit_seconds"] if gpu else None,
        "cpu": cpu,
        "gpu": gpu,
        "config": cfg.to_dict(),
        "cpu_threads": args.threads,
        "cpu_count": os.cpu_count(),
        "load_average_1min_before": load_before,
        "gpu_name": torch.cuda.get_device_name(0) if gpu else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    rows = [("device", "fit s", "epochs", "steps", "spearman", "recon", "predict s", "propose s")]
    for r in (cpu, gpu):
        if r:
            rows.append((r["device"], f"{r['fit_seconds']:.1f}", str(r["epochs"]), str(r["steps"]),
                         f"{r['heldout_spearman']:.3f}", f"{r['heldout_reconstruction']:.3f}",
                         f"{r['predict_seconds_500']:.3f}", f"{r['propose_seconds_20']:.3f}"))
    if not gpu:
        rows.append(("cuda", "n/a (no GPU)", "", "", "", "", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print(f"predictor fit: {N_SOURCES}x{N_PER_SOURCE} source + {N_TARGET} target NASNet archs "
          f"(synthetic scores), torch {torch.__version__}, {args.threads} CPU threads")
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
