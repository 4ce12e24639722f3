"""Benchmark-table commands: info, query, export, validate, merge, compact."""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Hashable
from pathlib import Path

import click
import pandas as pd

from ..space import SearchSpace, SpaceError
from ..store import Store, StoreError
from ..store.locking import durable_replace, output_path, real_path
from .params import store_input


def open_store(path: str, mode: str = "r") -> Store:
    """Open a store for a command, turning every store error into a clean CLI error."""
    try:
        return Store.open(path, mode)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _fmt_range(r: list[float] | None) -> str:
    return "-" if r is None else f"{r[0]:.4g} .. {r[1]:.4g}"


@click.command("info")
@store_input("The store to summarise.")
@click.option("--json", "as_json", is_flag=True, help="Print the full summary as JSON.")
def info_cmd(store: str, as_json: bool) -> None:
    """Summarise STORE: search space, tasks, evaluation counts, metric ranges, provenance.

    A damaged store (what `validate --quick` finds) is an error (exit 1) that points
    to `validate`."""
    with open_store(store) as st:
        problems = st.validate(full=False)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise click.ClickException(f"{store}: damaged store: {problems[0]}{more}; run "
                                       f"`nasbench-xfer validate {store}` for the full report")
        try:
            summary = st.summary()
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
        return
    click.echo(f"store     {summary['path']}")
    click.echo(f"format    {summary['format']} v{summary['schema_version']} "
               f"(written by nasbench_xfer {summary['package_version']}, created {summary['created']})")
    click.echo(f"space     {summary['space']} {json.dumps(summary['space_config'])}")
    click.echo(f"archs     {summary['num_archs']}")
    rows = []
    for t, i in summary["tasks"].items():
        rows.append({"task": t, "dataset": i["dataset"], "metric": i["metric"],
                     "evals": i["num_evaluations"], "archs": i["num_archs"],
                     "val range": _fmt_range(i["val_metric_range"]), "epochs": i["max_epochs"],
                     "protocols": ",".join(i["protocols"]) or "-",
                     "source": _short(str(i["provenance"].get("source", "-")))
                     if isinstance(i["provenance"], dict) else "merged"})
    if rows:
        click.echo(pd.DataFrame(rows).to_string(index=False))
    else:
        click.echo("(no tasks)")
    prov = summary["provenance"]
    if prov:
        click.echo("provenance " + json.dumps(prov))


@click.command("query")
@store_input("The store to query.")
@click.option("--task", "-t", required=True, help="Task to query (see `info`).")
@click.option("--top", type=int, default=10, show_default=True,
              help="Show the best N evaluations by --sort (0: all).")
@click.option("--sort", "sort_by", default="val_metric", show_default=True,
              help="Column to rank by (higher first, unless the task's metric is lower-is-better).")
@click.option("--arch", "arch_spec", default=None,
              help="Only this architecture, as a spec string of the store's space (e.g. a NB201 "
                   "cell string, NASNet appendix-C JSON or a JSON file path).")
@click.option("--hash", "arch_hash", default=None, help="Only the architecture with this canonical hash.")
@click.option("--spec/--no-spec", default=True, show_default=True, help="Include spec strings.")
def query_cmd(store: str, task: str, top: int, sort_by: str, arch_spec: str | None,
              arch_hash: str | None, spec: bool) -> None:
    """Show evaluations of one task of STORE: the best ones, or those of one architecture."""
    if arch_spec is not None and arch_hash is not None:
        raise click.ClickException("give --arch or --hash, not both")
    if top < 0:
        raise click.ClickException(f"--top must be 0 (all) or a positive number, got {top}")
    with open_store(store) as st:
        try:
            frame = st.evaluations(task, spec=spec)
            higher = st.task_info(task)["higher_is_better"]
            if arch_spec is not None:
                arch_hash = st.space.hash(_arch_from_option(arch_spec, st.space))
        except (StoreError, SpaceError) as exc:
            raise click.ClickException(str(exc)) from None
    if arch_hash is not None:
        frame = frame[frame["hash"] == arch_hash]
        if frame.empty:
            raise click.ClickException(f"architecture {arch_hash} has no evaluation on task {task!r}")
    if sort_by not in frame.columns:
        raise click.ClickException(f"unknown column {sort_by!r}; columns: {', '.join(frame.columns)}")
    if frame.empty:
        click.echo(f"task {task!r} of {store} has no evaluations")
        return
    frame = frame.sort_values(sort_by, ascending=not higher, na_position="last")
    if top > 0:
        frame = frame.head(top)
    frame = frame.loc[:, [c for c in frame.columns if frame[c].notna().any() and c != "finished_at"]]
    with pd.option_context("display.max_colwidth", 200, "display.width", 250):
        click.echo(frame.to_string(index=False))


@click.command("export")
@store_input("The store to export.")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help="Output file: .csv or .parquet (parquet needs pyarrow).")
@click.option("--task", "-t", "tasks", multiple=True,
              help="Task(s) to export (repeatable); default: all tasks, stacked with a 'task' column.")
