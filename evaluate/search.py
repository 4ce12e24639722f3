"""Search comparisons: run optimizers against an oracle, summarise, plot.

:func:`run_search` runs one optimizer for one seed; :func:`compare` runs a grid
of optimizers x seeds in parallel processes, keeps one result file per run
under ``out/runs/`` (written atomically, so an interrupted comparison resumes
where it stopped and a rerun with the same arguments reproduces every number),
and writes ``trajectories.csv`` (and ``.parquet`` when pyarrow is installed),
``summary.csv``/``summary.md`` and ``best_so_far.png``/``.pdf``.
"""
from __future__ import annotations

import io
import json
import os
import textwrap
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nasbench_xfer import __version__
from nasbench_xfer.evaluate.runs import (
    data_fingerprint,
    derive_seed,
    ensure_same_spec,
    make_output_folder,
    new_figure,
    run_jobs,
    save_figure,
    write_json_atomic,
)
from nasbench_xfer.logs import get_logger
from nasbench_xfer.optimizer import (
    OptimizerError,
    SearchContext,
    make_optimizer,
    optimizer_label,
    resolve_option_groups,
)
from nasbench_xfer.oracle import OracleError, TabularOracle, load_task_data
from nasbench_xfer.store import StoreError
from nasbench_xfer.surrogate.view import SurrogateView, is_surrogate_file, open_benchmark

SUMMARY_BUDGETS = (10, 33, 100)


@dataclass
class SearchSpec:
    """What one comparison runs (also the identity of its result files)."""

    store: str
    target: str
    sources: list[str]
    optimizers: list[str]
    budget: int
    seeds: list[int]
    source_size: int | None = 200
    batch_size: int = 1
    options: dict[str, dict[str, Any]] = field(default_factory=dict)


def check_spec(spec: SearchSpec, resumed: Sequence[str] = ()) -> None:
    """Every bad-input check, before anything runs (clear messages); ``resumed``: the optimizers
    of the comparison this one resumes (option groups may name them)."""
    from nasbench_xfer.optimizer import get_optimizer_class

    twice = sorted({n for n in spec.optimizers if spec.optimizers.count(n) > 1})
    if twice:
        raise OptimizerError(f"optimizer(s) {twice} listed twice")
    for name in spec.optimizers:
        get_optimizer_class(name)  # an unknown name fails here, before any search runs
    options = resolve_option_groups(spec.optimizers, spec.options, resumed)  # labels distinct, no stray group
    built = [make_optimizer(name, **options.get(name, {}))  # every option checked by building each once
             for name in spec.optimizers]
    if spec.budget < 1:
        raise OptimizerError(f"budget must be at least 1, got {spec.budget}")
    if spec.source_size is not None and (not isinstance(spec.source_size, int) or spec.source_size < 1):
        raise OptimizerError(f"source size must be a positive number of evaluations per source task "
                             f"(or all of them: None; 0 on the command line), got {spec.source_size!r}")
    with open_benchmark(spec.store) as st:
        tasks = st.tasks
        if spec.target not in tasks:
            raise StoreError(f"target task {spec.target!r} is not in {spec.store} (tasks: {', '.join(tasks)})")
        for s in spec.sources:
            if s not in tasks:
                raise StoreError(f"source task {s!r} is not in {spec.store} (tasks: {', '.join(tasks)})")
        if spec.target in spec.sources:
            raise OptimizerError(f"the target {spec.target!r} cannot also be a source")
        for opt in built:
            opt.check_tasks(spec.target, list(spec.sources))
        if not isinstance(st, SurrogateView):
            TabularOracle(st, spec.target, spec.budget)  # budget vs pool


