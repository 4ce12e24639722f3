"""Best-on-source: evaluate, in order, the best architectures of the most similar source task.

Two variants:

* ``best-on-source`` - a real search strategy.  It first evaluates the probe
  architectures (``ctx.probes``, chosen by :mod:`.probe`; ``n_probes`` of the
  budget), then picks the source whose ordering of the probes agrees best with
  the target's (Spearman over the probes; unit-free, so tasks with different
  metrics compare fairly), then evaluates that source's architectures from best
  to worst.
* ``best-on-source-oracle`` - a *reference line*, not a search strategy: the
  source is the one most rank-correlated (Spearman) with the target over the
  whole table, which only someone who already knows the target's table can
  choose.  No probes are spent.  It shows what choosing the right source is
  worth; a real search cannot match it by construction.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nasbench_xfer.baselines.probe import DEFAULT_PROBES, most_similar, rank_agreement
from nasbench_xfer.optimizer import Optimizer, OptimizerError, SearchContext


class BestOnSource(Optimizer):
    """The paper's "best on source task" baseline, as a search strategy (see the module docstring).

    ``source`` names the source to use (no probes are then evaluated);
    ``n_probes`` sets how many probe architectures characterise the target.
    On a sampled table only source architectures that the target pool holds
    can be evaluated; they are taken in the same order.
    """

    name = "best-on-source"
    uses_probe = True

    def __init__(self, source: str | None = None, n_probes: int = DEFAULT_PROBES):
        if not isinstance(n_probes, (int, np.integer)) or n_probes < 2:
            raise OptimizerError(f"{self.name}: n_probes must be an integer >= 2, got {n_probes!r}")
        self.source = source
        self.n_probes = int(n_probes)
        if source is not None:
            self.uses_probe = False  # the source is given: nothing to characterise

    def check_tasks(self, target: str, sources: Sequence[str]) -> None:
        if self.source is not None and self.source not in sources:
            raise OptimizerError(f"{self.name}: source {self.source!r} is not among the sources "
                                 f"({', '.join(sources) or 'none'})")

    def setup(self, ctx: SearchContext) -> None:
        super().setup(ctx)
        if self.source is not None and self.source not in ctx.sources:
            raise OptimizerError(f"{self.name}: source {self.source!r} is not among the sources "
                                 f"({', '.join(ctx.sources)})")
        if self.source is None and len(ctx.probes) < 2:
            raise OptimizerError(f"{self.name}: fewer than two architectures are evaluated on the "
                                 "target and on every source, so the tasks cannot be compared by "
                                 "rank; name the source (source=...)")
        self.chosen = self.source
        #: {source: (spearman, kendall)} over the probes, once they are evaluated
        self.agreement: dict[str, tuple[float, float]] = {}
        self._queue: list | None = None

    def _build_queue(self) -> None:
        assert self.chosen is not None, "the source is chosen before the queue is built"
        data = self.ctx.sources[self.chosen]
        order = np.argsort(-np.asarray(data.scores), kind="stable")
        archs = [data.archs[i] for i in order]
        if self.ctx.restricted:
            pool = {self.ctx.hash(a) for a in self.ctx.candidates or ()}
            archs = [a for a in archs if self.ctx.hash(a) in pool]
            if not archs:
                raise OptimizerError(f"{self.name}: none of source {self.chosen!r}'s architectures "
                                     f"is in the target's pool")
        self._queue = archs

    def _choose(self) -> None:
        """Pick the source once every probe is evaluated."""
        ctx = self.ctx
        target = [self.evaluated[ctx.hash(p)][1] for p in ctx.probes]
        self.agreement = rank_agreement(target, {s: ctx.probe_table[s] for s in ctx.sources})
        self.chosen = most_similar(self.agreement)

    def ask(self, n: int) -> list:
        if self.chosen is None:
            todo = [p for p in self.ctx.probes if self.is_new(p)]
            if todo:
                return self.mark(todo[:n], "probe")
            self._choose()
        if self._queue is None:
            self._build_queue()
        assert self._queue is not None
        return self.mark(self.take_new(self._queue, n), f"source-best:{self.chosen}")


class BestOnSourceOracle(BestOnSource):
    """ORACLE reference line: best-on-source with the source most rank-correlated with the target
    over the whole table (knowledge no search has; see the module docstring)."""

    name = "best-on-source-oracle"
    uses_probe = False
    uses_oracle_similarity = True

    def __init__(self):
        super().__init__(source=None)

    def setup(self, ctx: SearchContext) -> None:
        Optimizer.setup(self, ctx)
        sim = {s: v for s, v in ctx.task_similarity.items() if s in ctx.sources and np.isfinite(v)}
        if not sim:
            raise OptimizerError(f"{self.name}: no source shares enough architectures with the "
                                 "target to be rank-correlated with it")
        self.agreement = {s: (float(v), 0.0) for s, v in sim.items()}
        self.chosen = most_similar(self.agreement)
        self._queue = None
