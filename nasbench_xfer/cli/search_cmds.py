"""``nasbench-xfer search``: a search that trains architectures on a new dataset (see
:mod:`nasbench_xfer.evaluate.live_search`)."""
from __future__ import annotations

import json

import click

from .params import config_option, executor_options, parse_key_values, store_input


@click.command("search")
@config_option()
@click.option("--dataset", "-d", required=True,
              help="The new task's data: cifar10, cifar100, svhn, mnist, fashion_mnist, quickdraw, "
                   "imagefolder:<path>, npz:<path>.")
@click.option("--data-root", "--data", "data_root", default=None, type=click.Path(file_okay=False),
              help="Dataset root (default: $NASBENCH_XFER_DATA or ~/.cache/nasbench_xfer/data).")
@click.option("--task", "-t", default=None, help="Task name in the output store (default: the dataset).")
@click.option("--protocol", "-p", default="paper-search", show_default=True, help="Training protocol.")
@click.option("--optimizer", "-O", default="xfernas", show_default=True,
              help="Search strategy (nasbench-xfer list optimizers).")
@click.option("--sources", default=None,
              help="Source knowledge: STORE or STORE:task,task (a NASNet-space store; default: no sources).")
@click.option("--source-size", type=click.IntRange(min=0), default=200, show_default=True,
              help="Random evaluations per source task (0: all).")
@click.option("--budget", type=click.IntRange(min=1), default=33, show_default=True,
              help="Architectures to train on the target.")
@click.option("--budget-gpu-hours", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Also stop once the trainings' summed training time reaches this many hours.")
@store_input("Output store: every trained architecture is appended to it (created if missing).")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Folder for spec.json, trajectory.csv, summary.json, best_arch.json and the plot.")
@click.option("--parallel", "-k", type=click.IntRange(min=1), default=1, show_default=True,
              help="Trainings kept running at once (on the device; with --executor ray|slurm, tasks on the "
                   "cluster): a new architecture is asked for whenever one ends.")
@click.option("--seed", type=int, default=0, show_default=True, help="Search and training seed.")
@click.option("--device", default=None, help="cuda, cuda:1, cpu (default: cuda if available).")
@click.option("--option", "options", multiple=True, help="Optimizer option KEY=VALUE (repeatable).")
@executor_options
def search_cmd(dataset, data_root, task, protocol, optimizer, sources, source_size, budget, budget_gpu_hours,
               store, out, parallel, seed, device, options, executor) -> None:
    """Search on a new dataset by training: the optimizer proposes, the harness trains.

    Every trained architecture is appended to STORE the moment it finishes; a rerun with
    the same arguments continues a killed search (what STORE holds is not trained again).
    The end prints the best architecture (appendix-C JSON) and OUT holds the trajectory
    (evaluations and training time), a summary and a best-so-far plot against both.
    --executor ray or slurm trains each architecture as a task on a cluster (the dataset
    root at the same path on every node); this process writes STORE and OUT.
    """
    from ..evaluate.live_search import LiveSearchSpec, parse_sources, run_live_search
    from ..harness.runner import RunError
    from ..optimizer import OptimizerError
    from ..oracle import OracleError
    from ..space import SpaceError
    from ..store import StoreError

    src_store, src_tasks = parse_sources(sources)
    spec = LiveSearchSpec(dataset=dataset, protocol=protocol, optimizer=optimizer, budget=budget, store=store,
                          sources_store=src_store, sources=src_tasks, task=task, data_root=data_root, seed=seed,
                          source_size=None if source_size == 0 else source_size, parallel=parallel,
                          budget_seconds=None if budget_gpu_hours is None else budget_gpu_hours * 3600.0,
                          options=parse_key_values(options, "--option"))
    if device is None and not executor.local:
        device = "auto"  # each task's GPU when it has one, else its CPU
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    ex = None if executor.local else executor.make()
    try:
        summary = run_live_search(spec, out, device=device, log=lambda msg: None, executor=ex)
    except (OptimizerError, OracleError, StoreError, SpaceError, RunError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if ex is not None:
            ex.close()
    click.echo(f"{summary['evaluations']} evaluations ({summary['trained_now']} trained now, "
               f"{summary['from_store']} from {store}), {summary['train_seconds'] / 3600:.3f} h of training; "
               f"best val {_fmt(summary['best_val_metric'])} (test {_fmt(summary['best_test_metric'])})")
    with open(f"{out}/best_arch.json") as fh:
        click.echo(json.dumps(json.loads(fh.read())))


def _fmt(x: float | None) -> str:
    return "none" if x is None else f"{x:.4f}"


def register(cli: click.Group) -> None:
    cli.add_command(search_cmd)
