"""`nasbench-xfer demo`: the main job on the embedded default benchmark.

Until the package ships its own NASNet-space store, the embedded default is
NAS-Bench-Graph, which a dependency (PyPI ``nas-bench-graph``) ships: the demo
imports it into a store, shows it, computes which datasets transfer to which,
and compares the search strategies on one target with the others as sources.
"""
from __future__ import annotations

import os
from pathlib import Path

import click

from ..store import Store, StoreError
from .params import split_csv

FULL_DATASETS = ("cora", "citeseer", "pubmed", "cs", "physics", "photo", "computers", "arxiv")


@click.command("demo")
@click.option("--out", "-o", default="runs/demo", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the store, the analysis and the comparison.")
@click.option("--target", default="cora", show_default=True,
              help="NAS-Bench-Graph dataset searched on; the other full datasets are the sources.")
@click.option("--budget", default=33, show_default=True, help="Evaluations per search (the paper's 33).")
@click.option("--seeds", default=3, show_default=True, help="Seeds per optimizer.")
@click.option("--optimizers", default="xfernas,nao,random,best-on-source,tapas", show_default=True,
              help="Comma-separated optimizers compared in step 3.")
@click.option("--jobs", "-j", default=min(4, os.cpu_count() or 1), show_default=True, type=click.IntRange(min=1),
              help="Parallel processes for the searches.")
def demo_cmd(out: str, target: str, budget: int, seeds: int, optimizers: str, jobs: int) -> None:
    """Main job on the embedded default benchmark (NAS-Bench-Graph).

    \b
    1. imports NAS-Bench-Graph (9 datasets: 8 x 26,206 GNN architectures, proteins 2,021) into
       OUT/nas-bench-graph.h5 (kept for the next run) and prints `info`;
    2. prints the task-by-task rank correlations (which dataset transfers to which);
    3. compares xfernas, nao, random, best-on-source and tapas on TARGET with the other
       full datasets as sources (OUT/compare-TARGET-bBUDGET/: trajectories, summary, plot).
    """
    from ..evaluate.search import SearchSpec, compare
    from ..evaluate.transferability import best_sources, rank_correlations
    from ..importers.nas_bench_graph import import_nas_bench_graph
    from .store_cmds import info_cmd

    if target not in FULL_DATASETS:
        raise click.ClickException(f"--target must be one of {', '.join(FULL_DATASETS)}")
    if not split_csv(optimizers):
        raise click.ClickException(f"--optimizers {optimizers!r} names no optimizer")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    store = root / "nas-bench-graph.h5"
    fresh = True
    if store.exists():
        try:
            with Store.open(store) as st:
                fresh = bool(st.validate(full=False)) or target not in st.tasks
        except StoreError:
            fresh = True
    if fresh:
        click.echo(f"[1/3] importing NAS-Bench-Graph into {store} ...")
        import_nas_bench_graph(store, overwrite=True)
    else:
        click.echo(f"[1/3] using {store} (imported earlier)")
    ctx = click.get_current_context()
    ctx.invoke(info_cmd, store=str(store), as_json=False)

    click.echo("\n[2/3] rank correlation between datasets (Spearman, shared architectures)")
    with Store.open(store) as st:
        tasks = [t for t in FULL_DATASETS if t in st.tasks]
        corr = rank_correlations(st, tasks)
    mat = corr.pivot(index="task_a", columns="task_b", values="spearman").loc[tasks, tasks]
    click.echo(mat.round(2).to_string())
    click.echo("\nbest single source per dataset")
    click.echo(best_sources(corr).round(3).to_string(index=False))

    if target not in tasks:
        raise click.ClickException(f"--target must be one of {', '.join(tasks)}")
    sources = [t for t in tasks if t != target]
    click.echo(f"\n[3/3] search on {target!r} with sources {', '.join(sources)}: budget {budget}, "
               f"{seeds} seeds")
    spec = SearchSpec(store=str(store), target=target, sources=sources,
                      optimizers=split_csv(optimizers),
                      budget=budget, seeds=list(range(seeds)), source_size=200)
    cmp_dir = root / f"compare-{target}-b{budget}"
    try:
        compare(spec, cmp_dir, jobs=jobs)
    except (StoreError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo((cmp_dir / "summary.md").read_text())
    click.echo(f"results: {cmp_dir}/ (summary.md, trajectories.csv, best_so_far.png)")


def register(cli: click.Group) -> None:
    cli.add_command(demo_cmd)
