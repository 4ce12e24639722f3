"""Store benchmark: our HDF5 store vs NAS-Bench-Graph's own loader, on the same data.

Measured side by side in fresh processes (so every run is a cold start; module
imports are excluded on both sides, file-cache effects are equal because both
read their file right before):

1. cold start to a full table of one task - ours: ``Store.open`` + ``evaluations(task)``
   (a pandas frame); the peer: ``nas_bench_graph.light_read`` (unpickle) + a
   pandas frame of the same rows (table key, valid_perf, perf, latency, para);
2. cold start + 10,000 random lookups given architectures in the peer's own
   form (links + op names) - the peer: ``Arch(links, ops).valid_hash()`` and a dict
   lookup each; ours: op names -> ids, ``GraphSpace.dense_index_arrays`` and
   ``Store.lookup(dense_index=...)``;
3. peak memory of each: peak of Python-visible allocations (tracemalloc: Python
   objects and numpy arrays) during the work, in separate runs so that tracing
   does not slow the timed ones.

Run:  python benchmarks/store_bench.py [--dataset cora] [--repeats 7]
Writes benchmarks/results/store_bench.json and prints a table.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

CHILD = textwrap.dedent(r"""
    import itertools, json, sys, time, tracemalloc
    import numpy as np, pandas as pd
    import nas_bench_graph
    from nasbench_xfer.store import Store
    from nasbench_xfer.space.graph import GraphSpace, GNN_OPS
    which, mode, store_path, dataset, queries_path = sys.argv[1:6]
    q = json.load(open(queries_path))
    links, ops = q["links"], q["ops"]
    if mode.endswith("-mem"):
        tracemalloc.start()
    t0 = time.perf_counter()
    mode = mode.replace("-mem", "")
    if which == "peer":
        bench = nas_bench_graph.light_read(dataset)
        if mode == "table":
            keys = list(bench)
            frame = pd.DataFrame({"key": keys,
                                  "valid_perf": [bench[k]["valid_perf"] for k in keys],
                                  "perf": [bench[k]["perf"] for k in keys],
                                  "latency": [bench[k]["latency"] for k in keys],
                                  "para": [bench[k]["para"] for k in keys]})
            n = len(frame)
            check = float(frame["valid_perf"].sum())
        else:
            vals = [bench[nas_bench_graph.Arch(lk, op).valid_hash()]["valid_perf"]
                    for lk, op in zip(links, ops)]
            n = len(vals)
            check = float(np.sum(vals))
    else:
        st = Store.open(store_path)
        if mode == "table":
            frame = st.evaluations(dataset)
            n = len(frame)
            check = float(frame["val_metric"].sum())
        else:
            index = {op: i for i, op in enumerate(GNN_OPS)}
            flat = itertools.chain.from_iterable
            op_ids = np.fromiter(map(index.__getitem__, flat(ops)), np.int64, 4 * len(ops))
            link_arr = np.fromiter(flat(links), np.int64, 4 * len(links))
            raw = st.space.dense_index_arrays(link_arr.reshape(-1, 4), op_ids.reshape(-1, 4))
            vals = st.lookup(dataset, dense_index=raw)
            n = len(vals)
            check = float(np.sum(vals))
        st.close()
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20 if tracemalloc.is_tracing() else None
    print(json.dumps({"seconds": seconds, "peak_mb": peak, "n": n, "check": check}))
""")


def run_child(which: str, mode: str, store: Path, dataset: str, queries: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, which, mode, str(store), dataset, str(queries)],
                         check=True, capture_output=True, text=True,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="cora")
    ap.add_argument("--lookups", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", default=str(HERE / "results" / "store_bench.json"))
    args = ap.parse_args()

    sys.path.insert(0, str(REPO))
    from nasbench_xfer.importers.nas_bench_graph import import_nas_bench_graph
    from nasbench_xfer.space.graph import GraphSpace

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = tmp / "nbg.h5"
        import_nas_bench_graph(store, [args.dataset])
        space = GraphSpace()
        keys = space.table_keys()
        rng = np.random.default_rng(0)
        picks = [space.arch_of_key(int(k)) for k in rng.choice(keys, args.lookups)]
        queries = tmp / "queries.json"
        queries.write_text(json.dumps({"links": [list(a.links) for a in picks],
                                       "ops": [list(a.ops) for a in picks]}))
        results: dict[str, dict[str, list[dict]]] = {}
        for mode in ("table", "lookups", "table-mem", "lookups-mem"):
            for which in ("peer", "ours"):
                results.setdefault(mode, {})[which] = []
            for _ in range(args.repeats if not mode.endswith("mem") else 1):
                for which in ("peer", "ours"):  # interleaved, so drift hits both alike
                    results[mode][which].append(run_child(which, mode, store, args.dataset, queries))
        # both sides must agree on what they read
        for mode in ("table", "lookups"):
            a, b = results[mode]["peer"][0], results[mode]["ours"][0]
            assert a["n"] == b["n"] and abs(a["check"] - b["check"]) < 1e-6 * max(1, abs(a["check"])), (mode, a, b)

    def med(mode: str, which: str, key: str) -> float:
        return float(np.median([r[key] for r in results[mode][which]]))

    report = {
        "dataset": args.dataset, "lookups": args.lookups, "repeats": args.repeats,
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "table_seconds": {"peer": med("table", "peer", "seconds"), "ours": med("table", "ours", "seconds")},
        "lookup_seconds": {"peer": med("lookups", "peer", "seconds"), "ours": med("lookups", "ours", "seconds")},
        "peak_mb": {
            "table": {"peer": med("table-mem", "peer", "peak_mb"),
                      "ours": med("table-mem", "ours", "peak_mb")},
            "lookups": {"peer": med("lookups-mem", "peer", "peak_mb"),
                        "ours": med("lookups-mem", "ours", "peak_mb")}},
        "raw": results,
    }
    report["speedup_table"] = report["table_seconds"]["peer"] / report["table_seconds"]["ours"]
    report["speedup_lookups"] = report["lookup_seconds"]["peer"] / report["lookup_seconds"]["ours"]
    report["memory_ratio_lookups"] = report["peak_mb"]["lookups"]["peer"] / report["peak_mb"]["lookups"]["ours"]
    report["memory_ratio_table"] = report["peak_mb"]["table"]["peer"] / report["peak_mb"]["table"]["ours"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")

    rows = [("(1) cold start -> full table", "table_seconds", "table"),
            (f"(2) cold start + {args.lookups} lookups", "lookup_seconds", "lookups")]
    print(f"store benchmark, NAS-Bench-Graph {args.dataset}, median of {args.repeats} fresh processes")
    print(f"{'measure':38s} {'peer':>10s} {'ours':>10s} {'peer/ours':>10s} {'peer peak MB':>13s} {'ours peak MB':>13s}")
    for label, key, mode in rows:
        p, o = report[key]["peer"], report[key]["ours"]
        mp, mo = report["peak_mb"][mode]["peer"], report["peak_mb"][mode]["ours"]
        print(f"{label:38s} {p * 1e3:8.1f}ms {o * 1e3:8.1f}ms {p / o:9.1f}x {mp:13.1f} {mo:13.1f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
