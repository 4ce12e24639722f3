"""One registry type for every pluggable kind, and `nasbench-xfer list`."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from nasbench_xfer.cli.list_cmds import REGISTRIES, get_registry
from nasbench_xfer.cli.main import cli
from nasbench_xfer.harness.protocols import PROTOCOLS, Protocol, get_protocol, register_protocol
from nasbench_xfer.optimizer import OptimizerError, get_optimizer_class
from nasbench_xfer.predictor.base import PREDICTORS, Predictor, make_predictor
from nasbench_xfer.registry import Registry, RegistryError
from nasbench_xfer.space import NASNetSpace, SpaceError, get_space


class Thing:
    """A thing: first line.

    More text."""


def test_register_get_list_and_errors():
    reg: Registry = Registry("widget", "widgets")
    reg.register(Thing, name="thing")
    reg.register(Thing, name="thing")  # the same object again: a no-op
    reg.lazy("lazy-one", "collections:OrderedDict", doc="an ordered dict")

    @reg.register(name="deco")
    def factory():
        """Made by a decorator."""

    assert reg.list() == ["thing", "lazy-one", "deco"] and reg.list("*e*") == ["lazy-one", "deco"]
    assert reg.list("d*") == ["deco"] and len(reg) == 3 and "lazy-one" in reg and "nope" not in reg
    import collections

    assert reg["lazy-one"] is collections.OrderedDict and reg.get("deco") is factory
    assert [(e.name, e.doc) for e in reg.describe()] == [
        ("thing", "A thing: first line."), ("lazy-one", "an ordered dict"), ("deco", "Made by a decorator.")]
    with pytest.raises(RegistryError, match=r"unknown widget 'nope'; known: thing, lazy-one, deco$"):
        reg.get("nope")
    with pytest.raises(RegistryError, match="widget 'thing' is already registered"):
        reg.register(dict, name="thing")
    with pytest.raises(RegistryError, match="unknown widget 'json:dumps'"):  # paths only where allowed
        reg.get("json:dumps")
    paths: Registry = Registry("widget", "widgets", paths=True)
    assert paths.get("json:dumps") is json.dumps
    with pytest.raises(RegistryError, match="cannot load widget 'no.such.module:x'"):
        paths.get("no.such.module:x")


def test_package_registries_keep_their_error_types_and_mapping_behaviour():
    with pytest.raises(OptimizerError, match="unknown optimizer 'bogus'; known: random, best-on-source"):
        get_optimizer_class("bogus")
    with pytest.raises(SpaceError, match="unknown search space 'foo'; known: nasnet"):
        get_space("foo")
    with pytest.raises(ValueError, match="unknown protocol 'nope'; known: paper-search"):
        get_protocol("nope")
    with pytest.raises(ValueError, match="protocol 'smoke' is already registered"):
        register_protocol(Protocol("smoke", epochs=99, num_cells=1, filters=8))
    assert dict(PROTOCOLS)["paper-search"].epochs == 100 and list(PROTOCOLS)[0] == "paper-search"
    assert isinstance(get_space("nasnet"), NASNetSpace)


def test_every_builtin_predictor_satisfies_the_predictor_protocol():
    space = NASNetSpace()
    for name in PREDICTORS:
        assert isinstance(make_predictor(name, space, seed=0), Predictor), name
    with pytest.raises(RegistryError, match="unknown predictor 'magic'; known: xfernas, xfernas-joint, xfernas-paper"):
        make_predictor("magic", space, seed=0)


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_list_command_prints_every_entry_with_its_doc(kind):
    out = CliRunner().invoke(cli, ["list", kind, "--json"])
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.output.splitlines()]
    assert [r["name"] for r in rows] == get_registry(kind).list()
    assert all(r["doc"] and r["origin"] == "builtin" for r in rows), rows


def test_list_command_filters_and_rejects_unknown_kinds():
    out = CliRunner().invoke(cli, ["list", "optimizers", "best*"])
    assert out.exit_code == 0 and [line.split()[0] for line in out.output.splitlines()] == [
        "best-on-source", "best-on-source-oracle"]
    out = CliRunner().invoke(cli, ["list", "optimizers", "zzz*"])
    assert out.exit_code == 0 and "no optimizers match 'zzz*'" in out.output
    out = CliRunner().invoke(cli, ["list", "wizards"])
    assert out.exit_code == 2 and "'wizards' is not one of" in out.output


def test_seeds_are_parsed_alike_by_every_command():
    import click

    from nasbench_xfer.cli.params import parse_seeds

    assert parse_seeds("0,1,2") == [0, 1, 2]
    assert parse_seeds("5-8") == [5, 6, 7, 8]
    assert parse_seeds("0, 4-5") == [0, 4, 5]
    assert parse_seeds("3") == [3]                               # train: one seed
    assert parse_seeds("3", bare_count=True) == [0, 1, 2]        # compare/demo: a count, as before
    assert parse_seeds("10-12", bare_count=True) == [10, 11, 12]
    for bad, msg in (("x", "'x' is not a seed"), ("4-2", "runs backwards"), ("", "at least one seed"),
                     ("1,1", "given twice")):
        with pytest.raises(click.BadParameter, match=msg):
            parse_seeds(bad)
    with pytest.raises(click.BadParameter, match=r"at least 1, got 0 \(for the single seed 0 write 0-0\)"):
        parse_seeds("0", bare_count=True)
    assert parse_seeds("0-0", bare_count=True) == [0]
