"""Import NAS-Bench-Graph (Qin et al., NeurIPS 2022) from the PyPI package ``nas-bench-graph``.

Source: ``nas_bench_graph.light_read(dataset)``, a dict ``{key: {"valid_perf",
"perf", "latency", "para"}}`` per dataset, ``key`` = ``Arch(links, ops).valid_hash()``.
Per evaluation the store gets:

* ``val_metric`` = ``valid_perf``, ``test_metric`` = ``perf``
* ``params`` = ``para * 1e6``: the package gives parameters in **millions**; the store
  holds the raw count (rounded to an integer)
* extra column ``latency`` = ``latency``, unchanged
* ``protocol`` = ``"nas_bench_graph"`` (registered on each task with its definition)

Metric: accuracy for the 8 node-classification datasets; ``proteins``
(ogbn-proteins, 112 binary labels) reports ROC-AUC, the dataset's official metric.

Proteins and the one-space-per-store rule.  The benchmark trained proteins only
with 5 of the 9 ops (``gcn sage arma fc skip``): 2,021 architectures, which are
also architectures of the 9-op space (same table keys).  ``proteins=`` chooses:

* ``"include"`` (default): proteins is a task of the 9-op store, with rows for its
  2,021 architectures only (the task's ``info`` records ``ops_evaluated``).  Use
  this for transfer: every dataset is a task over one space.  A search *on*
  proteins must stay inside the 5-op subspace, or it meets unevaluated architectures.
* ``"separate"``: proteins goes to its own store over the 5-op space
  (``GraphSpace(ops=PROTEINS_OPS)``, 2,021 architectures) at ``proteins_out``
  (default: ``<out stem>-proteins<suffix>``, or ``out`` itself when proteins is the only
  dataset imported); the main store holds the other datasets.
  Use this to search on proteins with the space it was benchmarked in.
* ``"skip"``: proteins is not imported.
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..space.graph import GNN_OPS, PROTEINS_OPS, GraphSpace
from ..store import provenance
from ..store.schema import file_sha256
from . import ImporterError, ImportResult, building_store, default_command, dist_version

#: the benchmark's datasets, in the package's order
DATASETS: tuple[str, ...] = ("cora", "citeseer", "pubmed", "cs", "physics", "photo", "computers",
                             "arxiv", "proteins")

#: dataset -> (full name, number of classes, metric)
DATASET_INFO: dict[str, tuple[str, int, str]] = {
    "cora": ("Cora (Planetoid citation graph)", 7, "accuracy"),
    "citeseer": ("CiteSeer (Planetoid citation graph)", 6, "accuracy"),
    "pubmed": ("PubMed (Planetoid citation graph)", 3, "accuracy"),
    "cs": ("Coauthor-CS", 15, "accuracy"),
    "physics": ("Coauthor-Physics", 5, "accuracy"),
    "photo": ("Amazon-Photo", 8, "accuracy"),
    "computers": ("Amazon-Computers", 10, "accuracy"),
    "arxiv": ("ogbn-arxiv", 40, "accuracy"),
    "proteins": ("ogbn-proteins (112 binary labels)", -1, "roc_auc"),
}

PROTEINS_MODES = ("include", "separate", "skip")

SOURCE = "NAS-Bench-Graph (Qin et al., NeurIPS 2022), PyPI package nas-bench-graph, light tables"

PROTOCOL = {
    "benchmark": "NAS-Bench-Graph",
    "reader": "nas_bench_graph.light_read",
    "val_metric": "valid_perf",
    "test_metric": "perf",
    "params": "para * 1e6 (the package gives millions)",
    "latency": "latency (unchanged)",
    "training": "the benchmark's fixed per-dataset hyperparameters (see its paper)",
}


def _read(dataset: str) -> dict[int, dict[str, Any]]:
    try:
        import nas_bench_graph
    except ImportError:  # pragma: no cover
        raise ImporterError("the package nas-bench-graph is not installed (pip install nas-bench-graph)") from None
    try:
        return nas_bench_graph.light_read(dataset)
    except FileNotFoundError:
        raise ImporterError(f"nas_bench_graph has no table for dataset {dataset!r}") from None


def _source_files(datasets: list[str]) -> dict[str, dict[str, Any]]:
    """Each dataset's table file in the nas-bench-graph package, with its size and SHA-256."""
    try:
        import nas_bench_graph
    except ImportError:  # pragma: no cover
        return {}
    folder = Path(nas_bench_graph.__file__).resolve().parent / "light"
    out = {}
    for d in datasets:
        f = folder / f"{d}.bench"
        if f.is_file():
            out[d] = {"file": str(f), "bytes": f.stat().st_size, "sha256": file_sha256(f)}
    return out


