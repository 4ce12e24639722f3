"""`nasbench-xfer compare`: search strategies side by side on a target task."""
from __future__ import annotations

import os

import click

from ..optimizer import OptimizerError, list_optimizers
from ..oracle import OracleError
from ..space import SpaceError
from ..store import StoreError
from .params import config_option, executor_options, parse_key_values, parse_seeds, split_csv, store_input


@click.command("compare")
@config_option(spec_keys={"data": None, "package_version": None, "batch_size": 1}, nulls={"source_size": 0},
               help_extra=" A comparison's OUT/spec.json works as its config.")
@store_input("Benchmark store (HDF5) that answers the evaluations, or a surrogate benchmark file "
             "(`nasbench-xfer surrogate fit`): then any architecture of the space is answered.")
@click.option("--target", "--task", "-t", "target", required=True, help="Target task: the one searched on.")
@click.option("--sources", default=None,
              help="Comma-separated source tasks (their evaluations are the source knowledge). "
                   "Default: every other task of the store.")
@click.option("--optimizers", "-O", default="xfernas,nao,random,best-on-source,tapas,best-on-source-oracle",
              show_default=True,
              help="Comma-separated optimizers: built-in names, installed plugins "
                   "(entry-point group nasbench_xfer.optimizers) or module:Class paths.")
@click.option("--budget", "-b", default=33, show_default=True, type=int,
              help="Evaluations on the target per search (each distinct architecture costs one).")
@click.option("--seeds", default="10", show_default=True,
              help="Seeds per optimizer: a count N (seeds 0..N-1), a list (0,3,7) or a range (10-19).")
@click.option("--source-size", default=200, show_default=True, type=int,
              help="Random architectures per source task given to the optimizers (paper: 200; "
                   "0 = all).")
@click.option("--option", "options", multiple=True, metavar="OPT.KEY=VALUE",
              help="Optimizer option, e.g. --option best-on-source.source=cifar100 or "
                   "--option xfernas.epochs=100 (VALUE parsed as JSON when it can be; True/False/None as words too).")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Output folder (trajectories, summary, plots; rerun to resume).")
@click.option("--jobs", "-j", default=min(4, os.cpu_count() or 1), show_default=True, type=click.IntRange(min=1),
              help="Parallel processes (local executor).")
@executor_options
def compare_cmd(store, target, sources, optimizers, budget, seeds, source_size, options, out, jobs, executor):
    """Run search strategies on TARGET for several seeds and compare them.

    Writes OUT/trajectories.csv (+ .parquet with pyarrow): one row per evaluation;
    OUT/summary.csv and summary.md: best validation metric found and its test metric at
    budgets 10/33/100, regret to the table's best, evaluations needed to reach the
    table's top 1% and 5% (Kaplan-Meier median, censored at the budget), and paired
    Wilcoxon tests of xfernas against every other optimizer (seeds pair the searches;
    Holm-corrected per table; also OUT/paired_tests.csv); OUT/best_so_far.png/.pdf. Finished runs are kept in
    OUT/runs/, so an interrupted comparison continues where it stopped.

    --executor ray or slurm runs the searches on a cluster (STORE at the same path on every
    node); this process writes OUT.

    Example: nasbench-xfer compare -s transnas.h5 -t class_object --budget 33 --seeds 10 -o runs/cmp
    """
    from ..evaluate.runs import JobsFailed
    from ..evaluate.search import SearchSpec, compare
    from ..surrogate import SurrogateError
    from ..surrogate.view import open_benchmark

    opt_names = split_csv(optimizers)
    if not opt_names:
        raise click.ClickException(f"no optimizer given; available: {', '.join(list_optimizers())}")
    opts = parse_key_values(options, "--option", dotted=True, what="OPTIMIZER.KEY=VALUE")
    try:
        if sources is None:
            with open_benchmark(store) as st:   # a store or a surrogate benchmark file
                src = [t for t in st.tasks if t != target]
                if target not in st.tasks:
                    raise StoreError(f"target task {target!r} is not in {store} "
                                     f"(tasks: {', '.join(st.tasks)})")
        else:
            src = split_csv(sources)
            if not src:
                raise click.ClickException(f"--sources {sources!r} names no task (leave it out for every "
                                           f"other task of the store)")
        spec = SearchSpec(store=str(store), target=target, sources=src, optimizers=opt_names,
                          budget=budget, seeds=parse_seeds(seeds, bare_count=True),
                          source_size=None if source_size == 0 else source_size, options=opts)
        ex = executor.make(workers=jobs)
        try:
            config = click.get_current_context().meta.get("config") or {}
            result = compare(spec, out, jobs=jobs, executor=ex, expect_data=config.get("data"))
        finally:
            ex.close()
    except (StoreError, OptimizerError, OracleError, SpaceError, SurrogateError, JobsFailed) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(open(os.path.join(out, "summary.md")).read())
    click.echo(f"results in {out}/ (trajectories.csv, summary.csv, paired_tests.csv, best_so_far.png)")
    return result


@click.command("replot")
@click.argument("dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
def replot_cmd(dirs):
    """Rewrite the summaries and redraw the figures of `compare` output folders DIRS.

    Reads each folder's spec.json and trajectories.parquet (or .csv) and writes summary.csv,
    summary.md, paired_tests.csv and best_so_far.png/.pdf (and regret_by_time.png/.pdf where
    the trajectories have times) with the package's current statistics and style; nothing is
    searched again and the trajectories are taken as they are.

    Example: nasbench-xfer replot docs/results/compare/*/
    """
    from ..evaluate.search import replot_comparison

    for d in dirs:
        try:
            written = replot_comparison(d)
        except (OptimizerError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{d}: " + ", ".join(p.name for p in written))


def register(cli: click.Group) -> None:
    cli.add_command(compare_cmd)
    cli.add_command(replot_cmd)
