"""Analysis commands: transferability (task-by-task rank correlations)."""
from __future__ import annotations

from pathlib import Path

import click

from ..store import StoreError
from .store_cmds import open_store


@click.command("transferability")
@click.option("--store", "-s", "store", required=True, type=click.Path(dir_okay=False),
              help="Benchmark store (HDF5).")
@click.option("--tasks", default=None, help="Comma-separated subset of tasks (default: all).")
@click.option("--out", "-o", default=None, type=click.Path(file_okay=False),
              help="Folder for transferability.csv, best_sources.csv and heatmaps (PNG, PDF).")
@click.option("--min-shared", default=10, show_default=True,
              help="Fewest shared architectures for a pair to get a correlation.")
def transferability_cmd(store: str, tasks: str | None, out: str | None, min_shared: int) -> None:
    """Task-by-task rank correlations of STORE and the best single source of each task.

    Spearman and Kendall correlation of the validation metric on the architectures two
    tasks share: the NASTransfer-style view of which tasks carry knowledge to which.
    """
    from ..evaluate.transferability import best_sources, plot_heatmap, rank_correlations

    with open_store(store) as st:
        try:
            names = [t.strip() for t in tasks.split(",")] if tasks else None
            corr = rank_correlations(st, names, min_shared=min_shared)
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None
    for metric in ("spearman", "kendall"):
        mat = corr.pivot(index="task_a", columns="task_b", values=metric)
        order = list(dict.fromkeys(corr["task_a"]))
        click.echo(f"\n{metric} (architectures shared by each pair; rows: task, columns: source)")
        click.echo(mat.loc[order, order].round(3).to_string())
    best = best_sources(corr)
    click.echo("\nbest single source per task")
    click.echo(best.round(3).to_string(index=False) if len(best) else "(no pair shares architectures)")
    if out:
        path = Path(out)
        path.mkdir(parents=True, exist_ok=True)
        corr.to_csv(path / "transferability.csv", index=False)
        best.to_csv(path / "best_sources.csv", index=False)
        for metric in ("spearman", "kendall"):
            plot_heatmap(corr, path / f"transferability_{metric}", metric)
        click.echo(f"\nwrote {path}/transferability.csv, best_sources.csv, heatmaps (PNG, PDF)")


def register(cli: click.Group) -> None:
    cli.add_command(transferability_cmd)
