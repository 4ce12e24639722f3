"""`nasbench-xfer aggregate`: tables, ranks and critical-difference diagrams across comparisons."""
from __future__ import annotations

from pathlib import Path

import click


@click.command("aggregate")
@click.argument("dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Output folder: overview.md, regret.csv, ranks.csv, tally.csv, cd_<budget>.png/.pdf.")
@click.option("--focus", default="xfernas", show_default=True,
              help="Optimizer whose paired win/tie/loss against every other is tallied.")
def aggregate_cmd(dirs, out, focus):
    """Aggregate `compare` output folders DIRS (one per target; the folder name labels it).

    Mean regret per target, optimizer and budget (10/33/100); each optimizer's mean rank over
    the targets with Friedman's test and a critical-difference diagram (Nemenyi post-hoc,
    scikit-posthocs); FOCUS's paired Wilcoxon win/tie/loss counts (Holm within each target).
    Reference lines (names ending in -oracle) are left out of ranks and tests.

    Example: nasbench-xfer aggregate docs/results/compare/* -o docs/results/compare/aggregate
    """
    from ..evaluate.aggregate import write_aggregate

    try:
        agg = write_aggregate(dirs, out, focus=focus)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo((Path(out) / "overview.md").read_text())
    if agg["figures"]:
        click.echo(f"critical-difference diagrams: {', '.join(f'cd_{b}.png' for b in agg['figures'])} in {out}")


def register(cli: click.Group) -> None:
    cli.add_command(aggregate_cmd)