def run_search(spec: SearchSpec, optimizer: str, seed: int) -> pd.DataFrame:
    """One search: ``optimizer`` on ``spec.target`` with ``spec.budget`` evaluations, seeded."""
    from nasbench_xfer.baselines.probe import choose_probes, full_table_similarity

    with open_benchmark(spec.store) as st:
        oracle = _oracle(st, spec.target, spec.budget, seed)
        src_rng = np.random.default_rng(derive_seed(seed, "sources"))
        sources = load_task_data(st, spec.sources, spec.source_size, src_rng)
        opt = make_optimizer(optimizer, **spec.options.get(optimizer, {}))
        probes, probe_table = (choose_probes(st, spec.target, spec.sources, getattr(opt, "n_probes", 8))
                               if getattr(opt, "uses_probe", False) else ([], {}))
        similarity = (full_table_similarity(st, spec.target, spec.sources)
                      if getattr(opt, "uses_oracle_similarity", False) else {})
        ctx = SearchContext(space=st.space, target=spec.target, sources=sources, budget=spec.budget,
                            rng=np.random.default_rng(derive_seed(seed, optimizer)),
                            candidates=oracle.candidates, restricted=oracle.restricted,
                            task_info={t: st.task_info(t) for t in [spec.target, *spec.sources]},
                            probes=probes, probe_table=probe_table,
                            probe=probes[0] if probes else None,
                            probe_scores={s: float(v[0]) for s, v in probe_table.items()},
                            task_similarity=similarity)
        t0 = time.perf_counter()
        opt.setup(ctx)
        overhead = [time.perf_counter() - t0]  # optimizer seconds not yet charged to an evaluation
        stale = 0
        while oracle.used < spec.budget:
            n = min(spec.batch_size, spec.budget - oracle.used)
            t0 = time.perf_counter()
            archs = list(opt.ask(n))[:n]
            overhead[0] += time.perf_counter() - t0
            before = oracle.used
            results = [oracle.evaluate(a) for a in archs]
            for rec in oracle.trajectory[before:]:  # setup, ask (and the last tell) shared by the new ones
                rec["optimizer_seconds"] = overhead[0] / (oracle.used - before)
            overhead[0] = 0.0
            t0 = time.perf_counter()
            opt.tell(archs, results)
            overhead[0] += time.perf_counter() - t0
            stale = stale + 1 if oracle.used == before else 0
            if stale >= 3:
                raise OptimizerError(f"optimizer {optimizer!r} proposed no new architecture three "
                                     f"times in a row after {oracle.used} evaluations")
        traj = oracle.trajectory_frame()
        origins = getattr(opt, "origins", None) or {}
        traj["origin"] = [origins.get(h, "") for h in traj["hash"]]
        values = oracle.scores()
        best = oracle.best_score()
    traj.insert(0, "optimizer", optimizer_label(optimizer))
    traj.insert(1, "seed", seed)
    traj.insert(2, "target", spec.target)
    traj = add_regret(traj, values, best)
    get_logger(__name__).debug("%s seed %d on %s: %d evaluations, final regret %.4g, optimizer %.2f s",
                               optimizer, seed, spec.target, len(traj), traj["regret"].iloc[-1],
                               float(traj["optimizer_seconds"].sum()) if "optimizer_seconds" in traj else float("nan"))
    return traj


def _oracle(bench: Any, target: str, budget: int | None, seed: int) -> Any:
    """The oracle of a benchmark: the table of a store, or a surrogate answering any architecture
    (noisy draws seeded by the search seed; regret is the best mean over the whole space where it
    is enumerable, else over the view's reference set, minus the incumbent's mean)."""
    if isinstance(bench, SurrogateView):
        from nasbench_xfer.space import EnumerableSpace
        from nasbench_xfer.surrogate.oracle import SurrogateOracle

        # the whole space where it is enumerable (the oracle lists it); else the view's own sample
        whole = isinstance(bench.space, EnumerableSpace)
        return SurrogateOracle(bench.surrogate, target, budget, seed=derive_seed(seed, "surrogate"),
                               reference=None if whole else bench.reference, reference_size=bench.reference_size)
    return TabularOracle(bench, target, budget)


def _with_incumbent_means(traj: pd.DataFrame, oracle: Any) -> pd.DataFrame:
    """``mean_score`` and ``incumbent_mean_score`` for the rows of run files written before a
    noisy oracle recorded them: each evaluated architecture's mean prediction, and the mean of
    the one with the best draw so far in its search (the first of equal draws, as the oracle)."""
    if "incumbent_mean_score" in traj.columns and traj["incumbent_mean_score"].notna().all():
        return traj
    traj = traj.copy()
    traj["mean_metric"] = oracle.surrogate.predict(oracle.target, [oracle.space.from_string(s) for s in traj["spec"]])
    traj["mean_score"] = oracle.sign * traj["mean_metric"]
    traj["incumbent_mean_score"] = incumbent_values(traj, traj["mean_score"])
    return traj


def incumbent_values(traj: pd.DataFrame, values: Sequence[float] | pd.Series) -> np.ndarray:
    """Per row, ``values`` at the search's incumbent after that row: the first row of the strictly
    best ``score`` so far in its (optimizer, seed) run, in step order (the oracle's rule)."""
    score, steps, vals = traj["score"].to_numpy(), traj["step"].to_numpy(), np.asarray(values, dtype=float)
    out = np.full(len(traj), np.nan)
    for idx in traj.groupby(["optimizer", "seed"], sort=False).indices.values():
        best, v = -np.inf, np.nan
        for i in idx[np.argsort(steps[idx], kind="stable")]:
            if score[i] > best:
                best, v = score[i], vals[i]
            out[i] = v
    return out


def add_regret(traj: pd.DataFrame, pool_scores: np.ndarray, best: float) -> pd.DataFrame:
    """Regret to the table's best score and the fraction of the table strictly better than the
    incumbent (0 once the table's best is found).  The incumbent's value is ``best_score``, or,
    where the oracle's answers were noisy draws (a surrogate), its mean ``incumbent_mean_score``:
    the best draw so far overstates its architecture and would bias regret toward optimizers that
    try more architectures."""
    traj = traj.copy()
    value = traj["incumbent_mean_score"] if "incumbent_mean_score" in traj.columns else traj["best_score"]
    traj["regret"] = best - value
    sorted_vals = np.sort(pool_scores)
    traj["top_fraction"] = 1.0 - np.searchsorted(sorted_vals, value.to_numpy(),
                                                  side="right") / len(sorted_vals)
    return traj


