"""The optimizer protocol and the optimizer registry.

Lifecycle (driven by :func:`nasbench_xfer.evaluate.search.run_search`)::

    opt = OptimizerClass(**options)
    opt.setup(ctx)                 # once: space, target, source knowledge, budget, rng
    while budget left:
        archs = opt.ask(n)         # propose up to n architectures to evaluate
        opt.tell(archs, results)   # their validation metric on the target (higher is better)

That is all a simple optimizer implements.  With a tabular oracle
``ctx.candidates`` lists the architectures the table holds for the target.  If
``ctx.restricted`` (a sampled table such as a NASNet store) proposing anything
else is an error (:class:`~nasbench_xfer.oracle.OutOfPoolError`); for an
exhaustive table (NB201, TransNAS micro, NAS-Bench-Graph) any architecture of
``ctx.space`` can be asked.  A live oracle gives ``candidates=None``.

Registry: built-ins by name (``random``, ``best-on-source``, ``best-on-source-oracle``,
``tapas``, ``nao``, ``xfernas``), third-party optimizers through the entry-point group
``nasbench_xfer.optimizers`` (``name = "module:Class"``), or any
``module:Class`` path given directly.
"""
from __future__ import annotations

import importlib
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, ClassVar, NamedTuple

import numpy as np

from .space import SearchSpace

ENTRY_POINT_GROUP = "nasbench_xfer.optimizers"


class TaskData(NamedTuple):
    """Evaluations of one task: architectures and their metric (higher is better)."""

    archs: list
    scores: np.ndarray


