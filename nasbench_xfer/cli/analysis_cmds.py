"""Analysis commands: transferability (task-by-task rank correlations) and the
correlation-vs-knowledge ablation (the paper's Figure 3)."""
from __future__ import annotations

import os
from pathlib import Path

import click

from ..store import StoreError
from .params import config_option, executor_options, parse_ints, parse_key_values, split_csv, store_input
from .store_cmds import open_store

#: the names of evaluate.ablation.FIGURE3_BANDS (kept here so that the CLI starts without pandas)
FIGURE3_BAND_NAMES = ("sd", "se", "ci")


def _open_any(path: str):
    """A store or a surrogate benchmark file, bad files as clean CLI errors."""
    from ..surrogate import SurrogateError
    from ..surrogate.view import open_benchmark

    try:
        return open_benchmark(path)
    except (StoreError, SurrogateError) as exc:
        raise click.ClickException(str(exc)) from None


@click.command("transferability")
@store_input("Benchmark store (HDF5).")
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

    if min_shared < 2:
        raise click.ClickException(f"--min-shared must be at least 2 (a rank correlation needs two "
                                   f"shared architectures), got {min_shared}")
    names = list(dict.fromkeys(split_csv(tasks))) if tasks is not None else None
    if names is not None and not names:
        raise click.ClickException(f"--tasks {tasks!r} names no task")
    with open_store(store) as st:
        if not st.tasks:
            raise click.ClickException(f"{store} has no tasks")
        try:
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
        try:
            path.mkdir(parents=True, exist_ok=True)
            corr.to_csv(path / "transferability.csv", index=False)
            best.to_csv(path / "best_sources.csv", index=False)
            for metric in ("spearman", "kendall"):
                plot_heatmap(corr, path / f"transferability_{metric}", metric)
        except OSError as exc:
            where = exc.filename or path
            raise click.ClickException(f"cannot write {where}: {exc.strerror or exc}") from None
        click.echo(f"\nwrote {path}/transferability.csv, best_sources.csv, heatmaps (PNG, PDF)")


@click.command("ablation")
@config_option()
@store_input("Benchmark store (HDF5), or a surrogate benchmark file (.surr: its reference table).")
@click.option("--target", "--task", "-t", "target", required=True,
              help="Target task whose held-out architectures are ranked.")
@click.option("--sources", default=None, help="Comma-separated source tasks (default: all other tasks).")
@click.option("--source-sizes", default="0,50,100,150", show_default=True,
              help="Architectures per source task (comma-separated).")
@click.option("--target-sizes", default="0,10,25,50,75,100,150", show_default=True,
              help="Target architectures known to the predictor (comma-separated; add larger "
                   "sizes such as 300,550 on request).")
@click.option("--splits", default=10, show_default=True, help="Random splits (reused for every setting).")
@click.option("--holdout", default=50, show_default=True, help="Held-out target architectures per split.")
@click.option("--seed", default=0, show_default=True, help="Seed of the splits.")
@click.option("--predictor", default="xfernas", show_default=True,
              help="Surrogate: xfernas (default: the sources' model and the target's own, weighted by "
                   "out-of-sample evidence), xfernas-joint (one network fitted on sources and target, "
                   "calibrated head), xfernas-paper (the paper's transfer head and loss), nao, ridge, random-forest, "
                   "or module:callable(space, seed, **opts).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Predictor option, e.g. --option epochs=20 (VALUE parsed as JSON when it can be; "
                   "True/False/None as words too).")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Folder: runs.jsonl (resumable), table.csv/.json, figure PNG/PDF.")
@click.option("--jobs", "-j", default=min(2, os.cpu_count() or 1), show_default=True, type=click.IntRange(min=1),
              help="Parallel processes (local executor).")