def _resumed_optimizers(spec_file: Path) -> list[str]:
    """The optimizers a comparison's existing ``spec.json`` names (none if it has no runs yet
    or cannot be read: the resume check reports a torn file)."""
    if not spec_file.exists() or not any((spec_file.parent / "runs").glob("*__seed*.csv")):
        return []
    try:
        names = json.loads(spec_file.read_text()).get("optimizers") or []
    except (json.JSONDecodeError, OSError, AttributeError):
        return []
    return [str(n) for n in names]


def _run_file(out: Path, optimizer: str, seed: int) -> Path:
    safe = optimizer.replace(":", "_").replace("/", "_").replace(".", "_")
    return out / "runs" / f"{safe}__seed{seed}.csv"


def run_file_problem(path: Path, optimizer: str, seed: int, budget: int) -> str | None:
    """Why the run file of a finished search cannot be used (None if it can): unreadable, the
    wrong search's, columns missing, or not one row per evaluation 1..budget with a value.
    Run files are written whole (a temporary file renamed), so a damaged one was cut or edited
    by hand; ``compare`` runs that search again."""
    try:
        data = path.read_bytes()
        if not data:
            return "empty"
        if not data.endswith(b"\n"):  # every row, the last too, ends with a newline
            return "its last row is cut short"
        traj = pd.read_csv(io.BytesIO(data))  # the bytes just read: the file is read once
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        return f"unreadable ({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''})"
    missing = {"optimizer", "seed", "step", "hash", "val_metric"} - set(traj.columns)
    if missing:
        return f"no column(s) {', '.join(sorted(missing))}"
    label = optimizer_label(optimizer)  # how the run file names it (a module:Class by its name)
    if set(traj["optimizer"].astype(str)) != {label} or set(traj["seed"].tolist()) != {seed}:
        return f"holds another search than {label} seed {seed}"
    steps = pd.to_numeric(traj["step"], errors="coerce")
    if steps.tolist() != list(range(1, budget + 1)):
        return f"{int(steps.notna().sum())} of its {budget} evaluations, or not in order"
    if traj[["hash", "val_metric"]].isna().any().any():
        return "evaluations without an architecture or a value"
    return None


def _job(spec_dict: dict[str, Any], optimizer: str, seed: int, path: str) -> tuple[str, pd.DataFrame]:
    """One search, wherever it runs; its trajectory comes back to the driver, which writes ``path``."""
    import torch

    torch.set_num_threads(1)
    return path, run_search(SearchSpec(**spec_dict), optimizer, seed)


def _write_run(done: tuple[str, pd.DataFrame]) -> int:
    """Write a finished search's run file; its number of evaluations (the progress bar's step)."""
    path, traj = done
    tmp = path + f".tmp-{os.getpid()}"
    traj.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return len(traj)


def compare(spec: SearchSpec, out: str | os.PathLike, *, jobs: int = 1, progress: bool = True,
            executor: Any = None, expect_data: str | None = None) -> dict:
    """Run every optimizer for every seed, resumably; write trajectories, summary and plot.

    ``executor`` (:mod:`nasbench_xfer.executors`) runs the searches (default: ``jobs`` local
    processes); each finished run is written to ``out/runs/`` by this process.  A failed
    search does not stop the others: :class:`~nasbench_xfer.evaluate.runs.JobsFailed` names
    it at the end and a rerun runs only what is missing."""
    out = Path(out)
    resumed = _resumed_optimizers(out / "spec.json")
    spec = replace(spec, options=resolve_option_groups(spec.optimizers, spec.options, resumed))
    check_spec(spec, resumed)
    if not spec.seeds:
        raise OptimizerError("no seeds given: nothing to run")
    make_output_folder(out / "runs", error=OptimizerError)
    spec_file = out / "spec.json"
    spec_dict = asdict(spec)
    with open_benchmark(spec.store) as st:
        data = (st.fingerprint() if isinstance(st, SurrogateView)
                else data_fingerprint(st, [spec.target, *spec.sources]))
    if expect_data is not None and expect_data != data:
        raise OptimizerError(f"the configuration was written for other data: the evaluations of {spec.target} and "
                             f"its sources in {spec.store} have fingerprint {data}, the configuration says "
                             f"{expect_data} (re-imported or changed since); drop its \"data\" key to run anyway")
    if spec_file.exists() and any((out / "runs").glob("*__seed*.csv")):  # no run yet: start over
        try:
            old = json.loads(spec_file.read_text())
        except json.JSONDecodeError:
            raise OptimizerError(f"{spec_file} is not valid JSON (torn or edited); remove it to start "
                                 f"over, or use a new output folder") from None
        if isinstance(old.get("store"), str) and os.path.realpath(old["store"]) == os.path.realpath(spec.store):
            old["store"] = spec.store  # the same file spelled another way (./s.h5, a link)
        ensure_same_spec(old, spec_dict, str(out), "comparison",
                         ignore=("optimizers", "seeds", "data", "package_version"), error=OptimizerError)
        if old.get("data", data) != data:  # folders written before fingerprints: taken as they are
            raise OptimizerError(f"{out} holds runs on other data: the evaluations of {spec.target} and its "
                                 f"sources in {spec.store} changed since (fingerprint {old['data']} then, "
                                 f"{data} now); use a new output folder")
    # the folder's optimizers: those it held before (a resume may run a subset) and these
    every = list(dict.fromkeys([*resumed, *spec.optimizers]))
    write_json_atomic(spec_file, {**spec_dict, "optimizers": every, "data": data, "package_version": __version__})
    todo = []
    for o in spec.optimizers:
        for s in spec.seeds:
            path = _run_file(out, o, s)
            if path.exists():
                problem = run_file_problem(path, o, s, spec.budget)
                if problem is None:
                    continue
                get_logger(__name__).warning(f"{path} is damaged ({problem}): running {o} seed {s} again")
            todo.append((spec_dict, o, s, str(path)))
    total = len(spec.optimizers) * len(spec.seeds) * spec.budget  # progress in evaluations, as each search ends
    run_jobs(_job, todo, workers=jobs, executor=executor, on_done=_write_run, describe=lambda a: f"{a[1]} seed {a[2]}",
             progress=dict(total=total, initial=total - len(todo) * spec.budget, desc="evaluations", unit="eval")
             if progress else None)
    traj = pd.concat([pd.read_csv(_run_file(out, o, s)) for o in spec.optimizers for s in spec.seeds],
                     ignore_index=True)
    with open_benchmark(spec.store) as st:  # derived columns always from the current definitions
        oracle = _oracle(st, spec.target, None, 0)
        if "best_score" not in traj:  # run files written before scores were oriented
            traj["score"] = oracle.sign * traj["val_metric"]
            traj["best_score"] = traj.groupby(["optimizer", "seed"])["score"].cummax()
        if getattr(oracle, "noisy", False):
            traj = _with_incumbent_means(traj, oracle)
        traj = add_regret(traj, oracle.scores(), oracle.best_score())
    traj = add_times(traj)
    traj.to_csv(out / "trajectories.csv", index=False)
    try:
        traj.to_parquet(out / "trajectories.parquet", index=False)
    except ImportError:
        pass
    summary, tests, _ = write_comparison_outputs(traj, spec, out)
    return {"trajectories": traj, "summary": summary, "tests": tests}


