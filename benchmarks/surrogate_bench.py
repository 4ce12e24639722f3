"""Surrogate benchmarks on real tables: held-out validation per task and batched query speed.

For each store given (default: TransNAS-Bench-101 micro, all seven tasks, imported from
``../shared/data``), fits the default surrogate (``lgb``: 3 LightGBM members) with 20% of
the architectures held out, and reports per task the held-out Spearman, Kendall, top-10%
Kendall and R².  Query speed: 100,000 random architectures of the space as token rows in
one batched call (features + all members; for a small enumerable space such as TransNAS
micro the first large batch puts the whole space through the model once and answers from
that table, its cost included), against the same surrogate queried one architecture at a
time through the model (1,000 calls: the loop a naive oracle would run), side by side in
this process; the ratio is the point, the absolute figure depends on the machine.  The
*tree path* (what a space too large to tabulate, such as NASNet, always takes): the same
100,000 rows through features and trees, dense features (the reference) against sparse
ones (the default for large batches), side by side, three times each (the median).

``--nasnet-synthetic N`` adds a NASNet-space surrogate fitted on N random architectures
with a synthetic metric (a known function of the operation counts plus noise): no NASNet
table exists yet, and the tree path's speed depends on the trees' shape, not on the data.

Writes ``benchmarks/results/surrogate_bench.json`` and prints a table.

    python benchmarks/surrogate_bench.py [--store S.h5 ...] [--tasks a,b] [--nasnet-synthetic 2000]
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

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from nasbench_xfer.surrogate import fit_surrogate  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


def random_tokens(space, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` valid token rows drawn uniformly from the valid tokens of each position."""
    mask = np.asarray(space.token_mask(), dtype=bool)
    cols = []
    for i in range(mask.shape[0]):
        valid = np.nonzero(mask[i])[0]
        cols.append(valid[rng.integers(0, len(valid), n)])
    return np.stack(cols, axis=1)


def synthetic_nasnet_store(path: Path, n: int) -> str:
    """A NASNet-space store of ``n`` random architectures whose metric is a known function of
    the operation counts of both cells plus N(0, 0.01) noise (for the tree path's speed)."""
    from nasbench_xfer.space import NASNetSpace
    from nasbench_xfer.store import Store
    space = NASNetSpace()
    rng = np.random.default_rng(0)
    archs = space.sample_many(n, rng)
    ops = space.vocabulary()
    weight = {o: w for o, w in zip(ops, rng.normal(0, 0.02, len(ops)))}
    rows = []
    for a in archs:
        blocks = list(a.normal) + list(a.reduction)
        metric = 0.7 + sum(weight[b.op_a] + weight[b.op_b] for b in blocks) + rng.normal(0, 0.01)
        rows.append(dict(arch=a, seed=0, val_metric=float(metric), status="ok"))
    with Store.create(path, space) as st:
        st.add_task("synthetic", dataset="synthetic", num_classes=10)
        st.append("synthetic", rows)
    return str(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", action="append", default=None, help="store(s) to fit on (default: TransNAS)")
    ap.add_argument("--tasks", default=None, help="comma-separated tasks (default: all)")
    ap.add_argument("--queries", type=int, default=100_000)
    ap.add_argument("--out", default=str(RESULTS / "surrogate_bench.json"))
    ap.add_argument("--nasnet-synthetic", type=int, default=0, metavar="N")
    ap.add_argument("--note", default=None, help="a note stored in the JSON (e.g. the machine's load)")
    args = ap.parse_args(argv)
    stores = list(args.store or [])
    tmp = None
    if args.nasnet_synthetic:
        tmp = tempfile.TemporaryDirectory()
        stores.append(synthetic_nasnet_store(Path(tmp.name) / "nasnet-synthetic.h5", args.nasnet_synthetic))
    if not stores:
        from nasbench_xfer.importers import import_transnas
        tmp = tmp or tempfile.TemporaryDirectory()
        path = Path(tmp.name) / "transnas.h5"
        import_transnas(path, REPO.parent / "shared" / "data" / "transnas-bench-101-micro" /
                        "naslib-zc-transbench101-micro.zip")
        stores = [str(path)]
    results = []
    for store in stores:
        t0 = time.perf_counter()
        synthetic = Path(store).name == "nasnet-synthetic.h5"
        sb = fit_surrogate(store, None if synthetic or not args.tasks else args.tasks.split(","), holdout=0.2,
                           seed=0, log=print)
        fit_s = time.perf_counter() - t0
        task = sb.tasks[0]
        rng = np.random.default_rng(0)
        tokens = random_tokens(sb.space, args.queries, rng)
        sb.predict(task, tokens=tokens[:100])  # warm-up
        t0 = time.perf_counter()
        for i in range(1000):                  # first: one at a time through the model
            sb.predict(task, tokens=tokens[i:i + 1])
        single = 1000 / (time.perf_counter() - t0)
        t0 = time.perf_counter()               # then one batch (for a small enumerable space this
        sb.predict(task, tokens=tokens)        # includes building the table of the whole space)
        batched = args.queries / (time.perf_counter() - t0)
        model = sb._tasks[task]["model"]
        times: dict[str, list[float]] = {"dense": [], "sparse": []}
        for _ in range(3):                              # the tree path, both feature forms,
            for form in times:                          # interleaved; the median of 3 each
                t0 = time.perf_counter()
                model.predict(sb.features.token_features(tokens, sparse=form == "sparse"))
                times[form].append(time.perf_counter() - t0)
        tree = {form: args.queries / float(np.median(v)) for form, v in times.items()}
        name = Path(store).name
        if name == "transnas.h5" and tmp is not None and str(store).startswith(tmp.name):
            name = "transnas-bench-101-micro (imported)"
        elif synthetic:
            name = f"NASNet space, {args.nasnet_synthetic} random architectures, synthetic metric"
        results.append({"store": name, "tree_path_queries_per_s": tree,
                        "tree_path_sparse_speedup": tree["sparse"] / tree["dense"],
                        "space": sb.space.name, "fit_seconds": fit_s, "model": sb.model_kind,
                        "model_params": sb.model_params, "query_task": task,
                        "batched_queries_per_s": batched, "single_queries_per_s": single,
                        "batch_speedup": batched / single,
                        "tasks": {t: sb.validation(t) for t in sb.tasks}})
    doc = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "python": platform.python_version(),
           "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "load_average_1min_at_end": os.getloadavg()[0],
           "results": results}
    if args.note:
        doc["note"] = args.note
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    for r in results:
        print(f"\n{r['store']} ({r['space']}), fit {r['fit_seconds']:.0f} s; queries/s batched "
              f"{r['batched_queries_per_s']:,.0f} vs one at a time {r['single_queries_per_s']:,.0f} "
              f"({r['batch_speedup']:.0f}x); tree path dense {r['tree_path_queries_per_s']['dense']:,.0f}/s, "
              f"sparse {r['tree_path_queries_per_s']['sparse']:,.0f}/s ({r['tree_path_sparse_speedup']:.2f}x)")
        print(f"  {'task':<16} {'held out':>8} {'spearman':>8} {'kendall':>8} {'top10% tau':>10} {'r2':>6}")
        for t, v in r["tasks"].items():
            print(f"  {t:<16} {v['held_out']:>8} {v['spearman']:>8.3f} {v['kendall']:>8.3f} "
                  f"{v['kendall_top10']:>10.3f} {v['r2']:>6.3f}")
    print(f"wrote {out}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
