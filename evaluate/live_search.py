"""A search that trains: any optimizer, with source knowledge from a store, proposing NASNet-space
architectures that the harness trains on a new dataset (``nasbench-xfer search``).

Every trained architecture is appended to the output store the moment it finishes (it is
benchmark data like any other), and the search writes the same kind of trajectory as
``compare`` plus the best architecture in the paper's appendix-C JSON.

Asynchronous batches: with ``parallel=K`` K trainings run at once (in flight on one device,
:class:`~nasbench_xfer.harness.slots.DeviceSlots`, or K tasks of a Ray/SLURM executor,
:class:`~nasbench_xfer.harness.slots.ExecutorSlots`).  Whenever one ends, its result is appended
to the store and told to the optimizer, and the optimizer is asked for one new architecture
while the other K-1 are still training (no slot waits for the slowest of a batch).  What each
built-in optimizer makes of this: ``random`` draws as before; ``best-on-source`` and ``tapas``
take the next entry of their ranked list (probes first); ``nao`` and ``xfernas`` refit whenever
``refit_every`` results have arrived since the last fit, and between refits hand out the last
fit's ranked proposals, skipping what is in flight (``Optimizer.pending``).  With ``K = 1`` this
is the plain ask-one, tell-one loop.  On one device a refit (CPU work) pauses the trainings in
flight for its duration.

Resuming: every training started and every result told is also written, in order, to
``evaluations.jsonl`` in the output folder.  A rerun with the same arguments first tells the
optimizer those evaluations again, in the same order, from the store (``from_store`` in the
trajectory; a training started but never told, because the kill came between storing and
telling it, is told after them when the store holds it), then continues: nothing finished is
trained twice and nothing is lost.  Trainings in flight when the search was killed are lost
(they had not finished) and the optimizer is asked afresh.  The resumed optimizer has seen the
same results in the same order, but not the asks in between, so its later proposals need not
be those the uninterrupted run would have made.  An architecture the store already holds for
this task, protocol and seed (another search's, say) is answered from the store whenever it
is proposed, not trained again.

Budgets: a number of evaluations, and optionally training time (``budget_seconds``, the sum
of the evaluations' ``train_seconds``, GPU-seconds on a GPU): no training starts once it is
spent (the ones in flight finish and count).
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nasbench_xfer.evaluate.runs import derive_seed, make_output_folder, new_figure, save_figure, write_json_atomic
from nasbench_xfer.optimizer import OptimizerError, SearchContext, make_optimizer
from nasbench_xfer.oracle import LiveOracle, load_task_data
from nasbench_xfer.store import Store, StoreError, check_task_name


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
    architecture as a task, ``parallel`` at once (``device="auto"``: each task's GPU); this
    process appends their records to the store.  ``None``: ``device`` here, ``parallel``
    trainings in flight on it."""
    from nasbench_xfer.harness.protocols import get_protocol

    _check(spec)
    protocol = get_protocol(spec.protocol)
    out = Path(out)
    make_output_folder(out, error=OptimizerError)
    _check_folder(out / "spec.json", spec)
    if task_data is None:
        from nasbench_xfer import datasets as ds

        try:
            task_data = ds.load_task(spec.dataset, spec.data_root)
        except (FileNotFoundError, ValueError) as exc:
            raise OptimizerError(str(exc)) from None
    target = spec.task or task_data.name
    check_task_name(target)  # before the store is created
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
    _check_store(spec, target, task_data, protocol)
    # written once the arguments have proved good: a typo must not claim the folder
    try:
        write_json_atomic(out / "spec.json", asdict(spec))
    except OSError as exc:
        raise OptimizerError(f"cannot write {out / 'spec.json'}: {exc.strerror or exc}") from None
    search = _Search(spec, opt, oracle, out, progress)
    search.resume()
    search.run()
    if not oracle.trajectory:
        raise OptimizerError("the search evaluated nothing (is the training-time budget already spent?)")
    return _write_outputs(spec, out, oracle, opt)


def _check_store(spec: LiveSearchSpec, target: str, task_data: Any, protocol: Any) -> None:
    """The results store, if it exists, must take the target's evaluations (space, dataset,
    validation split): checked before the output folder is claimed."""
    from nasbench_xfer.harness.runner import RunError, check_store_fits

    path = Path(spec.store)
    if not path.exists():
        if path.parent.exists() and not os.access(path.parent, os.W_OK):
            raise OptimizerError(f"cannot create the store {path}: its folder {path.parent} is not writable")
        return
    try:
        with Store.open(path) as st:
            check_store_fits(st, path, target, task_data, protocol)
    except (RunError, StoreError) as exc:
        raise OptimizerError(str(exc)) from None


