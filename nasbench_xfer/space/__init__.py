"""Search spaces: an immutable architecture type per space behind one interface.

``get_space(name, config)`` rebuilds a space from what a store records.
"""
from __future__ import annotations

from typing import Any

from ..registry import Registry
from .base import EnumerableSpace, SearchSpace, SpaceError
from .nasnet import OPS, XFERNASNET_JSON, Block, NASNetArch, NASNetSpace, named_arch

#: every search space class by name (plugins: entry-point group ``nasbench_xfer.spaces``)
SPACES: Registry[type[SearchSpace]] = Registry("search space", "spaces", error=SpaceError)
SPACES.register(NASNetSpace)


def register_space(cls: type[SearchSpace]) -> type[SearchSpace]:
    """Make a space class reachable by its ``name`` (used when opening stores)."""
    return SPACES.register(cls, name=cls.name)


def get_space(name: str, config: dict[str, Any] | None = None) -> SearchSpace:
    """The space called ``name`` built with ``config`` (as a store records it)."""
    return SPACES.get(name)(**(config or {}))


def list_spaces(pattern: str = "*") -> list[str]:
    return sorted(SPACES.list(pattern))


__all__ = ["SearchSpace", "EnumerableSpace", "SpaceError", "NASNetSpace", "NASNetArch", "Block", "OPS",
           "named_arch", "XFERNASNET_JSON", "SPACES", "get_space", "register_space", "list_spaces"]

# imported benchmarks' spaces
from .edge import EdgeCellArch, EdgeCellSpace, NB201Space, TransNASMicroSpace  # noqa: E402
from .graph import GraphArch, GraphSpace  # noqa: E402

register_space(NB201Space)
register_space(TransNASMicroSpace)
register_space(GraphSpace)
__all__ += ["EdgeCellArch", "EdgeCellSpace", "NB201Space", "TransNASMicroSpace",
            "GraphArch", "GraphSpace"]
