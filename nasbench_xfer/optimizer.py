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

Registry (:data:`OPTIMIZERS`, a :class:`~nasbench_xfer.registry.Registry`): built-ins by
name (``random``, ``best-on-source``, ``best-on-source-oracle``, ``tapas``, ``nao``,
``xfernas``), third-party optimizers through the entry-point group
``nasbench_xfer.optimizers`` (``name = "module:Class"``), or any ``module:Class`` path
given directly.  ``nasbench-xfer list optimizers`` prints them.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np

from .registry import Registry
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


class Optimizer(ABC):
    """Base class of search strategies.

    Lifecycle, in this order (the runner guarantees it; see the module docstring):

    1. ``__init__(**options)``: options only (from ``--option NAME.KEY=VALUE``), no data;
    2. :meth:`setup` once with the :class:`SearchContext`; subclasses call ``super().setup(ctx)``
       first, which sets :attr:`ctx`, :attr:`evaluated` and :attr:`origins`;
    3. :meth:`ask` then :meth:`tell`, repeated until the budget is spent.  ``ask(n)`` returns
       1..n architectures not evaluated before; ``tell`` receives them with their validation
       metric (higher is better), in the order asked; subclasses that override ``tell`` call
       ``super().tell(...)``.

    Asynchronous batches (a live search with ``--parallel K``): the runner asks for one
    architecture whenever a training slot frees, while others are still training, and tells
    each result as it arrives (so a batch may be told one architecture at a time, in the
    order the trainings end).  The architectures in flight are in :attr:`pending` (by hash);
    :meth:`is_new` and :meth:`take_new` skip them, so an optimizer built on those helpers
    never proposes one twice.  The runner also skips a repeated proposal by itself.

    Only :meth:`ask` is abstract.
    """

    #: registry name
    name: ClassVar[str] = ""
    #: True if the optimizer evaluates ``ctx.probes`` first and reads ``ctx.probe_table``
    uses_probe: bool = False
    #: number of probe architectures the runner should choose (``uses_probe``)
    n_probes: int = 8
    #: True if the optimizer reads ``ctx.task_similarity`` (an oracle: knows the target's table)
    uses_oracle_similarity: ClassVar[bool] = False

    #: the search context (set by :meth:`setup`)
    ctx: SearchContext
    #: every evaluated architecture by canonical hash: (architecture, metric)
    evaluated: dict[str, tuple[Hashable, float]]
    #: where each proposed architecture came from, by hash (e.g. "screen", "ascent",
    #: "random", "probe", "source-best"); written to the trajectory's ``origin`` column
    origins: dict[str, str]
    #: architectures asked for and still being evaluated (asynchronous batches), by hash
    pending: dict[str, Hashable]

    def check_tasks(self, target: str, sources: Sequence[str]) -> None:  # noqa: B027 - an optional hook
        """Refuse (OptimizerError) options that name tasks the search does not have; called
        before any search runs, so that such a typo fails at once rather than in every job.
        The default checks nothing."""

    def setup(self, ctx: SearchContext) -> None:
        self.ctx = ctx
        self.evaluated = {}
        self.origins = {}
        self.pending = {}

    @abstractmethod
    def ask(self, n: int) -> list:
        """Up to ``n`` (at least one) architectures to evaluate next, none evaluated before."""

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
        """Neither evaluated nor in flight."""
        h = self.ctx.hash(arch)
        return h not in self.evaluated and h not in getattr(self, "pending", ())

    def take_new(self, queue: list, n: int) -> list:
        """Pop up to ``n`` not yet evaluated, distinct architectures from the front of ``queue``."""
        out: list = []
        seen: set[str] = set()
        while queue and len(out) < n:
            a = queue.pop(0)
            h = self.ctx.hash(a)
            if self.is_new(a) and h not in seen:
                seen.add(h)
                out.append(a)
        return out

    def best_evaluated(self, k: int) -> list:
        """The ``k`` best architectures evaluated so far (best first)."""
        items = sorted(self.evaluated.values(), key=lambda t: -t[1])
        return [a for a, _ in items[:k]]


class OptimizerError(ValueError):
    """An optimizer cannot be found or configured."""


def _check_optimizer(name: str, cls: Any) -> None:
    missing = [m for m in ("setup", "ask", "tell") if not callable(getattr(cls, m, None))]
    if not isinstance(cls, type) or missing:
        raise OptimizerError(f"{name!r} is not an optimizer class (missing {', '.join(missing) or 'a class'})")


#: every optimizer by name; built-ins are imported lazily (``random`` needs no torch)
OPTIMIZERS: Registry[type[Optimizer]] = Registry("optimizer", "optimizers", error=OptimizerError, paths=True,
                                                 check=_check_optimizer)