@executor_options
def ablation_cmd(store, target, sources, source_sizes, target_sizes, splits, holdout, seed, predictor,
                 options, out, jobs, executor):
    """Correlation of the surrogate's predictions with the truth vs source and target knowledge.

    The paper's section 4.5 protocol: hold out HOLDOUT target architectures, train the
    predictor on every (source size, target size) for SPLITS seeded splits, and record
    Pearson, Spearman, Kendall and top-k precision on the held-out set. Every finished
    fit is appended to OUT/runs.jsonl, so an interrupted ablation resumes where it
    stopped. Writes OUT/table.csv, OUT/table.json (mean and std over splits) and
    OUT/figure3_{spearman,kendall,pearson}.png/.pdf (x = target size, one curve per source
    size; mean over splits with a band of ± 1 std over splits; `figure3` redraws them with
    another band or overlays several folders). Predictors: xfernas is the
    default transfer model (the sources' model and the target's own, blended by evidence),
    xfernas-joint one network on sources and target, xfernas-paper the paper's transfer head and loss.
    --executor ray or slurm runs the fits on a cluster (STORE at the same path on every node).
    """
    from ..evaluate.ablation import AblationSpec, aggregate, plot_figure3, run_ablation
    from ..evaluate.runs import JobsFailed
    from ..oracle import OracleError

    opts = parse_key_values(options, "--option")
    with _open_any(store) as st:   # a store or a surrogate file
        src = split_csv(sources) if sources else [t for t in st.tasks if t != target]
    spec = AblationSpec(store=str(store), target=target, sources=src,
                        source_sizes=parse_ints(source_sizes, "--source-sizes"),
                        target_sizes=parse_ints(target_sizes, "--target-sizes"), splits=splits,
                        holdout=holdout, seed=seed, predictor=predictor, predictor_options=opts)
    path = Path(out)
    try:
        ex = executor.make(workers=jobs)
        try:
            runs = run_ablation(spec, path / "runs.jsonl", jobs=jobs, executor=ex)
        finally:
            ex.close()
    except (StoreError, OracleError, ValueError, JobsFailed) as exc:
        raise click.ClickException(str(exc)) from None
    table = aggregate(runs)
    table.to_csv(path / "table.csv", index=False)
    table.to_json(path / "table.json", orient="records", indent=1)
    for metric in ("pearson", "spearman", "kendall"):
        plot_figure3({predictor: runs}, path / f"figure3_{metric}", metric)
    for metric in ("spearman", "kendall", "pearson"):
        piv = table.pivot(index="target_size", columns="source_size", values=f"{metric}_mean")
        click.echo(f"\n{metric.capitalize()} correlation on {holdout} held-out {target} architectures "
                   f"(mean over {splits} splits; columns: architectures per source task)")
        click.echo(piv.round(3).to_string())
    click.echo(f"\nfit seconds: mean {runs['fit_seconds'].mean():.2f}, total {runs['fit_seconds'].sum():.0f}")
    click.echo(f"wrote {path}/runs.jsonl, table.csv, table.json, figure3_{{spearman,kendall,pearson}}.png/.pdf")


@click.command("figure3")
@click.argument("ablations", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--label", "labels", multiple=True,
              help="A label per ABLATION, in order (default: its predictor, else the folder name).")
@click.option("--metric", type=click.Choice(["spearman", "kendall", "pearson"]), default="spearman",
              show_default=True, help="Correlation plotted.")
@click.option("--source-sizes", default=None,
              help="Comma-separated source sizes to draw (default: every size all ABLATIONS share).")
@click.option("--band", type=click.Choice(FIGURE3_BAND_NAMES), default="sd", show_default=True,
              help="The band over splits (seaborn's errorbar): sd = ± 1 std, se = ± 1 standard error "
                   "of the mean, ci = 95% bootstrap interval of the mean.")
@click.option("--title", default=None, help="Figure title (default: the target and the predictor).")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help="Output path without extension: OUT.png and OUT.pdf.")
def figure3_cmd(ablations, labels, metric, source_sizes, band, title, out) -> None:
    """Draw the Figure 3 curves of one `ablation` output folder, or overlay several (e.g.
    predictors on one target) on one axis: a colour per folder, a line style per source size;
    mean over splits with seaborn's band, from the folders' per-split runs.jsonl (no refit)."""
    from ..evaluate.ablation import load_results, plot_figure3

    if labels and len(labels) != len(ablations):
        raise click.ClickException(f"{len(labels)} --label for {len(ablations)} ablation folders: give one per folder")
    runs = {}
    for k, folder in enumerate(ablations):
        f = Path(folder) / "runs.jsonl"
        if not f.exists():
            raise click.ClickException(f"{folder} has no runs.jsonl: is it an `nasbench-xfer ablation` output folder?")
        try:
            r = load_results(f)
        except ValueError as exc:
            raise click.ClickException(f"{f} is not an ablation's results file: {exc}") from None
        if r.empty:
            raise click.ClickException(f"{f} holds no finished fits yet")
        label = labels[k] if labels else (str(r["predictor"].iloc[0]) if "predictor" in r else Path(folder).name)
        if label in runs:
            label = f"{label} ({folder})"
        runs[label] = r
    try:
        plot_figure3(runs, out, metric, parse_ints(source_sizes, "--source-sizes") if source_sizes else None,
                     title, band)
    except OSError as exc:
        raise click.ClickException(f"cannot write {exc.filename or out}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {out}.png, {out}.pdf")


def register(cli: click.Group) -> None:
    cli.add_command(transferability_cmd)
    cli.add_command(ablation_cmd)
    cli.add_command(figure3_cmd)