def write_comparison_outputs(traj: pd.DataFrame, spec: SearchSpec,
                             out: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame, list[Path]]:
    """What a comparison derives from its trajectories, written to ``out``: ``summary.csv``,
    ``paired_tests.csv``, ``summary.md`` and the figures.  Returns (summary, tests, PNG paths)."""
    out = Path(out)
    summary = summarize(traj, spec.budget)
    summary.to_csv(out / "summary.csv", index=False)
    tests = paired_tests(traj)
    tests.to_csv(out / "paired_tests.csv", index=False)
    (out / "summary.md").write_text(summary_markdown(summary, spec, tests,
                                                     noisy="incumbent_mean_score" in traj.columns))
    return summary, tests, plot_comparison(traj, spec, out)


def plot_comparison(traj: pd.DataFrame, spec: SearchSpec, out: str | os.PathLike) -> list[Path]:
    """A comparison's figures in ``out``: ``best_so_far`` (regret against evaluations) and,
    where the trajectories have simulated times, ``regret_by_time``; the metric's name from the
    store (``"metric"`` when the store cannot be opened).  Returns the PNG paths."""
    out = Path(out)
    try:
        with open_benchmark(spec.store) as st:
            metric = st.task_info(spec.target).get("metric") or "metric"
    except (OSError, StoreError, ValueError):
        metric = "metric"
    sources = ", ".join(spec.sources) if len(spec.sources) <= 4 else f"{len(spec.sources)} source tasks"
    title = (f"{Path(spec.store).stem}: target {spec.target} (sources: {sources}; "
             f"{spec.source_size or 'all'} per source; budget {spec.budget})")
    plot_best_so_far(traj, out / "best_so_far", metric=metric, title=title)
    written = [out / "best_so_far.png"]
    if "sim_seconds" in traj and traj["sim_seconds"].notna().any():
        plot_regret_by_time(traj, out / "regret_by_time", metric=metric, title=title)
        written.append(out / "regret_by_time.png")
    return written


def replot_comparison(out: str | os.PathLike) -> list[Path]:
    """Rewrite the summaries (``summary.csv``/``.md``, ``paired_tests.csv``) and redraw the
    figures of a ``compare`` output folder from its ``spec.json`` and ``trajectories.parquet``
    (or ``.csv``), without running anything: e.g. after a package update changed a summary's
    statistics or the figures' style.  The trajectories (regret included) are taken as they
    are.  Returns the PNG paths written."""
    out = Path(out)
    spec_file = out / "spec.json"
    if not spec_file.exists():
        raise OptimizerError(f"{out} is not a compare output folder: it has no spec.json")
    try:
        raw = json.loads(spec_file.read_text())
    except json.JSONDecodeError:
        raise OptimizerError(f"{spec_file} is not valid JSON") from None
    names = {f.name for f in fields(SearchSpec)}
    spec = SearchSpec(**{k: v for k, v in raw.items() if k in names})
    try:
        traj = read_trajectories(out)
    except ValueError as exc:
        raise OptimizerError(str(exc)) from None
    if "incumbent_mean_score" not in traj.columns and is_surrogate_file(spec.store):
        get_logger("nasbench_xfer.evaluate.search").warning(
            "%s: these trajectories on a surrogate were written before regret scored the incumbent by "
            "its mean; its regret is the best noisy draw's. Run the same compare again (it derives the "
            "means from the run files) to rescore it", out)
    return write_comparison_outputs(add_times(traj), spec, out)[2]


