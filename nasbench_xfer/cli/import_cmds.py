"""``nasbench-xfer import ...``: turn published benchmark tables into stores."""
from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from typing import Any

import click

from ..importers import ImporterError, ImportResult
from ..importers.nas_bench_graph import DATASETS, PROTEINS_MODES
from ..importers.transnas import DATA_SUBDIR, TASKS, default_transnas_zip
from ..space import list_spaces


def _command(ctx: click.Context) -> str:
    """The command line as it ran (provenance), rebuilt from the parsed options."""
    parts = ctx.command_path.split()
    for p in ctx.command.params:
        if not isinstance(p, click.Option) or p.name not in ctx.params:
            continue
        value = ctx.params[p.name]
        flag = max(p.opts, key=len)
        if p.is_flag:
            if value:
                parts.append(flag)
            continue
        if value is None or value == () or value == []:
            continue
        for v in (value if isinstance(value, (list, tuple)) else [value]):
            parts += [flag, str(v)]
    return shlex.join(parts)


def _run(fn: Callable[..., ImportResult], **kwargs: Any) -> None:
    try:
        result = fn(**kwargs)
    except ImporterError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(result.summary())


def _split_list(values: tuple[str, ...]) -> list[str]:
    """Repeated and/or comma-separated option values, in order."""
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, val = item.partition("=")
        key, val = key.strip(), val.strip()
        if not sep or not key or not val:
            raise click.BadParameter(f"expected TASK=COLUMN, got {item!r}", param_hint=option)
        if key in out:
            raise click.BadParameter(f"task {key!r} given twice", param_hint=option)
        out[key] = val
    return out


@click.group("import")
def import_group() -> None:
    """Import a published benchmark table as a store (one search space per store).

    \b
    nas-bench-graph  NAS-Bench-Graph, 9 graph datasets x 26,206 GNNs (PyPI nas-bench-graph)
    transnas         TransNAS-Bench-101 micro, 7 tasks x 4,096 cells (NASLib export zip)
    csv              any CSV table: an architecture column, one metric column per task

    Each store records where its numbers come from (source, this command line,
    package versions, date, host): see `nasbench-xfer info STORE`.
    """


@import_group.command("nas-bench-graph")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help="Store file to write (e.g. nas_bench_graph.h5).")
@click.option("--datasets", "-d", multiple=True, metavar="NAME[,NAME...]",
              help=f"Datasets to import, repeated or comma-separated (default: all 9: "
                   f"{', '.join(DATASETS)}).")
@click.option("--proteins", type=click.Choice(PROTEINS_MODES), default="include", show_default=True,
              help="proteins was benchmarked with 5 of the 9 ops only. include: a task of the 9-op "
                   "store with rows for its 2,021 architectures (for transfer across datasets). "
                   "separate: its own store over the 5-op space (to search on proteins). "
                   "skip: leave it out.")
@click.option("--proteins-out", type=click.Path(dir_okay=False), default=None,
              help="With --proteins separate: where to write the proteins store (default: "
                   "OUT's name with '-proteins' added, or OUT itself when proteins is the only "
                   "dataset).")
@click.option("--overwrite", is_flag=True, help="Replace existing store files.")
@click.pass_context
def nas_bench_graph_cmd(ctx: click.Context, out: str, datasets: tuple[str, ...], proteins: str,
                        proteins_out: str | None, overwrite: bool) -> None:
    """Import NAS-Bench-Graph from the installed `nas-bench-graph` package.

    One task per dataset; per architecture: val_metric = valid_perf, test_metric =
    perf, params = para * 1e6 (the package gives millions; the store holds the raw
    count), extra column latency.  Metric: accuracy (proteins: ROC-AUC).

    \b
    Example:
      nasbench-xfer import nas-bench-graph --out nbg.h5
      nasbench-xfer import nas-bench-graph -d proteins --proteins separate --out nbg-proteins.h5
    """
    from ..importers import import_nas_bench_graph

    names = _split_list(datasets)
    unknown = [d for d in names if d not in DATASETS]
    if unknown:
        raise click.BadParameter(f"unknown dataset(s) {unknown}; choose from {', '.join(DATASETS)}",
                                 param_hint="--datasets")
    _run(import_nas_bench_graph, out=out, datasets=names or None, proteins=proteins,
         proteins_out=proteins_out, overwrite=overwrite, command=_command(ctx))


_DEFAULT_ZIP = default_transnas_zip()


@import_group.command("transnas")
@click.option("--zip", "zip_path", type=click.Path(dir_okay=False),
              default=str(_DEFAULT_ZIP) if _DEFAULT_ZIP else None,
              help=f"NASLib's TransNAS-Bench-101 micro export zip. Default: the shared copy "
                   f"../{DATA_SUBDIR} (next to the project or the working directory) if it exists.")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help="Store file to write (e.g. transnas_micro.h5).")
@click.option("--tasks", "-t", multiple=True, metavar="TASK[,TASK...]",
              help=f"Tasks to import, repeated or comma-separated (default: all 7: {', '.join(TASKS)}).")