OPTIMIZERS.lazy("random", "nasbench_xfer.baselines.random_search:RandomSearch")
OPTIMIZERS.lazy("best-on-source", "nasbench_xfer.baselines.best_on_source:BestOnSource")
OPTIMIZERS.lazy("best-on-source-oracle", "nasbench_xfer.baselines.best_on_source:BestOnSourceOracle")
OPTIMIZERS.lazy("tapas", "nasbench_xfer.baselines.tapas:TapasLike")
OPTIMIZERS.lazy("nao", "nasbench_xfer.baselines.nao:NAO")
OPTIMIZERS.lazy("xfernas", "nasbench_xfer.xfernas:XferNAS")
ENTRY_POINT_GROUP = "nasbench_xfer.optimizers"


def list_optimizers(pattern: str = "*") -> list[str]:
    """Names of the built-in and installed (entry-point) optimizers."""
    return OPTIMIZERS.list(pattern)


def get_optimizer_class(name: str) -> type[Optimizer]:
    """Resolve a built-in name, an entry-point name or a ``module:Class`` path."""
    return OPTIMIZERS.get(name)


def optimizer_label(name: str) -> str:
    """How results label the optimizer asked for as ``name``: a ``module:Class`` path by the
    class's ``name`` attribute when it has one that no other built-in or installed optimizer
    uses (so ``-O mine:SourceGreedy`` shows as ``source-greedy``), otherwise ``name`` itself."""
    if ":" not in name:
        return name
    cls = get_optimizer_class(name)
    label = getattr(cls, "name", "")
    if not isinstance(label, str) or not label.strip() or ":" in label:
        return name
    if label in list_optimizers() and get_optimizer_class(label) is not cls:
        return name  # the name belongs to another optimizer
    return label


def optimizer_labels(names: list[str]) -> dict[str, str]:
    """:func:`optimizer_label` of each name; a clear error if two would share a label."""
    labels = {n: optimizer_label(n) for n in names}
    seen: dict[str, str] = {}
    for n, lab in labels.items():
        if lab in seen:
            raise OptimizerError(f"optimizers {seen[lab]!r} and {n!r} would both be labelled {lab!r} "
                                 "in the results: give the classes different `name` attributes")
        seen[lab] = n
    return labels


def make_optimizer(name: str, **options: Any) -> Optimizer:
    """The optimizer ``name`` built with ``options``; an :class:`OptimizerError` that says whether
    an option is unknown to it or has a value it cannot take."""
    import inspect

    cls = get_optimizer_class(name)
    try:
        inspect.signature(cls).bind(**options)
    except TypeError as exc:
        try:
            params = [p for p in inspect.signature(cls).parameters.values()
                      if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
            takes = ", ".join(p.name for p in params) or "none"
        except (TypeError, ValueError):
            takes = "?"
        raise OptimizerError(f"optimizer {name!r} does not take option(s) {sorted(options)} ({exc}); "
                             f"its options: {takes}") from None
    except ValueError:
        pass  # no signature to check (a C type): construction says what is wrong
    try:
        return cls(**options)
    except OptimizerError as exc:
        raise OptimizerError(f"optimizer {name!r}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise OptimizerError(f"optimizer {name!r}: bad option value(s) {options}: "
                             f"{exc.__class__.__name__}: {exc}") from None


def resolve_option_groups(names: Sequence[str], options: Mapping[str, Any],
                          also: Sequence[str] = ()) -> dict[str, Any]:
    """Per-optimizer ``options`` keyed by the names in ``names``: a group may name an optimizer
    as given (``xfernas``, ``mymod:MyOpt``) or by its label (``-O mymod:MyOpt`` is labelled by the
    class's ``name``).  A group that names no optimizer of ``names`` (nor of ``also``: those of
    the comparison being resumed) is an error, so a misspelt optimizer's options are never
    dropped in silence."""
    labels = optimizer_labels(list(names))
    by_label = {lab: n for n, lab in labels.items()}
    out: dict[str, Any] = {}
    for group, opts in options.items():
        if group not in labels and group in also:
            out[group] = opts  # an optimizer of the comparison being resumed, not run now
            continue
        name = group if group in labels else by_label.get(group)
        if name is None:
            raise OptimizerError(f"option group {group!r} (--option {group}.KEY=VALUE) names no optimizer "
                                 f"of this run ({', '.join(names)})")
        if name in out and out[name] != opts:
            raise OptimizerError(f"options for {name!r} given twice (as {name!r} and by its label)")
        out[name] = opts
    return out
