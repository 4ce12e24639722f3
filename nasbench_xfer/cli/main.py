"""Entry point of ``nasbench-xfer``: the root group and the registration of command modules.

Each module under ``nasbench_xfer/cli/`` that defines ``register(cli)`` adds its
commands; the list below keeps the order of ``--help``.
"""
from __future__ import annotations

import importlib

import click

from .. import __version__

COMMAND_MODULES = ("demo_cmds", "store_cmds", "import_cmds", "compare_cmds", "analysis_cmds", "train_cmds",
                   "surrogate_cmds", "catalog_cmds", "list_cmds", "search_cmds", "aggregate_cmds")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="nasbench-xfer")
@click.option("--quiet", "-q", is_flag=True, help="Errors only: no progress messages or bars (results still print).")
@click.option("--verbose", "-v", count=True, help="Debug messages too.")
def cli(quiet: bool, verbose: int) -> None:
    """Transfer NAS toolkit (XferNAS, Wistuba 2019).

    Benchmark stores (HDF5) of architecture evaluations per task, importers of
    real benchmarks, the XferNAS transfer predictor and search baselines.
    Run `nasbench-xfer COMMAND --help` for any command; -q/-v go before COMMAND.
    """
    from ..logs import configure

    if quiet and verbose:
        raise click.UsageError("give --quiet or --verbose, not both")
    configure(-1 if quiet else min(verbose, 1))


for _name in COMMAND_MODULES:
    importlib.import_module(f"{__package__}.{_name}").register(cli)