@click.option("--overwrite", is_flag=True, help="Replace an existing store file.")
@click.pass_context
def transnas_cmd(ctx: click.Context, zip_path: str | None, out: str, tasks: tuple[str, ...],
                 overwrite: bool) -> None:
    """Import TransNAS-Bench-101 micro (4,096 cells, space transnas_micro).

    One task per benchmark task; val_metric = the export's val_accuracy, which is
    the task's validation metric: top-1 accuracy in percent (class_scene,
    class_object, jigsaw), negative L2 loss (room_layout), pixel accuracy in percent
    (segmentsemantic), SSIM (normal, autoencoder); higher is better for all.  No
    test metric (NaN).  Extra column zen_score: a zero-cost proxy of the untrained
    network, not a trained result.

    \b
    Example:
      nasbench-xfer import transnas --out transnas_micro.h5
    """
    from ..importers import import_transnas

    if zip_path is None:
        raise click.ClickException(f"no --zip given and none found at ../{DATA_SUBDIR}")
    names = _split_list(tasks)
    unknown = [t for t in names if t not in TASKS]
    if unknown:
        raise click.BadParameter(f"unknown task(s) {unknown}; choose from {', '.join(TASKS)}",
                                 param_hint="--tasks")
    _run(import_transnas, out=out, zip_path=zip_path, tasks=names or None, overwrite=overwrite,
         command=_command(ctx))


@import_group.command("csv")
@click.option("--csv", "csv_path", required=True, type=click.Path(dir_okay=False),
              help="The CSV table (header row, one architecture per row).")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="Store file to write.")
@click.option("--arch-column", required=True, help="Column holding the architecture spec strings.")
@click.option("--task-column", "task_columns", multiple=True, required=True, metavar="TASK=COLUMN",
              help="A task and the column with its (validation) metric; repeat for several tasks.")
@click.option("--test-column", "test_columns", multiple=True, metavar="TASK=COLUMN",
              help="Optional: the column with a task's test metric; repeatable.")
@click.option("--extra-column", "extra_columns", multiple=True, metavar="COLUMN",
              help="A numeric column stored with every task (e.g. latency); repeatable.")
@click.option("--space", default="nb201", show_default=True,
              help="Search space of the architecture column, one of: " + ", ".join(list_spaces())
                   + ". nb201 reads NAS-Bench-201 cell strings (|nor_conv_3x3~0|+|...~0|...~1|+...); "
                   "transnas_micro also '(2, 3, 2, 3, 2, 3)' and '64-41414-2_33_222'; "
                   'nas_bench_graph {"links":[0,0,1,2],"ops":["gcn","gat","sage","skip"]}; '
                   "nasnet the paper's appendix-C JSON.")
@click.option("--space-config", default=None, metavar="JSON",
              help='Space arguments as JSON, e.g. \'{"ops": ["gcn", "sage", "arma", "fc", "skip"]}\'.')
@click.option("--metric", default="accuracy", show_default=True, help="Name of the metric of all tasks.")
@click.option("--lower-is-better", is_flag=True, help="The metric is a loss/error (default: higher is better).")
@click.option("--dataset", "datasets", multiple=True, metavar="TASK=NAME",
              help="Dataset name of a task (default: the task name); repeatable.")
@click.option("--source", default=None, help="Where the table comes from (paper, URL; kept as provenance).")
@click.option("--sep", default=",", show_default=True, help="Field separator.")
@click.option("--overwrite", is_flag=True, help="Replace an existing store file.")
@click.pass_context
def csv_cmd(ctx: click.Context, csv_path: str, out: str, arch_column: str, task_columns: tuple[str, ...],
            test_columns: tuple[str, ...], extra_columns: tuple[str, ...], space: str,
            space_config: str | None, metric: str, lower_is_better: bool, datasets: tuple[str, ...],
            source: str | None, sep: str, overwrite: bool) -> None:
    """Import a CSV benchmark table: one architecture column, one metric column per task.

    Each row is one evaluation; empty metric cells are skipped; rows naming the same
    architecture become repeated evaluations of it (seed 0, 1, ...).

    \b
    Example (NAS-Bench-201 cell strings):
      nasbench-xfer import csv --csv nb201.csv --arch-column arch \\
          --task-column cifar10=c10_valid --task-column cifar100=c100_valid \\
          --extra-column latency --out nb201.h5
    """
    from ..importers import import_csv

    if space not in list_spaces():
        raise click.BadParameter(f"unknown space {space!r}; choose from {', '.join(list_spaces())}",
                                 param_hint="--space")
    config = None
    if space_config:
        try:
            config = json.loads(space_config)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--space-config") from None
        if not isinstance(config, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--space-config")
    _run(import_csv, csv_path=csv_path, out=out, arch_column=arch_column,
         task_columns=_pairs(task_columns, "--task-column"),
         test_columns=_pairs(test_columns, "--test-column"), extra_columns=list(extra_columns),
         space=space, space_config=config, metric=metric, higher_is_better=not lower_is_better,
         datasets=_pairs(datasets, "--dataset"), source=source, overwrite=overwrite,
         command=_command(ctx), sep=sep)


def register(cli: click.Group) -> None:
    """Add the ``import`` group to the root command."""
    cli.add_command(import_group)
