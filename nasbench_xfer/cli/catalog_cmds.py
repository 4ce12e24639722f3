"""``nasbench-xfer benchmarks``: the known benchmarks, their citation, and importing them into the data home."""
from __future__ import annotations

import json
from dataclasses import asdict

import click


@click.command("benchmarks")
@click.argument("name", required=False)
@click.option("--import", "do_import", is_flag=True, help="Import NAME into the data home (once; then cached).")
@click.option("--source", default=None, type=click.Path(dir_okay=False),
              help="The file NAME's importer reads, where it needs one.")
@click.option("--home", default=None, type=click.Path(file_okay=False),
              help="Data home (default: $NASBENCH_XFER_HOME or the user data folder).")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def benchmarks_cmd(name, do_import, source, home, as_json) -> None:
    """List the known benchmarks (title, tasks, what importing needs, whether cached), or show
    NAME with its source, licence and BibTeX; `--import` imports NAME so that
    `nasbench_xfer.load(NAME)` opens it at once."""
    from ..catalog import KNOWN, cached_path, load
    from ..importers import ImporterError
    from ..store import StoreError

    def entry_of(b) -> dict:
        path = cached_path(b.name, home)
        return dict(asdict(b), importer=None, cached=str(path) if path.is_file() else None)
    if name is None:
        if do_import:
            raise click.UsageError("--import needs a benchmark NAME")
        entries = [entry_of(b) for b in KNOWN.values()]
        if as_json:
            click.echo(json.dumps(entries, indent=2))
            return
        for e in entries:
            click.echo(f"{e['name']:<16} {e['title']}")
            click.echo(f"{'':<16} tasks: {e['tasks']}")
            click.echo(f"{'':<16} needs: {e['needs']}; cached: {e['cached'] or 'no'}")
        return
    if name not in KNOWN:
        raise click.ClickException(f"unknown benchmark {name!r}; known: {', '.join(sorted(KNOWN))}")
    b = KNOWN[name]
    if do_import:
        try:
            with load(name, home=home, source=source) as st:
                click.echo(f"{name}: {len(st.tasks)} tasks, {st.num_archs} architectures in {st.path}")
        except (FileNotFoundError, ValueError, OSError, ImporterError, StoreError) as exc:
            raise click.ClickException(str(exc)) from None
    entry = entry_of(b)
    if as_json:
        click.echo(json.dumps(entry, indent=2))
        return
    for k in ("name", "title", "space", "tasks", "source", "licence", "needs", "cached"):
        click.echo(f"{k:<8} {entry[k] or 'no'}")
    click.echo("cite:\n" + b.bibtex)


def register(cli: click.Group) -> None:
    cli.add_command(benchmarks_cmd)