def _check_folder(spec_file: Path, spec: LiveSearchSpec) -> None:
    from nasbench_xfer.evaluate.runs import ensure_same_spec

    if spec_file.exists():
        try:
            old = json.loads(spec_file.read_text())
        except json.JSONDecodeError:
            raise OptimizerError(f"{spec_file} is not valid JSON; remove it or use a new output folder") from None
        ensure_same_spec(old, asdict(spec), str(spec_file.parent), "search", ignore=("budget", "budget_seconds"),
                         error=OptimizerError)


JOURNAL = "evaluations.jsonl"


def _read_journal(path: Path) -> list[dict[str, Any]]:
    """What a previous run of this search evaluated, in the order to tell it again: every
    ``tell`` line in order, then the trainings ``start``-ed but never told (a kill between
    storing a result and telling it: the store decides whether it finished).  A line cut short
    by a kill is dropped."""
    if not path.exists():
        return []
    told: dict[str, dict[str, Any]] = {}
    started: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(entry, dict) or "spec" not in entry or "hash" not in entry:
            continue
        if entry.get("event", "tell") == "start":
            started.setdefault(entry["hash"], entry)
        else:
            told.setdefault(entry["hash"], entry)
    return list(told.values()) + [e for h, e in started.items() if h not in told]


class _Search:
    """One search's loop: K training slots; a new architecture is asked for whenever one frees,
    and each result is told the moment its training ends (asynchronous batches)."""

    def __init__(self, spec: LiveSearchSpec, opt: Any, oracle: LiveOracle, out: Path, progress: bool):
        self.spec, self.opt, self.oracle = spec, opt, oracle
        self.journal = out / JOURNAL
        self.inflight: dict[str, Any] = {}
        self.bar = None
        if progress:
            from nasbench_xfer.logs import progress_bar

            self.bar = progress_bar(total=spec.budget, desc=f"search {oracle.target}", unit="arch")

    # -- bookkeeping ---------------------------------------------------------
    def _journal(self, event: str, arch: Any) -> None:
        h = self.oracle.space.hash(arch)
        origin = (getattr(self.opt, "origins", None) or {}).get(h, "")
        with open(self.journal, "a") as fh:
            fh.write(json.dumps({"event": event, "hash": h, "spec": self.oracle.space.to_string(arch),
                                 "origin": origin}) + "\n")

    def _tell(self, arch: Any, score: float, *, log: bool = True) -> None:
        h = self.oracle.space.hash(arch)
        pending = getattr(self.opt, "pending", None)
        if pending is not None:
            pending.pop(h, None)
        self.opt.tell([arch], [score])
        if log:
            self._journal("tell", arch)
        if self.bar is not None:
            self.bar.update(1)
            traj = self.oracle.trajectory
            self.bar.set_postfix(best=f"{traj[-1]['best_val']:.4g}", running=len(self.inflight),
                                 trained=sum(not r.get("from_store") for r in traj))

    def resume(self) -> None:
        """Tell the optimizer, in order, what this search's earlier run evaluated (from the store),
        up to the budget; the journal is then rewritten to list every stored evaluation once (a
        rerun with a smaller budget reports its first ones and keeps the others for a later,
        larger budget)."""
        entries = _read_journal(self.journal)
        if not entries:
            return
        archs = [self.oracle.space.from_string(e["spec"]) for e in entries]
        stored = self.oracle.stored(archs)
        origins = getattr(self.opt, "origins", None)
        kept: list[dict[str, Any]] = []
        listed: set[str] = set()
        for arch, e in zip(archs, entries):
            h = self.oracle.space.hash(arch)
            if h not in stored or h in listed:
                continue
            listed.add(h)
            kept.append(dict(e, event="tell"))
            if self.oracle.used < self.spec.budget and not self.oracle.seen(arch):
                if origins is not None and e.get("origin"):
                    origins.setdefault(h, e["origin"])
                self._tell(arch, self.oracle.answer(arch), log=False)
        tmp = self.journal.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(e) + "\n" for e in kept))
        tmp.replace(self.journal)

    def _spent(self) -> float:
        return sum(r.get("train_seconds", 0.0) or 0.0 for r in self.oracle.trajectory)

    def _room(self) -> bool:
        s = self.spec
        if self.oracle.used + len(self.inflight) >= s.budget:
            return False
        return s.budget_seconds is None or self._spent() < s.budget_seconds

    def _next(self) -> Any | None:
        """A new architecture to train: asks the optimizer (one at a time); one the store already
        holds is answered from it and told at once (a resumed or repeated search)."""
        stale = 0
        while self._room():
            proposed = list(self.opt.ask(1))[:1]
            arch = proposed[0] if proposed else None
            h = self.oracle.space.hash(arch) if arch is not None else None
            if arch is None or h in self.inflight or self.oracle.seen(arch):
                stale += 1
                if stale >= 3:
                    if self.inflight:
                        return None  # wait for a result: the optimizer may see further after it
                    raise OptimizerError(f"optimizer {self.spec.optimizer!r} proposed no new architecture "
                                         f"three times in a row after {self.oracle.used} evaluations")
                continue
            stale = 0
            if self.oracle.stored([arch]):
                self._tell(arch, self.oracle.answer(arch))
                continue
            return arch
        return None

    # -- the loop ------------------------------------------------------------
    def run(self) -> None:
        from nasbench_xfer.harness.runner import RunError

        slots = None
        errors: list[str] = []
        try:
            while True:
                while not errors and len(self.inflight) < self.spec.parallel:
                    arch = self._next()
                    if arch is None:
                        break
                    if slots is None:
                        slots = self.oracle.slots()
                    h = self.oracle.space.hash(arch)
                    self.inflight[h] = arch
                    pending = getattr(self.opt, "pending", None)
                    if pending is not None:
                        pending[h] = arch
                    self._journal("start", arch)
                    slots.start(h, arch, self.oracle.seed)
                if not self.inflight:
                    break
                assert slots is not None
                for h, rec in slots.wait():
                    arch = self.inflight.pop(h)
                    if isinstance(rec, Exception):  # the executor lost the task: stop starting new ones
                        errors.append(f"{h}: {rec}")
                        getattr(self.opt, "pending", {}).pop(h, None)
                        continue
                    self._tell(arch, self.oracle.record(arch, rec))
        finally:
            if self.inflight and slots is not None and hasattr(slots, "cancel"):
                slots.cancel()
            if self.bar is not None:
                self.bar.close()
        if errors:
            raise RunError(f"{len(errors)} training task(s) failed: " + "; ".join(errors[:5]) +
                           f" ({self.oracle.used} evaluations are stored in {self.spec.store}; "
                           f"run the same command again to continue)")


