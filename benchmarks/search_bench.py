"""Search-comparison benchmark: wall time of a full ``compare`` (default optimizers and options,
10 seeds, budget 100) on one target, and of the surrogate searches before the warm-started refits.

Run:  python benchmarks/search_bench.py --store runs/transnas.h5 --target class_object
      [--jobs 2] [--seeds 10] [--keep DIR] [--before-seeds 1]

* ``after``: ``compare`` with the package defaults (xfernas, nao, random, best-on-source,
  tapas and the best-on-source-oracle reference line), timed end to end; ``--keep DIR``
  writes it to DIR (the same files ``nasbench-xfer compare -o DIR`` writes).
* ``before``: xfernas and nao with the options that reproduce the searches before issue 11
  (``proposal="ascent"``, ``warm_start=False``; xfernas also ``head="paper"``,
  ``residual_shrinkage=0``), ``--before-seeds`` seeds each, timed per search; the JSON
  extrapolates the 10-seed wall time of those two optimizers on ``--jobs`` processes from
  the mean search time (labelled as an extrapolation).

``--estimate`` instead times single searches (seed 0, budget 100) with the process's CPU time,
which is far less sensitive than wall time to other work on a shared machine: each optimizer
of ``--optimizers`` with the current defaults (``after``) and, for xfernas and nao, with the
``before`` options; it appends the records to ``--out`` and estimates the 10-seed comparison's
wall time on ``--jobs`` processes as (10 x the summed CPU seconds per search) / jobs.

Writes benchmarks/results/search_bench.json and prints a summary.  Timings depend on what
else runs on the machine: the JSON records the load average at the start and the end.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

BEFORE = {"xfernas": {"proposal": "ascent", "warm_start": False, "head": "paper", "residual_shrinkage": 0.0},
          "nao": {"proposal": "ascent", "warm_start": False}}


def machine() -> str:
    import torch

    return (f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
            f"torch {torch.__version__}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--keep", default=None, help="folder for the timed comparison (default: a temp dir)")
    ap.add_argument("--before-seeds", type=int, default=1, help="seeds per optimizer for 'before' (0: skip)")
    ap.add_argument("--out", default=str(HERE / "results" / "search_bench.json"))
    ap.add_argument("--estimate", action="store_true", help="time single searches by CPU time (see above)")
    ap.add_argument("--optimizers", default="xfernas,nao,random,best-on-source,tapas,best-on-source-oracle")
    ap.add_argument("--no-before", action="store_true", help="--estimate: skip the 'before' searches")
    args = ap.parse_args()
    if args.estimate:
        return estimate(args)

    import torch

    from nasbench_xfer.evaluate.search import SearchSpec, compare, run_search
    from nasbench_xfer.store import Store

    torch.set_num_threads(1)
    with Store.open(args.store) as st:
        sources = [t for t in st.tasks if t != args.target]
    opts = ["xfernas", "nao", "random", "best-on-source", "tapas", "best-on-source-oracle"]
    result = {"store": args.store, "target": args.target, "budget": args.budget, "seeds": args.seeds,
              "jobs": args.jobs, "machine": machine(), "load_average_start": os.getloadavg()}
    spec = SearchSpec(store=args.store, target=args.target, sources=sources, optimizers=opts,
                      budget=args.budget, seeds=list(range(args.seeds)))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep) if args.keep else Path(tmp) / "cmp"
        if (out / "runs").exists() and any((out / "runs").iterdir()):
            raise SystemExit(f"{out} holds finished runs: the bench times a whole comparison, give an empty folder")
        t0 = time.perf_counter()
        compare(spec, out, jobs=args.jobs, progress=True)
        result["after_compare_seconds"] = time.perf_counter() - t0
    result["after_optimizers"] = opts
    before = {}
    for opt, options in BEFORE.items():
        times = []
        for seed in range(args.before_seeds):
            s = SearchSpec(store=args.store, target=args.target, sources=sources, optimizers=[opt],
                           budget=args.budget, seeds=[seed], options={opt: options})
            t0 = time.perf_counter()
            run_search(s, opt, seed)
            times.append(time.perf_counter() - t0)
        if times:
            before[opt] = {"options": options, "seconds_per_search": times}
    if before:
        per = sum(sum(v["seconds_per_search"]) / len(v["seconds_per_search"]) for v in before.values())
        result["before"] = before
        result["before_xfernas_nao_10_seeds_seconds_extrapolated"] = per * args.seeds / args.jobs
    result["load_average_end"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def estimate(args) -> None:
    import torch

    from nasbench_xfer.evaluate.search import SearchSpec, run_search
    from nasbench_xfer.store import Store

    torch.set_num_threads(1)
    with Store.open(args.store) as st:
        sources = [t for t in st.tasks if t != args.target]
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.exists() else {}
    if result.get("target", args.target) != args.target or result.get("mode", "estimate") != "estimate":
        raise SystemExit(f"{out} holds another benchmark; give another --out")
    result.update(mode="estimate", store=args.store, target=args.target, budget=args.budget,
                  jobs=args.jobs, machine=machine())
    records = result.setdefault("searches", [])
    todo = [("after", o, {}) for o in args.optimizers.split(",") if o]
    if not args.no_before:
        todo += [("before", o, BEFORE[o]) for o in BEFORE if o in args.optimizers.split(",")]
    for label, opt, options in todo:
        spec = SearchSpec(store=args.store, target=args.target, sources=sources, optimizers=[opt],
                          budget=args.budget, seeds=[0], options={opt: options})
        load0 = os.getloadavg()[0]
        w0, c0 = time.perf_counter(), time.process_time()
        traj = run_search(spec, opt, 0)
        rec = {"label": label, "optimizer": opt, "options": options,
               "cpu_seconds": time.process_time() - c0, "wall_seconds": time.perf_counter() - w0,
               "load_average_1min_at_start": load0,
               "regret": {str(b): float(traj[traj.step <= b].regret.iloc[-1]) for b in (10, 33, 100)},
               "origins": traj["origin"].value_counts().to_dict()}
        records[:] = [r for r in records if (r["label"], r["optimizer"]) != (label, opt)] + [rec]
        print(json.dumps(rec), flush=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    for label in ("after", "before"):
        recs = [r for r in records if r["label"] == label]
        if not recs:
            continue
        if label == "before":  # the cheap optimizers did not change: their 'after' time counts
            have = {r["optimizer"] for r in recs}
            recs += [r for r in records if r["label"] == "after" and r["optimizer"] not in have]
        if recs:
            result[f"{label}_compare_seconds_estimate"] = 10 * sum(r["cpu_seconds"] for r in recs) / args.jobs
            result[f"{label}_estimate_optimizers"] = sorted(r["optimizer"] for r in recs)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "searches"}, indent=2))


if __name__ == "__main__":
    main()
