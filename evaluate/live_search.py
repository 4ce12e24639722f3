"""A search that trains: any optimizer, with source knowledge from a store, proposing NASNet-space
architectures that the harness trains on a new dataset (``nasbench-xfer search``).

Every trained architecture is appended to the output store the moment it finishes (it is
benchmark data like any other), and the search writes the same kind of trajectory as
``compare`` plus the best architecture in the paper's appendix-C JSON.

Batches: with ``parallel=K`` the optimizer is asked for K architectures, the K are trained
together (K in flight on one device, :class:`~nasbench_xfer.oracle.LiveOracle`) and told
together when the last one finishes: a synchronous batch, the simplest rule every
optimizer supports; a faster training's slot waits for the slowest of its batch.

Resuming: a rerun with the same arguments replays the search.  Architectures the store
already holds for this task, protocol and seed are answered from it, not trained again
(``from_store`` in the trajectory), so a killed search continues where it stopped.  The
replay asks the optimizer again, so it reproduces the same architectures exactly when the
optimizer's proposals are deterministic given its seed and what it was told (every built-in
optimizer on CPU); a proposal that differs after a resume is trained, never an old one lost.

Budgets: a number of evaluations, and optionally training time (``budget_seconds``, the sum
of the evaluations' ``train_seconds``, GPU-seconds on a GPU): the search stops before the
batch that would start past it.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nasbench_xfer.evaluate.runs import derive_seed, new_figure, save_figure, write_json_atomic
from nasbench_xfer.optimizer import OptimizerError, SearchContext, make_optimizer
from nasbench_xfer.oracle import LiveOracle, load_task_data
from nasbench_xfer.store import Store, StoreError


@dataclass
class LiveSearchSpec:
    """What one live search runs (also the identity of its output folder)."""

    dataset: str
    protocol: str
    optimizer: str
    budget: int
    store: str
    sources_store: str | None = None
    sources: list[str] = field(default_factory=list)
    task: str | None = None
    data_root: str | None = None
    seed: int = 0
    source_size: int | None = 200
    parallel: int = 1
    budget_seconds: float | None = None
    options: dict[str, Any] = field(default_factory=dict)


def _check(spec: LiveSearchSpec) -> None:
    if spec.budget < 1:
        raise OptimizerError(f"budget must be at least 1, got {spec.budget}")
    if spec.parallel < 1:
        raise OptimizerError(f"parallel must be at least 1, got {spec.parallel}")
    if spec.source_size is not None and spec.source_size < 1:
        raise OptimizerError(f"source size must be a positive number (or None for all), got {spec.source_size}")
    if spec.budget_seconds is not None and not spec.budget_seconds > 0:
        raise OptimizerError(f"the training-time budget must be positive, got {spec.budget_seconds}")
    if spec.sources and not spec.sources_store:
        raise OptimizerError("source tasks given without the store that holds them")


def _sources(spec: LiveSearchSpec, protocol_blocks: int):
    """(source knowledge, task info, probes, probe table) from the sources store."""
    from nasbench_xfer.baselines.probe import choose_probes

    if not spec.sources_store:
        return {}, {}, [], {}
    with Store.open(spec.sources_store) as st:
        if st.space.name != "nasnet" or st.space.config().get("num_blocks") != protocol_blocks:
            raise StoreError(f"{spec.sources_store} holds space {st.space!r}; a live search trains NASNet-space "
                             f"architectures with B={protocol_blocks} (protocol {spec.protocol})")
        names = spec.sources or list(st.tasks)
        rng = np.random.default_rng(derive_seed(spec.seed, "sources"))
        knowledge = load_task_data(st, names, spec.source_size, rng)
        info = {t: st.task_info(t) for t in names}
        # probes: architectures every source evaluated (the target's scores come from training them)
        probes, table = choose_probes(st, names[0], names)
    return knowledge, info, probes, table


def run_live_search(spec: LiveSearchSpec, out: str | os.PathLike, *, device: str = "cpu",
                    task_data: Any = None, flags: Any = None, progress: bool = True,
                    log: Callable[[str], None] | None = None, executor: Any = None) -> dict[str, Any]:
    """Run (or resume) the search; write ``out``/trajectory.csv, summary.json, best_arch.json and
    best_so_far.png/pdf; return the summary.

    ``executor``: a Ray or SLURM :class:`~nasbench_xfer.executors.Executor` trains each
    batch's ``parallel`` architectures as that many tasks (``device="auto"``: each task's GPU);
    this process appends their records to the store.  ``None``: ``device`` here."""
    from nasbench_xfer.harness.protocols import get_protocol

    _check(spec)
    protocol = get_protocol(spec.protocol)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_folder(out / "spec.json", spec)
    if task_data is None:
        from nasbench_xfer import datasets as ds

        try:
            task_data = ds.load_task(spec.dataset, spec.data_root)
        except (FileNotFoundError, ValueError) as exc:
            raise OptimizerError(str(exc)) from None
    target = spec.task or task_data.name
    knowledge, info, probes, table = _sources(spec, protocol.num_blocks)
    if target in knowledge:
        raise OptimizerError(f"the target task {target!r} is also a source; name the target --task differently")
    opt = make_optimizer(spec.optimizer, **spec.options)
    if getattr(opt, "uses_oracle_similarity", False):
        raise OptimizerError(f"{spec.optimizer} is an oracle reference line (it needs the target's whole table); "
                             f"a live search has no table")
    oracle = LiveOracle(spec.store, target, task_data, protocol, seed=spec.seed, budget=spec.budget,
                        device=device, concurrent=spec.parallel, flags=flags, log=log, executor=executor)
    ctx = SearchContext(space=oracle.space, target=target, sources=knowledge, budget=spec.budget,
                        rng=np.random.default_rng(derive_seed(spec.seed, spec.optimizer)),
                        candidates=None, restricted=False, task_info=info,
                        probes=probes if getattr(opt, "uses_probe", False) else [],
                        probe_table=table if getattr(opt, "uses_probe", False) else {})
    opt.setup(ctx)
    _loop(spec, opt, oracle, progress)
    return _write_outputs(spec, out, oracle, opt)


def _check_folder(spec_file: Path, spec: LiveSearchSpec) -> None:
    from nasbench_xfer.evaluate.runs import ensure_same_spec

    if spec_file.exists():
        try:
            old = json.loads(spec_file.read_text())
        except json.JSONDecodeError:
            raise OptimizerError(f"{spec_file} is not valid JSON; remove it or use a new output folder") from None
        ensure_same_spec(old, asdict(spec), str(spec_file.parent), "search", ignore=("budget", "budget_seconds"),
                         error=OptimizerError)
    write_json_atomic(spec_file, asdict(spec))


def _loop(spec: LiveSearchSpec, opt: Any, oracle: LiveOracle, progress: bool) -> None:
    bar = None
    if progress:
        from nasbench_xfer.logs import progress_bar

        bar = progress_bar(total=spec.budget, desc=f"search {oracle.target}", unit="arch")
    stale = 0
    try:
        while oracle.used < spec.budget:
            spent = sum(r.get("train_seconds", 0.0) for r in oracle.trajectory)
            if spec.budget_seconds is not None and spent >= spec.budget_seconds:
                break
            n = min(spec.parallel, spec.budget - oracle.used)
            archs = list(opt.ask(n))[:n]
            before = oracle.used
            results = oracle.evaluate_many(archs)
            opt.tell(archs, results)
            stale = stale + 1 if oracle.used == before else 0
            if stale >= 3:
                raise OptimizerError(f"optimizer {spec.optimizer!r} proposed no new architecture three times "
                                     f"in a row after {oracle.used} evaluations")
            if bar is not None:
                bar.update(oracle.used - before)
                best = oracle.trajectory[-1]["best_val"] if oracle.trajectory else math.nan
                bar.set_postfix(best=f"{best:.4g}", trained=sum(not r.get("from_store") for r in oracle.trajectory))
    finally:
        if bar is not None:
            bar.close()


def _write_outputs(spec: LiveSearchSpec, out: Path, oracle: LiveOracle, opt: Any) -> dict[str, Any]:
    traj = oracle.trajectory_frame()
    origins: Mapping[str, str] = getattr(opt, "origins", None) or {}
    traj.insert(0, "optimizer", spec.optimizer)
    traj.insert(1, "seed", spec.seed)
    traj.insert(2, "target", oracle.target)
    traj["origin"] = [origins.get(h, "") for h in traj["hash"]]
    traj["train_seconds_cum"] = traj["train_seconds"].fillna(0.0).cumsum()
    traj.to_csv(out / "trajectory.csv", index=False)
    best = traj.loc[traj["score"].idxmax()]
    arch = oracle.space.from_string(best["spec"])
    (out / "best_arch.json").write_text(arch.to_json() + "\n")
    summary = {"target": oracle.target, "optimizer": spec.optimizer, "evaluations": int(len(traj)),
               "trained_now": int((~traj["from_store"].astype(bool)).sum()),
               "from_store": int(traj["from_store"].astype(bool).sum()),
               "train_seconds": float(traj["train_seconds"].fillna(0.0).sum()),
               "best_val_metric": float(best["val_metric"]), "best_test_metric": float(best["test_metric"]),
               "best_hash": str(best["hash"]), "best_spec": str(best["spec"]), "store": spec.store}
    write_json_atomic(out / "summary.json", summary)
    _plot(traj, out / "best_so_far", oracle.target)
    return summary


def _plot(traj: pd.DataFrame, stem: Path, target: str) -> None:
    fig, (ax1, ax2) = new_figure((9, 3.6), ncols=2)
    ax1.plot(traj["step"], traj["best_val"], marker="o", ms=3)
    ax1.set_xlabel("architectures trained on the target")
    ax2.plot(traj["train_seconds_cum"] / 3600.0, traj["best_val"], marker="o", ms=3)
    ax2.set_xlabel("training time, hours (sum of train_seconds)")
    for ax in (ax1, ax2):
        ax.set_ylabel("best validation metric so far")
        ax.grid(alpha=0.3)
    fig.suptitle(f"live search on {target} (one seed)", fontsize=9)
    save_figure(fig, stem)


def parse_sources(value: str | None) -> tuple[str | None, list[str]]:
    """``STORE[:task,task...]`` -> (store path, task list; empty = every task of the store)."""
    if not value:
        return None, []
    path, sep, tasks = value.partition(":")
    if sep and not Path(value).exists():
        return path, [t.strip() for t in tasks.split(",") if t.strip()]
    return value, []