def _write_outputs(spec: LiveSearchSpec, out: Path, oracle: LiveOracle, opt: Any) -> dict[str, Any]:
    traj = oracle.trajectory_frame()
    origins: Mapping[str, str] = getattr(opt, "origins", None) or {}
    traj.insert(0, "optimizer", spec.optimizer)
    traj.insert(1, "seed", spec.seed)
    traj.insert(2, "target", oracle.target)
    traj["origin"] = [origins.get(h, "") for h in traj["hash"]]
    traj["train_seconds_cum"] = traj["train_seconds"].fillna(0.0).cumsum()
    traj.to_csv(out / "trajectory.csv", index=False)
    from nasbench_xfer.harness.runner import RunError

    ok = np.isfinite(traj["score"].to_numpy(dtype=float))
    if not ok.any():  # every training failed: there is no best architecture to report
        raise RunError(f"none of the search's {len(traj)} evaluations succeeded (each training failed: "
                       f"the store {spec.store} holds them with status 'failed' and their errors); "
                       f"no best architecture. The trajectory is in {out / 'trajectory.csv'}")
    best = traj.loc[traj["score"].where(ok).idxmax()]
    arch = oracle.space.from_string(best["spec"])
    (out / "best_arch.json").write_text(arch.to_json() + "\n")
    summary = {"target": oracle.target, "optimizer": spec.optimizer, "evaluations": int(len(traj)),
               "trained_now": int((~traj["from_store"].astype(bool)).sum()),
               "from_store": int(traj["from_store"].astype(bool).sum()),
               "train_seconds": float(traj["train_seconds"].fillna(0.0).sum()),
               "best_val_metric": _finite_or_none(best["val_metric"]),
               "best_test_metric": _finite_or_none(best["test_metric"]),
               "best_hash": str(best["hash"]), "best_spec": str(best["spec"]), "store": spec.store}
    write_json_atomic(out / "summary.json", summary)
    _plot(traj, out / "best_so_far", oracle.target)
    return summary


def _finite_or_none(x: Any) -> float | None:
    """``x`` as a float, or None (JSON null) where it is missing or not finite: JSON has no NaN."""
    v = float(x)
    return v if np.isfinite(v) else None


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

