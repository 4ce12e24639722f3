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

4. appends (``--section append``): 1,000 evaluations appended one call at a time to a
   store that already holds 200,000 evaluations vs to an empty store (NB-201 space, one
   task, 12-epoch curves), each from a fresh copy of its store in a fresh process.  The
   default policy sends appends to a store file of 1 MiB or more to the append journal
   (``STORE.h5.journal``); today's copy-on-write path (every append rewrites the file) is
   measured beside it by disabling the journal (``Store.journal_min_bytes = inf``), on the
   large store over fewer appends (``--cow-appends``), reported per append.

Run:  python benchmarks/store_bench.py [--dataset cora] [--repeats 7] [--section all|peer|append]
Writes benchmarks/results/store_bench.json (each section its keys; a section not run keeps
the keys already there) and prints a table.
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


APPEND_CHILD = textwrap.dedent(r"""
    import json, sys, time
    import numpy as np
    from nasbench_xfer.store import Store
    path, policy, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if policy == "copy-on-write":
        Store.journal_min_bytes = float("inf")   # today's path: every append rewrites the file
    elif policy == "journal-always":
        Store.journal_min_bytes = 0
    rng = np.random.default_rng(1)
    with Store.open(path, "a") as st:
        archs = st.space.sample_many(n, rng)
        before = st.num_evaluations("t")
        times = []
        for i, a in enumerate(archs):
            t0 = time.perf_counter()
            st.append("t", [dict(arch=a, seed=1000 + i, val_metric=float(rng.random()),
                                 protocol="p", curve=rng.random(12).tolist())])
            times.append(time.perf_counter() - t0)
        assert st.num_evaluations("t") == before + n
        journal = st.path.with_name(st.path.name + ".journal")
        jbytes = journal.stat().st_size if journal.exists() else 0
    print(json.dumps({"seconds": float(np.sum(times)), "per_append_ms": 1e3 * float(np.mean(times)),
                      "p99_ms": 1e3 * float(np.quantile(times, 0.99)), "appends": n,
                      "journal_bytes": jbytes}))
""")


def build_append_stores(tmp: Path, rows: int) -> tuple[Path, Path]:
    """An empty NB-201 store with one task, and one holding ``rows`` evaluations."""
    from nasbench_xfer.space import get_space
    from nasbench_xfer.store import Store

    space = get_space("nb201", {})
    stores = []
    for name, n in (("empty.h5", 0), ("large.h5", rows)):
        path = tmp / name
        with Store.create(path, space) as st:
            st.add_task("t", dataset="cifar10", protocols={"p": {"epochs": 12}})
            if n:
                rng = np.random.default_rng(0)
                archs = list(space.enumerate())
                with st.batch():
                    ids = st.add_archs(archs)
                    st.append("t", [dict(arch_id=int(ids[i % len(ids)]), seed=i // len(ids),
                                         val_metric=float(rng.random()), protocol="p",
                                         curve=rng.random(12).tolist()) for i in range(n)])
        stores.append(path)
    return stores[0], stores[1]


def append_section(args: argparse.Namespace) -> dict:
    import shutil

    out: dict = {"rows_in_large_store": args.append_rows, "appends": args.appends,
                 "cow_appends_on_large": args.cow_appends, "space": "nb201", "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        empty, large = build_append_stores(tmp, args.append_rows)
        out["file_bytes"] = {"empty": empty.stat().st_size, "large": large.stat().st_size}
        for policy in ("default", "copy-on-write", "journal-always"):
            for which, src in (("empty", empty), ("large", large)):
                n = args.cow_appends if (policy, which) == ("copy-on-write", "large") else args.appends
                work = tmp / f"work-{which}.h5"
                shutil.copyfile(src, work)
                r = subprocess.run([sys.executable, "-c", APPEND_CHILD, str(work), policy, str(n)],
                                   check=True, capture_output=True, text=True,
                                   env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin",
                                        "OMP_NUM_THREADS": "1"})
                out["runs"][f"{policy}/{which}"] = json.loads(r.stdout.strip().splitlines()[-1])
                for p in tmp.glob("work-*"):
                    p.unlink()
    runs = out["runs"]
    out["ratio_large_vs_empty"] = {
        policy: runs[f"{policy}/large"]["per_append_ms"] / runs[f"{policy}/empty"]["per_append_ms"]
        for policy in ("default", "copy-on-write", "journal-always")}
    return out


def print_append(rep: dict) -> None:
    print(f"\nappends, one evaluation per call: store of {rep['rows_in_large_store']:,} evaluations "
          f"({rep['file_bytes']['large'] / 2**20:.1f} MiB) vs an empty one "
          f"({rep['file_bytes']['empty'] / 2**20:.2f} MiB)")
    print(f"{'policy':16s} {'store':6s} {'appends':>8s} {'total s':>9s} {'ms/append':>10s} {'p99 ms':>8s} "
          f"{'journal KiB':>12s}")
    for key, r in rep["runs"].items():
        policy, which = key.split("/")
        print(f"{policy:16s} {which:6s} {r['appends']:8d} {r['seconds']:9.2f} {r['per_append_ms']:10.2f} "
              f"{r['p99_ms']:8.2f} {r['journal_bytes'] / 1024:12.1f}")
    for policy, ratio in rep["ratio_large_vs_empty"].items():
        print(f"ratio large/empty per append, {policy}: {ratio:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="cora")
    ap.add_argument("--lookups", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--section", choices=["all", "peer", "append"], default="all")
    ap.add_argument("--appends", type=int, default=1000)
    ap.add_argument("--append-rows", type=int, default=200_000)
    ap.add_argument("--cow-appends", type=int, default=100)
    ap.add_argument("--out", default=str(HERE / "results" / "store_bench.json"))
    args = ap.parse_args()

    sys.path.insert(0, str(REPO))
    report: dict = {}
    if Path(args.out).exists():
        report = json.loads(Path(args.out).read_text())
    if args.section in ("all", "peer"):
        report.update(peer_section(args))
    if args.section in ("all", "append"):
        report["append"] = append_section(args)
        print_append(report["append"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


def peer_section(args: argparse.Namespace) -> dict:
    """Sections 1-3: cold start, lookups and memory, ours vs NAS-Bench-Graph's loader."""
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

    rows = [("(1) cold start -> full table", "table_seconds", "table"),
            (f"(2) cold start + {args.lookups} lookups", "lookup_seconds", "lookups")]
    print(f"store benchmark, NAS-Bench-Graph {args.dataset}, median of {args.repeats} fresh processes")
    print(f"{'measure':38s} {'peer':>10s} {'ours':>10s} {'peer/ours':>10s} {'peer peak MB':>13s} {'ours peak MB':>13s}")
    for label, key, mode in rows:
        p, o = report[key]["peer"], report[key]["ours"]
        mp, mo = report["peak_mb"][mode]["peer"], report["peak_mb"][mode]["ours"]
        print(f"{label:38s} {p * 1e3:8.1f}ms {o * 1e3:8.1f}ms {p / o:9.1f}x {mp:13.1f} {mo:13.1f}")
    return report


if __name__ == "__main__":
    main()