def default_proteins_out(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(f"{out.stem}-proteins{out.suffix or '.h5'}")


def _write_tasks(store, space: GraphSpace, datasets: Sequence[str], tables: dict[str, dict],
                 prov: dict[str, Any], result: ImportResult) -> None:
    keys_all = space.table_keys()
    archs = list(space.enumerate())  # ascending key order, like keys_all
    ids = store.add_archs(archs)
    key_to_id = dict(zip(keys_all.tolist(), ids.tolist()))
    for ds in datasets:
        table = tables[ds]
        name, ncls, metric = DATASET_INFO[ds]
        keys = np.fromiter(table.keys(), dtype=np.int64, count=len(table))
        missing = [int(k) for k in keys if int(k) not in key_to_id]
        if missing:
            raise ImporterError(
                f"{ds}: {len(missing)} table keys are not canonical architectures of the space "
                f"{space!r} (e.g. {missing[:3]}); is the nas-bench-graph package a newer version?")
        keys.sort()
        rows = [table[int(k)] for k in keys]
        val = np.array([float(r["valid_perf"]) for r in rows])
        test = np.array([float(r["perf"]) for r in rows])
        params = np.rint(np.array([float(r["para"]) for r in rows]) * 1e6)
        latency = np.array([float(r["latency"]) for r in rows])
        info: dict[str, Any] = {
            "benchmark": "NAS-Bench-Graph", "dataset_name": name,
            "ops_evaluated": list(PROTEINS_OPS if ds == "proteins" else GNN_OPS),
            "num_archs_evaluated": int(len(keys)),
            "columns": {"val_metric": "valid_perf", "test_metric": "perf",
                        "params": "para * 1e6 (raw parameter count; the package gives millions)",
                        "latency": "latency, as the package gives it"},
        }
        if ds == "proteins":
            info["num_labels"] = 112
            if len(space.ops) > len(PROTEINS_OPS):
                info["note"] = ("proteins was benchmarked with the 5 ops gcn, sage, arma, fc, skip "
                                "only; architectures using other ops have no evaluation on it")
        store.add_task(ds, dataset=ds, metric=metric, higher_is_better=True, num_classes=ncls,
                       protocols={"nas_bench_graph": PROTOCOL},
                       provenance_info={**prov, "dataset": ds}, info=info,
                       extra_columns=["latency"])
        arch_ids = [key_to_id[int(k)] for k in keys]
        records = [{"arch_id": a, "val_metric": v, "test_metric": t, "params": p, "latency": lt,
                    "protocol": "nas_bench_graph"}
                   for a, v, t, p, lt in zip(arch_ids, val.tolist(), test.tolist(), params.tolist(),
                                             latency.tolist())]
        result.rows[ds] = store.append(ds, records)


def import_nas_bench_graph(out: str | os.PathLike, datasets: Sequence[str] | None = None, *,
                           proteins: str = "include", proteins_out: str | os.PathLike | None = None,
                           overwrite: bool = False, command: str | None = None) -> ImportResult:
    """Write NAS-Bench-Graph's ``datasets`` (default: all 9) as tasks of a store at ``out``.

    ``proteins`` is ``"include"``, ``"separate"`` or ``"skip"`` (module docstring).
    Returns what was written; raises :class:`ImporterError` on bad arguments or
    data (nothing is left behind then).
    """
    t0 = time.perf_counter()
    datasets = list(DATASETS if not datasets else datasets)
    unknown = [d for d in datasets if d not in DATASETS]
    if unknown:
        raise ImporterError(f"unknown NAS-Bench-Graph dataset(s) {unknown}; known: {', '.join(DATASETS)}")
    if len(set(datasets)) != len(datasets):
        raise ImporterError(f"dataset listed twice in {datasets}")
    if proteins not in PROTEINS_MODES:
        raise ImporterError(f"proteins must be one of {', '.join(PROTEINS_MODES)}, got {proteins!r}")
    if command is None:
        command = default_command("import_nas_bench_graph", out=str(out), datasets=datasets,
                                  proteins=proteins)
    main = [d for d in datasets if d != "proteins" or proteins == "include"]
    separate = "proteins" in datasets and proteins == "separate"
    if proteins_out is not None and not separate:
        raise ImporterError("proteins_out (--proteins-out) is only used with proteins='separate' "
                            "(--proteins separate) when proteins is among the datasets")
    if proteins_out is not None:
        p_out = Path(proteins_out)
    else:  # proteins alone: its store is ``out`` itself
        p_out = default_proteins_out(out) if main else Path(out)
    if separate and main and p_out.resolve() == Path(out).resolve():
        raise ImporterError(f"the proteins store and the main store would both be {p_out}")
    version = dist_version("nas-bench-graph")
    tables = {d: _read(d) for d in datasets if d in main or (d == "proteins" and separate)}
    result = ImportResult()
    base = dict(source=SOURCE, command=command, source_package="nas-bench-graph",
                source_package_version=version, source_files=_source_files(list(tables)))
    targets: list[tuple[str, Path, GraphSpace, list[str]]] = []
    if main:
        targets.append(("nas_bench_graph", Path(out), GraphSpace(), main))
    if separate:
        targets.append(("nas_bench_graph_proteins", p_out, GraphSpace(ops=PROTEINS_OPS), ["proteins"]))
    if not targets:
        raise ImporterError("nothing to import: the only dataset chosen is proteins with proteins='skip'")
    for _label, path, _space, _dss in targets:
        if path.exists() and not overwrite:
            raise ImporterError(f"{path} already exists (pass overwrite=True / --overwrite to replace it)")
    for label, path, space, dss in targets:
        prov = provenance(**base, datasets=dss)
        with building_store(path, space, overwrite=overwrite, provenance_info=prov) as store:
            _write_tasks(store, space, dss, tables, provenance(**base), result)
            result.archs[label] = store.num_archs
        result.stores[label] = path
    if "proteins" in main and len(main) > 1:
        result.notes.append("proteins is a task of the 9-op store with rows for its 2,021 "
                            "5-op architectures only (use proteins='separate' for a 5-op store)")
    result.seconds = time.perf_counter() - t0
    return result
