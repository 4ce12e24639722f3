"""``nasbench-xfer surrogate fit|info|query``: surrogate benchmarks fitted on a store."""
from __future__ import annotations

import json

import click
import pandas as pd

from .params import parse_key_values, split_csv, store_input


@click.group("surrogate")
def surrogate_group() -> None:
    """Surrogate benchmarks: models fitted on a store that answer any architecture of its space."""


@surrogate_group.command("fit")
@store_input("Store to fit on.")
@click.option("--tasks", "-t", default=None, help="Comma-separated tasks (default: all).")
@click.option("--model", "-m", default="lgb", show_default=True,
              help="Surrogate model kind: lgb (trees per task), xfer (the transfer predictor on all tasks "
                   "together), ensemble (both averaged), or a plugin (`nasbench-xfer list surrogate-models`).")
@click.option("--param", "params", multiple=True,
              help="Model parameter KEY=VALUE (repeatable), e.g. members=5; ensemble: "
                   "'xfer={\"max_steps\": 2000}'.")
@click.option("--holdout", type=float, default=0.2, show_default=True,
              help="Fraction of architectures held out for validation (the saved model never saw them).")
@click.option("--noise", type=click.Choice(["auto", "seeds", "ensemble"]), default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="Surrogate file to write.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
def fit_cmd(store, tasks, model, params, holdout, noise, seed, out, overwrite) -> None:
    """Fit a surrogate benchmark on STORE's evaluations and validate it on held-out architectures."""
    import os

    from ..logs import get_logger
    from ..store import StoreError
    from ..surrogate import SurrogateError, fit_surrogate
    if os.path.exists(out) and os.path.exists(store) and os.path.samefile(out, store):
        raise click.ClickException(f"--out {out} is the store itself; give another file")
    names = split_csv(tasks) if tasks is not None else None
    if names is not None and not names:
        raise click.ClickException(f"--tasks {tasks!r} names no task")
    param_values = parse_key_values(params, "--param")
    try:
        sb = fit_surrogate(store, names or None, model=model, params=param_values,
                           holdout=holdout, seed=seed, noise=noise, log=get_logger(__name__).info)
        path = sb.save(out, overwrite=overwrite)
    except (SurrogateError, StoreError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a model library refusing a parameter value
        raise click.ClickException(f"fitting {model!r} with parameters {param_values or '(defaults)'} failed: "
                                   f"{exc.__class__.__name__}: {exc}") from None
    click.echo(f"wrote {path}")


@surrogate_group.command("info")
@click.argument("surrogate", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
def info_cmd(surrogate, as_json) -> None:
    """Space, model, provenance and per-task validation figures of a surrogate file."""
    from ..surrogate import SurrogateBenchmark, SurrogateError
    try:
        info = SurrogateBenchmark.load(surrogate).info()
    except SurrogateError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
        return
    prov = info["provenance"]
    click.echo(f"surrogate {surrogate}: space {info['space']}, model {info['model']} "
               f"{json.dumps(info['model_params'])}")
    click.echo(f"fitted on {prov.get('store')} (sha256 {str(prov.get('store_sha256'))[:12]})")
    click.echo(f"file format version {info['version']}, written by nasbench_xfer "
               f"{info.get('package_version') or '?'} {info.get('created') or ''}".rstrip())
    rows = []
    for t, i in info["tasks"].items():
        v = i["validation"]
        ceiling = v.get("noise_ceiling")
        rows.append({"task": t, "archs": i["num_archs"], "held out": v.get("held_out"),
                     "spearman": v.get("spearman"), "kendall": v.get("kendall"), "r2": v.get("r2"),
                     "kendall top10%": v.get("kendall_top10"), "noise": i["noise"]["kind"],
                     "ceiling: seed vs seed / surrogate vs mean": "-" if not ceiling else
                     f"{ceiling['kendall_seed_vs_seed']:.3f} / {ceiling['kendall_surrogate_vs_mean']:.3f} "
                     f"({ceiling['archs']} archs)",
                     "cost model": i["has_cost"]})
    click.echo(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.3f}"))


@surrogate_group.command("query")
@click.argument("surrogate", type=click.Path(dir_okay=False))
@click.option("--task", "-t", required=True)
@click.option("--arch", "-a", "archs", multiple=True, required=True, help="Spec string (repeatable).")
@click.option("--seed", type=int, default=None, help="Draw a noisy evaluation with this seed (default: the mean).")
def query_cmd(surrogate, task, archs, seed) -> None:
    """Predicted metric (and training seconds, where known) of architectures given as spec strings."""
    from ..space import SpaceError
    from ..surrogate import SurrogateBenchmark, SurrogateError
    try:
        sb = SurrogateBenchmark.load(surrogate)
        parsed = [sb.space.from_string(a) for a in archs]
        pred = sb.predict(task, parsed, seed=seed)
        cost = sb.cost(task, parsed)
    except (SurrogateError, SpaceError) as exc:
        raise click.ClickException(str(exc)) from None
    for a, p, c in zip(archs, pred, cost):
        click.echo(json.dumps({"arch": a, "task": task, "predicted": float(p),
                               "train_seconds": None if c != c else float(c), "seed": seed}))


def register(cli: click.Group) -> None:
    cli.add_command(surrogate_group)