def read_trajectories(folder: str | os.PathLike) -> pd.DataFrame:
    """The trajectories of a ``compare`` output folder (``trajectories.parquet``, else ``.csv``);
    ValueError naming the folder when it has neither or they lack the columns every summary reads."""
    d = Path(folder)
    pq, csv = d / "trajectories.parquet", d / "trajectories.csv"
    src = pq if pq.exists() else csv
    if not src.exists():
        raise ValueError(f"{d} is not a compare output folder (no trajectories.parquet or .csv)")
    try:
        traj = pd.read_parquet(src) if src is pq else pd.read_csv(src)
    except Exception as exc:  # noqa: BLE001 - pandas/pyarrow raise many kinds on a damaged file
        raise ValueError(f"{src} cannot be read, damaged? ({type(exc).__name__}: "
                         f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''})") from None
    missing = {"optimizer", "seed", "step", "regret"} - set(traj.columns)
    if missing:
        raise ValueError(f"{src}: trajectories lack the column(s) {', '.join(sorted(missing))}")
    for col in ("seed", "step", "regret"):  # a missing regret is allowed, a missing seed or step is not
        bad = pd.to_numeric(traj[col], errors="coerce").isna().to_numpy()
        if col == "regret":
            bad = bad & traj[col].notna().to_numpy()
        if bad.any():
            raise ValueError(f"{src}: column {col!r} has a value that is not a number (first in data "
                             f"row {int(np.flatnonzero(bad)[0]) + 1}): the file is damaged")
    return traj


def add_times(traj: pd.DataFrame) -> pd.DataFrame:
    """Comparisons by time: per search, the running sums of the evaluations' training seconds
    (from the table, where it records them: ``train_seconds``) and of the optimizer's own
    seconds (``optimizer_seconds``: setup, ask and tell, measured in the search process), and
    ``sim_seconds``, the simulated time at which each evaluation was known: both sums (only
    the optimizer's when the table records no training time, said by ``time_basis``).  Run
    files written before these were recorded get NaN."""
    traj = traj.copy()
    for col in ("train_seconds", "optimizer_seconds"):
        if col not in traj:
            traj[col] = np.nan
    g = traj.groupby(["optimizer", "seed"], sort=False)
    traj["train_seconds_cum"] = g["train_seconds"].transform(lambda x: x.fillna(0.0).cumsum())
    traj["optimizer_seconds_cum"] = g["optimizer_seconds"].transform(lambda x: x.fillna(0.0).cumsum())
    has_train = g["train_seconds"].transform(lambda x: bool(x.notna().all()))
    has_opt = g["optimizer_seconds"].transform(lambda x: bool(x.notna().all()))
    traj["sim_seconds"] = np.where(has_opt, traj["optimizer_seconds_cum"] +
                                   np.where(has_train, traj["train_seconds_cum"], 0.0), np.nan)
    traj["time_basis"] = np.where(~has_opt, "", np.where(has_train, "training + optimizer", "optimizer only"))
    return traj