@dataclass
class SearchContext:
    """Everything an optimizer may know when a search starts."""

    space: SearchSpace
    target: str
    #: source knowledge: evaluations of the source tasks (never of the target)
    sources: Mapping[str, TaskData]
    budget: int
    rng: np.random.Generator
    #: the target's evaluated pool (tabular oracle) or None (live oracle: anything can be trained)
    candidates: Sequence[Hashable] | None = None
    #: True when only ``candidates`` can be evaluated (a sampled table)
    restricted: bool = False
    #: per-task metadata (metric name, dataset, ...) for sources and target
    task_info: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: probe architectures (evaluated on the target and on every source, see
    #: :mod:`nasbench_xfer.baselines.probe`) and their scores on each source:
    #: {task: array aligned with ``probes``}.  Filled for optimizers with ``uses_probe``.
    probes: Sequence[Hashable] = ()
    probe_table: Mapping[str, np.ndarray] = field(default_factory=dict)
    #: the first probe and its source scores (older single-probe interface)
    probe: Hashable | None = None
    probe_scores: Mapping[str, float] = field(default_factory=dict)
    #: oracle knowledge, only for optimizers with ``uses_oracle_similarity`` (reference
    #: lines, not searches): each source's Spearman correlation with the target over the
    #: whole table
    task_similarity: Mapping[str, float] = field(default_factory=dict)

    def hash(self, arch: Hashable) -> str:
        return self.space.hash(arch)


class Optimizer:
    """Base class of search strategies (see the module docstring for the lifecycle)."""

    #: registry name
    name: ClassVar[str] = ""
    #: True if the optimizer evaluates ``ctx.probes`` first and reads ``ctx.probe_table``
    uses_probe: ClassVar[bool] = False
    #: number of probe architectures the runner should choose (``uses_probe``)
    n_probes: int = 8
    #: True if the optimizer reads ``ctx.task_similarity`` (an oracle: knows the target's table)
    uses_oracle_similarity: ClassVar[bool] = False

    def setup(self, ctx: SearchContext) -> None:
        self.ctx = ctx
        self.evaluated: dict[str, tuple[Hashable, float]] = {}
        #: where each proposed architecture came from, by hash (e.g. "screen", "ascent",
        #: "random", "probe", "source-best"); written to the trajectory's ``origin`` column
        self.origins: dict[str, str] = {}

    def ask(self, n: int) -> list:
        raise NotImplementedError

    def tell(self, archs: Sequence[Hashable], results: Sequence[float]) -> None:
        for a, r in zip(archs, results):
            self.evaluated[self.ctx.hash(a)] = (a, float(r))

    # helpers for subclasses -------------------------------------------------
    def mark(self, archs: Sequence[Hashable], origin: str) -> list:
        """Record ``origin`` for ``archs`` (first origin wins) and return them as a list."""
        archs = list(archs)
        origins = getattr(self, "origins", None)
        if origins is not None:
            for a in archs:
                origins.setdefault(self.ctx.hash(a), origin)
        return archs

    def is_new(self, arch: Hashable) -> bool:
        return self.ctx.hash(arch) not in self.evaluated

    def take_new(self, queue: list, n: int) -> list:
        """Pop up to ``n`` not yet evaluated, distinct architectures from the front of ``queue``."""
        out: list = []
        seen: set[str] = set()
        while queue and len(out) < n:
            a = queue.pop(0)
            h = self.ctx.hash(a)
            if h not in self.evaluated and h not in seen:
                seen.add(h)
                out.append(a)
        return out

    def best_evaluated(self, k: int) -> list:
        """The ``k`` best architectures evaluated so far (best first)."""
        items = sorted(self.evaluated.values(), key=lambda t: -t[1])
        return [a for a, _ in items[:k]]


class OptimizerError(ValueError):
    """An optimizer cannot be found or configured."""


#: built-in optimizers, imported lazily (``random`` needs no torch)
BUILTINS: dict[str, str] = {
    "random": "nasbench_xfer.baselines.random_search:RandomSearch",
    "best-on-source": "nasbench_xfer.baselines.best_on_source:BestOnSource",
    "best-on-source-oracle": "nasbench_xfer.baselines.best_on_source:BestOnSourceOracle",
    "tapas": "nasbench_xfer.baselines.tapas:TapasLike",
    "nao": "nasbench_xfer.baselines.nao:NAO",
    "xfernas": "nasbench_xfer.xfernas:XferNAS",
}


def _entry_points() -> dict[str, metadata.EntryPoint]:
    try:
        eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except TypeError:  # Python < 3.10 style
        eps = metadata.entry_points().get(ENTRY_POINT_GROUP, [])  # type: ignore[attr-defined]
    return {ep.name: ep for ep in eps}


def list_optimizers() -> list[str]:
    """Names of the built-in and installed (entry-point) optimizers."""
    return sorted(set(BUILTINS) | set(_entry_points()))


def _load_path(path: str) -> type:
    module, _, attr = path.partition(":")
    if not module or not attr:
        raise OptimizerError(f"{path!r} is not a 'module:Class' path")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise OptimizerError(f"cannot load optimizer {path!r}: {exc}") from None
    return obj


def get_optimizer_class(name: str) -> type[Optimizer]:
    """Resolve a built-in name, an entry-point name or a ``module:Class`` path."""
    if name in BUILTINS:
        cls = _load_path(BUILTINS[name])
    elif name in (eps := _entry_points()):
        try:
            cls = eps[name].load()
        except Exception as exc:
            raise OptimizerError(f"optimizer plugin {name!r} failed to load: {exc}") from None
    elif ":" in name:
        cls = _load_path(name)
    else:
        raise OptimizerError(f"unknown optimizer {name!r}; available: {', '.join(list_optimizers())} "
                             f"(or give a 'module:Class' path)")
    missing = [m for m in ("setup", "ask", "tell") if not callable(getattr(cls, m, None))]
    if not isinstance(cls, type) or missing:
        raise OptimizerError(f"{name!r} is not an optimizer class (missing {', '.join(missing) or 'a class'})")
    return cls


def make_optimizer(name: str, **options: Any) -> Optimizer:
    cls = get_optimizer_class(name)
    try:
        return cls(**options)
    except TypeError as exc:
        raise OptimizerError(f"optimizer {name!r} does not take options {sorted(options)}: {exc}") from None