@click.option("--curves", is_flag=True, help="Add the per-epoch curves as columns curve_0, curve_1, ...")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
def export_cmd(store: str, out: str, tasks: tuple[str, ...], curves: bool, overwrite: bool) -> None:
    """Export evaluations of STORE as one tidy table (a row per evaluation).  The table is
    written beside --out and renamed over it, so an interrupted export leaves no partial file."""
    suffix = Path(out).suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise click.ClickException(f"--out must end in .csv or .parquet, got {out!r}")
    if real_path(out) == real_path(store) or (Path(out).exists() and Path(store).exists()
                                              and Path(out).samefile(store)):
        raise click.ClickException(f"--out {out} is the store itself; give another file")
    dest = output_path(out, overwrite, error=click.ClickException, hint="pass --overwrite to replace it")
    with open_store(store) as st:
        try:
            frames = []
            for t in dict.fromkeys(tasks or st.tasks):  # a task named twice is exported once
                frame = st.evaluations(t, spec=True)
                frame.insert(0, "task", t)
                if curves:
                    c = st.curves(t)
                    frame = pd.concat([frame, pd.DataFrame(c, columns=[f"curve_{i}" for i in
                                                                       range(c.shape[1])])], axis=1)
                frames.append(frame)
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    tmp = dest.with_name(f".{dest.name}.export-{os.getpid()}{suffix}")
    try:
        if suffix == ".csv":
            table.to_csv(tmp, index=False)
        else:
            table.to_parquet(tmp, index=False)
        durable_replace(tmp, dest)
    except ImportError as exc:
        raise click.ClickException(f"parquet export needs pyarrow ({exc}); "
                                   f"pip install pyarrow, or write .csv") from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    click.echo(f"wrote {len(table)} rows to {out}")


@click.command("validate")
@click.argument("stores", nargs=-1, required=True, type=click.Path())
@click.option("--quick", is_flag=True, help="Skip re-deriving every architecture's hash.")
def validate_cmd(stores: tuple[str, ...], quick: bool) -> None:
    """Check that each STORE is sound; exit status 1 if any has problems."""
    bad = 0
    for path in stores:  # every file is reported, whatever happened to the ones before it
        notes: list[str] = []
        n = ntasks = 0
        try:
            with Store.open(path, for_validation=True) as st:
                problems = st.validate(full=not quick, notes=notes)
                if not problems:
                    n = sum(st.num_evaluations(t) for t in st.tasks)
                    ntasks = len(st.tasks)
        except StoreError as exc:
            problems = [str(exc)]
        except Exception as exc:  # validate must report, never raise
            problems = [f"cannot be checked ({exc.__class__.__name__}: {exc})"]
        if problems:
            bad += 1
            click.echo(f"INVALID {path}")
            for p in problems:
                click.echo(f"  - {p}")
        else:
            click.echo(f"ok {path}: {ntasks} tasks, {n} evaluations")
        for note in notes:
            click.echo(f"  note: {note}")
    if bad:
        raise SystemExit(1)


@click.command("merge")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="Merged store to write.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
def merge_cmd(inputs: tuple[str, ...], out: str, overwrite: bool) -> None:
    """Merge INPUTS (e.g. shards written by `train --shard i/n`) into one store.

    Two evaluations are duplicates when task, architecture (canonical hash), seed and
    protocol are equal; the one from the earliest input on the command line is kept.
    """
    try:
        with Store.merge(list(inputs), out, overwrite=overwrite) as st:
            n = sum(st.num_evaluations(t) for t in st.tasks)
            click.echo(f"merged {len(inputs)} stores into {out}: {len(st.tasks)} tasks, "
                       f"{st.num_archs} architectures, {n} evaluations")
            rep = st.merge_report
            if rep.get("duplicates"):
                click.echo(f"dropped {rep['duplicates']} duplicate evaluation(s) (same task, "
                           f"architecture, seed and protocol; the earliest input's row was kept), "
                           f"{rep['conflicting']} of them with a different val/test metric or status")
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("compact")
@store_input("The store to compact.", exists=True)
def compact_cmd(store: str) -> None:
    """Fold STORE's append journal (STORE.journal) into the store file and remove it.

    Appends to a large store go to the journal (cheap, crash-safe); readers see its rows
    anyway.  Compacting rewrites the file once (atomically), e.g. before copying the store:
    a copy of the file alone lacks the journal's rows.
    """
    with open_store(store, "a") as st:
        try:
            done = st.compact()
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None
    if done["records"]:
        click.echo(f"compacted {store}: folded {done['records']} journal record(s), "
                   f"{done['rows']} evaluation(s), {done['journal_bytes']} bytes")
    else:
        click.echo(f"{store}: no journal to compact")


def _arch_from_option(value: str, space: SearchSpace) -> Hashable:
    """``--arch``: a spec string of ``space``, a file holding one, or (NASNet) a published name."""
    if value.lstrip().startswith(("{", "|", "(", "[")):
        return space.from_string(value)
    path = Path(value)
    try:
        is_dir, is_file = path.is_dir(), path.is_file()
    except OSError:  # e.g. a spec string longer than a file name may be
        is_dir = is_file = False
    if is_dir:
        raise SpaceError(f"--arch {value}: a folder; give a spec string of the {space.name} space or a "
                         f"file holding one")
    if is_file:
        try:
            return space.from_string(path.read_text())
        except (OSError, UnicodeDecodeError) as exc:
            raise SpaceError(f"--arch {value}: cannot read the file ({exc})") from None
    if space.name == "nasnet":
        from ..space.nasnet import NAMED_ARCHS, named_arch

        if value.lower() in NAMED_ARCHS:
            return named_arch(value)
    try:
        return space.from_string(value)
    except SpaceError as exc:
        raise SpaceError(f"--arch {value!r}: no such file, and not a spec string of the {space.name} "
                         f"space ({exc})") from None


def register(cli: click.Group) -> None:
    for cmd in (info_cmd, query_cmd, export_cmd, validate_cmd, merge_cmd, compact_cmd):
        cli.add_command(cmd)
