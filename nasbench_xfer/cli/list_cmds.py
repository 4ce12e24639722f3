"""``nasbench-xfer list KIND [PATTERN]``: what is registered, with one line of documentation each."""
from __future__ import annotations

import json
import re

import click

from ..registry import Registry

#: kind (as typed on the command line) -> "module:attribute" of its registry
REGISTRIES = {
    "optimizers": "nasbench_xfer.optimizer:OPTIMIZERS",
    "predictors": "nasbench_xfer.predictor.base:PREDICTORS",
    "spaces": "nasbench_xfer.space:SPACES",
    "protocols": "nasbench_xfer.harness.protocols:PROTOCOLS",
    "importers": "nasbench_xfer.importers:IMPORTERS",
    "surrogate-models": "nasbench_xfer.surrogate.models:SURROGATE_MODELS",
    "executors": "nasbench_xfer.executors:EXECUTORS",
}


def get_registry(kind: str) -> Registry:
    """The registry of ``kind`` (a key of :data:`REGISTRIES`)."""
    from ..registry import load_path

    return load_path(REGISTRIES[kind])


def _plain(doc: str) -> str:
    """Docstring markup (``code``, :role:`target`) as plain text for a terminal."""
    return re.sub(r":\w+:`~?([^`]+)`", r"\1", doc).replace("``", "")


@click.command("list")
@click.argument("kind", type=click.Choice(list(REGISTRIES)))
@click.argument("pattern", default="*")
@click.option("--json", "as_json", is_flag=True, help="Print name, origin and doc as JSON lines.")
def list_cmd(kind: str, pattern: str, as_json: bool) -> None:
    """List the registered KIND (optionally only names matching the glob PATTERN).

    Built-ins come first, then plugins installed through the entry-point group
    nasbench_xfer.<kind> (surrogate-models: nasbench_xfer.surrogate_models).
    """
    entries = get_registry(kind).describe(pattern)
    if as_json:
        for e in entries:
            click.echo(json.dumps({"name": e.name, "origin": e.origin, "doc": _plain(e.doc)}))
        return
    if not entries:
        click.echo(f"no {kind} match {pattern!r}")
        return
    width = max(len(e.name) for e in entries)
    for e in entries:
        origin = "" if e.origin == "builtin" else f"  [{e.origin}]"
        click.echo(f"{e.name:<{width}}  {_plain(e.doc)}{origin}")


def register(cli: click.Group) -> None:
    cli.add_command(list_cmd)
