"""Parsing of the option values every command shares: comma lists, integer lists and
``KEY=VALUE`` options (values read as JSON where they parse, else kept as strings).

Errors are :class:`click.BadParameter` naming the option and the offending item.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import click


def split_csv(value: str | Iterable[str] | None) -> list[str]:
    """Comma-separated and/or repeated values, stripped, empty items dropped, in order."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [v.strip() for item in items for v in item.split(",") if v.strip()]


def parse_ints(value: str, option: str | None = None) -> list[int]:
    """``"0,10,25"`` -> ``[0, 10, 25]``."""
    try:
        return [int(v) for v in split_csv(value)]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}", param_hint=option) from None


def json_or_str(value: str) -> Any:
    """``"3"`` -> 3, ``"[1, 2]"`` -> [1, 2], ``"true"`` -> True, anything else as the string."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def parse_key_values(items: Iterable[str], option: str, *, dotted: bool = False,
                     what: str = "KEY=VALUE") -> dict[str, Any]:
    """``("a=1", "b=x")`` -> ``{"a": 1, "b": "x"}``; with ``dotted=True`` keys are
    ``GROUP.KEY`` and the result is ``{group: {key: value}}`` (e.g. per-optimizer options)."""
    out: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        key = key.strip()
        group, dot, name = key.partition(".")
        if not eq or not key or (dotted and (not dot or not group or not name)):
            raise click.BadParameter(f"{item!r}: expected {what}", param_hint=option)
        if dotted:
            out.setdefault(group, {})[name] = json_or_str(value)
        else:
            out[key] = json_or_str(value)
    return out
