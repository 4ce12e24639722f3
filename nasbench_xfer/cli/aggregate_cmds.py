"""`nasbench-xfer aggregate`: tables, ranks and critical-difference diagrams across comparisons,
or one overview across ablations."""
from __future__ import annotations

from pathlib import Path

import click


@click.command("aggregate")
@click.argument("dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Output folder: overview.md, and for comparisons regret.csv, ranks.csv, tally.csv, "
                   "cd_<budget>.png/.pdf.")
@click.option("--focus", default="xfernas", show_default=True,
              help="Optimizer whose paired win/tie/loss against every other is tallied.")
def aggregate_cmd(dirs, out, focus):
    """Aggregate `compare` output folders DIRS (one per target; the folder name labels it), or
    `ablation` output folders.

    Comparisons: mean regret per target, optimizer and budget (10/33/100); each optimizer's mean rank over
    the targets with Friedman's test and a critical-difference diagram (Nemenyi post-hoc,
    scikit-posthocs); FOCUS's paired Wilcoxon win/tie/loss counts (Holm within each target).
    Reference lines (names ending in -oracle) are left out of the ranks, Friedman's test and the
    diagrams; the paired tests include them (and Holm counts them).

    Ablations (folders with an ablation's runs.jsonl): OUT/overview.md with one row per folder
    (zero-target Spearman/Kendall/Pearson per source size, transfer against no transfer with
    paired Wilcoxon calls, uncorrected and Holm, where the curves meet) and the dip table
    (Spearman at 0/10/25 target architectures per source size, goal >= -0.01).

    Examples: nasbench-xfer aggregate docs/results/compare/* -o docs/results/compare/aggregate;
    nasbench-xfer aggregate docs/results/ablation-dip/*-* -o docs/results/ablation-dip
    """
    from ..evaluate.ablation_summary import ablation_overview, is_ablation_folder
    from ..evaluate.aggregate import write_aggregate

    kinds = [is_ablation_folder(d) for d in dirs]
    if any(kinds):
        if not all(kinds):
            odd = [d for d, k in zip(dirs, kinds) if not k]
            raise click.ClickException(f"mixed folders: {', '.join(odd)} hold no ablation's runs.jsonl "
                                       "(aggregate comparisons and ablations separately)")
        try:
            text = ablation_overview(dirs)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        try:
            Path(out).mkdir(parents=True, exist_ok=True)
            (Path(out) / "overview.md").write_text(text)
        except OSError as exc:
            raise click.ClickException(f"cannot write {out}/overview.md: {exc.strerror or exc}") from None
        click.echo(text)
        return
    try:
        agg = write_aggregate(dirs, out, focus=focus)
    except OSError as exc:
        raise click.ClickException(f"cannot write {exc.filename or out}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo((Path(out) / "overview.md").read_text())
    if agg["figures"]:
        click.echo(f"critical-difference diagrams: {', '.join(f'cd_{b}.png' for b in agg['figures'])} in {out}")


def register(cli: click.Group) -> None:
    cli.add_command(aggregate_cmd)