def summarize(traj: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Per optimizer: best val / its test / regret at budgets 10, 33, 100 (mean, sample standard
    deviation over seeds, ddof=1 as the ablation tables; NaN for one seed),
    and evaluations needed to reach the table's top 1% and 5%: the Kaplan-Meier median over
    all seeds (a seed that never got there is censored at its last evaluation, not dropped;
    ``inf`` when fewer than half got there) and the fraction of seeds that got there."""
    from nasbench_xfer.evaluate.stats import km_median

    rows = []
    budgets = sorted({b for b in SUMMARY_BUDGETS if b <= budget} | {budget})
    for opt, g in traj.groupby("optimizer", sort=False):
        row: dict[str, Any] = {"optimizer": opt, "seeds": g["seed"].nunique()}
        for b in budgets:
            at = g[g["step"] <= b].groupby("seed").tail(1).set_index("seed")
            for col, name in (("best_val", "val"), ("test_at_best", "test"), ("regret", "regret")):
                row[f"{name}@{b}_mean"] = at[col].mean()
                row[f"{name}@{b}_std"] = at[col].std(ddof=1)
        for frac in (0.01, 0.05):
            times, events = [], []
            for _, sd in g.groupby("seed"):
                hit = sd.loc[sd["top_fraction"] <= frac, "step"]
                times.append(float(hit.iloc[0]) if len(hit) else float(sd["step"].max()))
                events.append(bool(len(hit)))
            key = f"top{int(frac * 100)}%"
            row[f"evals_to_{key}_median"] = km_median(times, events)
            row[f"reached_{key}"] = float(np.mean(events))
        if "optimizer_seconds" in g:  # the optimizer's own time per search (mean over seeds)
            row["optimizer_seconds_mean"] = g.groupby("seed")["optimizer_seconds"].sum(min_count=1).mean()
        rows.append(row)
    return pd.DataFrame(rows)


def regrets_at(traj: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Per (optimizer, seed): the best-so-far regret after ``budget`` evaluations."""
    upto = traj[traj["step"] <= budget].sort_values("step")
    return upto.groupby(["optimizer", "seed"], sort=False)["regret"].last().reset_index()


def paired_tests(traj: pd.DataFrame, focus: str = "xfernas", budgets: Sequence[int] | None = None,
                 alpha: float = 0.05) -> pd.DataFrame:
    """``focus`` against every other optimizer at each budget: paired two-sided Wilcoxon
    signed-rank tests on the per-seed regrets (a seed pairs the searches: the same source
    knowledge), Holm-corrected over the whole table (every opponent x budget).

    Columns: opponent, budget, pairs, mean and median regret difference and signed-rank sum
    (focus minus opponent: negative = focus better), p, p_holm, call (``win``/``loss`` when
    p_holm < ``alpha``, in the rank sum's direction, else ``tie``)."""
    from nasbench_xfer.evaluate.stats import holm, paired_wilcoxon

    opts = list(dict.fromkeys(traj["optimizer"]))
    if focus not in opts or len(opts) < 2:  # nothing to pair with
        return pd.DataFrame(columns=["opponent", "budget", "pairs", "mean_diff", "median_diff",
                                     "rank_sum", "p", "p_holm", "call"])
    if budgets is None:
        top = int(traj["step"].max())
        budgets = sorted({b for b in SUMMARY_BUDGETS if b <= top} | {top})
    rows = []
    for b in budgets:
        r = regrets_at(traj, b).pivot(index="seed", columns="optimizer", values="regret")
        for o in opts:
            if o == focus:
                continue
            res = paired_wilcoxon(r[focus], r[o])
            rows.append({"opponent": o, "budget": b, "pairs": res.n, "mean_diff": res.mean_diff,
                         "median_diff": res.median_diff, "rank_sum": res.rank_sum, "p": res.pvalue})
    out = pd.DataFrame(rows)
    out["p_holm"] = holm(out["p"].to_numpy())
    out["call"] = [paired_call(md, mn, ph, alpha, rank_sum=rs)
                   for md, mn, ph, rs in zip(out["median_diff"], out["mean_diff"], out["p_holm"], out["rank_sum"])]
    return out


def paired_call(median_diff: float, mean_diff: float, p: float, alpha: float = 0.05, *,
                rank_sum: float | None = None) -> str:
    """``win``/``loss`` for the focus optimizer when ``p`` (corrected) < ``alpha``, else ``tie``.
    The direction is the one the signed-rank test measured: the sign of ``rank_sum`` (``W+ - W-``
    of the regret differences, focus minus opponent; negative = focus lower) where given and not
    0, else the median difference's, else the mean's (the median and the rank sum can disagree:
    many small losses against a few large wins)."""
    if not p < alpha:
        return "tie"
    for direction in (rank_sum, median_diff, mean_diff):
        if direction is not None and np.isfinite(direction) and direction != 0:
            return "win" if direction < 0 else "loss"
    return "tie"


def _fmt_evals(med: float, frac: float) -> str:
    if np.isnan(med):
        return "-"
    if np.isinf(med):
        return f"not reached by half ({frac:.0%} of seeds)"
    return f"{med:.0f} ({frac:.0%} of seeds)"


def _pm(mean: float, std: float) -> str:
    """``mean ± std``; the mean alone where the std is undefined (one seed)."""
    return f"{mean:.4g}" if not np.isfinite(std) else f"{mean:.4g} ± {std:.2g}"


def summary_markdown(summary: pd.DataFrame, spec: SearchSpec, tests: pd.DataFrame | None = None, *,
                     noisy: bool = False) -> str:
    """The comparison's ``summary.md``; ``noisy``: the answers were noisy draws (a surrogate),
    which the text then says (val@b is the best draw, regret the incumbent's mean)."""
    budgets = sorted({int(c.split("@")[1].split("_")[0]) for c in summary.columns if c.startswith("val@")})
    lines = [f"Target `{spec.target}`, sources {', '.join(f'`{s}`' for s in spec.sources) or 'none'}, "
             f"budget {spec.budget}, {len(spec.seeds)} seeds, "
             f"source size {spec.source_size or 'all evaluations'} per task. "
             f"Mean ± sample std over seeds of the best validation metric found after b evaluations "
             f"(val@b) and its test metric (test@b); regret in metric units; evaluations to "
             f"reach the table's top 1%/5%: Kaplan-Meier median over all seeds (a seed that "
             f"never got there is censored at the budget), and the share of seeds that got there.",
             ""]
    if noisy:
        lines[0] += (" The answers were noisy draws of a surrogate: val@b is the best draw so far, while "
                     "regret is the best mean over the reference minus the mean of that draw's architecture "
                     "(the incumbent), so the two can disagree.")
    has_test = summary[[f"test@{b}_mean" for b in budgets]].notna().any().any()
    tests_b = budgets if has_test else []  # tables without a test metric (e.g. TransNAS) show none
    if not has_test:
        lines[0] += " This table has no test metric."
        lines.insert(1, "")
    head = ["optimizer"] + [f"val@{b}" for b in budgets] + [f"test@{b}" for b in tests_b] + \
           [f"regret@{b}" for b in budgets] + ["evals to top 1%", "evals to top 5%"]
    timed = "optimizer_seconds_mean" in summary and bool(summary["optimizer_seconds_mean"].notna().any())
    if timed:
        head.append("optimizer s/search")
        lines[0] += (" optimizer s/search: the optimizer's own time per search (setup, ask, tell; mean over "
                     "seeds), measured in the search process: it depends on the machine and its load.")
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in summary.iterrows():
        cells = [r["optimizer"]]
        cells += [_pm(r[f"{name}@{b}_mean"], r[f"{name}@{b}_std"])
                  for name, bs in (("val", budgets), ("test", tests_b), ("regret", budgets)) for b in bs]
        for key in ("top1%", "top5%"):
            cells.append(_fmt_evals(r[f"evals_to_{key}_median"], r[f"reached_{key}"]))
        if timed:
            cells.append(f"{r['optimizer_seconds_mean']:.3g}")
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    if tests is not None and len(tests):
        lines += ["", "Paired comparison of `xfernas` with each optimizer: two-sided Wilcoxon "
                  "signed-rank test on the per-seed regrets (seeds pair the searches), p-values "
                  f"Holm-corrected over this table's {len(tests)} tests; diff = xfernas minus the "
                  "other (negative: xfernas better); win/loss at Holm p < 0.05.", "",
                  "| opponent | budget | pairs | mean diff | median diff | p | p (Holm) | call |",
                  "|---|---|---|---|---|---|---|---|"]
        for _, t in tests.iterrows():
            lines.append(f"| {t['opponent']} | {t['budget']} | {t['pairs']} | {t['mean_diff']:.4g} | "
                         f"{t['median_diff']:.4g} | {t['p']:.3g} | {t['p_holm']:.3g} | {t['call']} |")
    return "\n".join(lines) + "\n"


def is_reference_line(optimizer: str) -> bool:
    """An optimizer that knows the target's table (named ``*-oracle``): a reference line drawn
    beside the searches, not a competitor."""
    return optimizer.endswith("-oracle")


#: the band of the regret plots (seaborn's ``errorbar``): one standard error of the mean over
#: seeds; the axis starts at a regret of 0, so the band never shows below what is achievable.
#: (seaborn's bootstrap interval, ``("ci", 95)``, stays inside the seeds' range by construction,
#: but its resampling loop takes ~20 s per figure of a 6-optimizer, 100-step comparison.)
REGRET_BAND = ("se", 1)


def _regret_lines(ax: Any, long: pd.DataFrame, x: str) -> set[int]:
    """Mean regret per optimizer against ``x`` as step lines (dashed: a reference line) with
    seaborn's band (:data:`REGRET_BAND`); ``long`` has columns optimizer, seed,
    ``x`` and regret.  Returns the seed counts drawn."""
    import seaborn as sns

    counts = long.groupby("optimizer", sort=False)["seed"].nunique()
    label = {o: f"{o} (n={n})" for o, n in counts.items()}
    long = long.assign(label=long["optimizer"].map(label))
    order = [label[o] for o in counts.index]
    dashes = {label[o]: (4, 2) if is_reference_line(str(o)) else "" for o in counts.index}
    sns.lineplot(data=long, x=x, y="regret", hue="label", hue_order=order, style="label",
                 style_order=order, dashes=dashes, estimator="mean", errorbar=REGRET_BAND,
                 drawstyle="steps-post", linewidth=1.5,
                 err_kws={"step": "post", "alpha": 0.15, "linewidth": 0}, ax=ax)
    return set(int(n) for n in counts)


def _finish_regret_plot(fig: Any, ax: Any, stem: Path, *, title: str, metric: str, seeds: set[int],
                        floor: float, xlabel: str) -> None:
    ax.set_yscale("symlog", linthresh=floor, linscale=0.5)
    ax.set_ylim(bottom=0)
    top = ax.get_ylim()[1]
    decades = 10.0 ** np.arange(np.ceil(np.log10(floor)), np.floor(np.log10(max(top, floor))) + 1)
    ax.set_yticks([0.0, *decades])  # no decade ticks inside the linear part
    ax.yaxis.set_minor_locator(_symlog_minor(floor, top))
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(f"regret ({metric}; log scale above {floor:.2g})")
    n_txt = "/".join(str(k) for k in sorted(seeds))
    caption = (f"line: mean over {n_txt} seeds; band: ± 1 standard error of the mean (seaborn); "
               f"axis linear below {floor:.2g} so that a regret of 0 shows; dashed: a reference "
               "line, not a search")
    ax.set_title("\n".join(textwrap.wrap(title, 80) + textwrap.wrap(caption, 95)), fontsize=7.5)
    ax.grid(alpha=0.3, which="major")
    ax.grid(alpha=0.08, which="minor")
    ax.legend(fontsize=8, title=None)
    save_figure(fig, stem)


def _symlog_minor(floor: float, top: float) -> Any:
    """Minor ticks 2..9 x each decade from ``floor`` up (none in the linear part near 0)."""
    from matplotlib.ticker import FixedLocator

    lo, hi = int(np.floor(np.log10(floor))), int(np.ceil(np.log10(max(top, floor))))
    ticks = [m * 10.0 ** e for e in range(lo, hi + 1) for m in range(2, 10)]
    return FixedLocator([t for t in ticks if floor <= t <= top])


def _floor(regret: pd.Series) -> float:
    """Where the regret axis turns from linear (around 0) to logarithmic: half the smallest
    positive regret."""
    positive = regret[regret > 0]
    return float(positive.min()) / 2 if len(positive) else 1e-6


def regret_by_time_frame(traj: pd.DataFrame, points: int = 300) -> pd.DataFrame:
    """Each search's best-so-far regret as a step function of simulated time
    (``sim_seconds``), read off one log-spaced grid shared by all searches, from the time
    every seed of an optimizer has its first result (a finished search keeps its last
    regret): columns optimizer, seed, seconds, regret."""
    d = traj[traj["sim_seconds"].notna()]
    pos = d.loc[d["sim_seconds"] > 0, "sim_seconds"]
    t_lo = max(float(pos.min()), 1e-6) if len(pos) else 1e-6
    grid = np.geomspace(t_lo, max(float(d["sim_seconds"].max()), t_lo * 10), points)
    parts = []
    for opt, g in d.groupby("optimizer", sort=False):
        curves = {}
        for seed, sd in g.groupby("seed"):
            sd = sd.sort_values("step")
            i = np.searchsorted(sd["sim_seconds"].to_numpy(), grid, side="right") - 1
            r = sd["regret"].to_numpy()
            curves[seed] = np.where(i >= 0, r[np.clip(i, 0, None)], np.nan)
        ok = ~np.isnan(np.vstack(list(curves.values()))).any(axis=0)
        for seed, c in curves.items():
            parts.append(pd.DataFrame({"optimizer": opt, "seed": seed, "seconds": grid[ok], "regret": c[ok]}))
    return pd.concat(parts, ignore_index=True)


def plot_regret_by_time(traj: pd.DataFrame, stem: Path, title: str = "", metric: str = "metric") -> None:
    """Regret against simulated time (``sim_seconds`` of :func:`add_times`), log time axis, step
    lines: the mean over seeds of :func:`regret_by_time_frame` with seaborn's band.
    The x label says whether the time includes training (the table records it) or is the
    optimizers' own time only.  PNG + PDF."""
    fig, ax = new_figure(figsize=(6.4, 4.2))
    long = regret_by_time_frame(traj)
    seeds = _regret_lines(ax, long, "seconds")
    ax.set_xscale("log")
    basis = sorted(set(traj.loc[traj["sim_seconds"].notna(), "time_basis"]) - {""})
    what = ("simulated time: the table's training seconds plus the optimizer's own seconds"
            if basis == ["training + optimizer"] else
            "the optimizers' own seconds only (the table records no training time)"
            if basis == ["optimizer only"] else "simulated seconds (" + "; ".join(basis) + ")")
    _finish_regret_plot(fig, ax, stem, title=title, metric=metric, seeds=seeds, floor=_floor(long["regret"]),
                        xlabel=f"seconds, log scale: {what}")


def plot_best_so_far(traj: pd.DataFrame, stem: Path, title: str = "", metric: str = "metric") -> None:
    """Regret (the table's best minus the best found so far, in ``metric``'s units) against
    evaluations, step lines: the mean over seeds with seaborn's band
    (:data:`REGRET_BAND`), on an axis that is logarithmic above the smallest positive regret
    and linear below it, so that a regret of 0 (the table's best found) shows.  PNG + PDF."""
    fig, ax = new_figure(figsize=(6.4, 4.2))
    parts = []  # a search that ended early (a small table exhausted) keeps its last regret
    for opt, g in traj.groupby("optimizer", sort=False):
        piv = g.pivot(index="step", columns="seed", values="regret").ffill()
        parts.append(piv.reset_index().melt(id_vars="step", var_name="seed", value_name="regret")
                     .assign(optimizer=opt))
    seeds = _regret_lines(ax, pd.concat(parts, ignore_index=True), "step")
    _finish_regret_plot(fig, ax, stem, title=title, metric=metric, seeds=seeds, floor=_floor(traj["regret"]),
                        xlabel="evaluations on the target")


__all__ = ["SearchSpec", "run_search", "compare", "write_comparison_outputs", "summarize", "paired_tests",
           "regrets_at", "add_times", "incumbent_values",
           "plot_regret_by_time", "regret_by_time_frame", "plot_comparison", "replot_comparison",
           "read_trajectories",
           "summary_markdown", "plot_best_so_far", "check_spec", "is_reference_line", "OracleError"]
