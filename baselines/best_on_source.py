"""Best-on-source: evaluate, in order, the best architectures of the most similar source task."""
from __future__ import annotations

import numpy as np

from ..optimizer import Optimizer, OptimizerError, SearchContext
from .probe import closeness


class BestOnSource(Optimizer):
    """The paper's "best on source task" baseline, as a search strategy.

    The most similar source is the one named by ``source``, or else the source
    whose probe score is closest to the target's (the probe costs the first
    evaluation, as in TAPAS).  It then evaluates that source's architectures
    from best to worst.  On a sampled table only source architectures that the
    target pool holds can be evaluated; they are taken in the same order.
    """

    name = "best-on-source"
    uses_probe = True

    def __init__(self, source: str | None = None):
        self.source = source

    def setup(self, ctx: SearchContext) -> None:
        super().setup(ctx)
        if self.source is not None and self.source not in ctx.sources:
            raise OptimizerError(f"best-on-source: source {self.source!r} is not among the sources "
                                 f"({', '.join(ctx.sources)})")
        if self.source is None and ctx.probe is None:
            raise OptimizerError("best-on-source: no architecture is evaluated on the target and on "
                                 "every source, so there is no probe; name the source (source=...)")
        self.chosen = self.source
        self._queue: list | None = None

    def _build_queue(self) -> None:
        data = self.ctx.sources[self.chosen]
        order = np.argsort(-np.asarray(data.scores), kind="stable")
        archs = [data.archs[i] for i in order]
        if self.ctx.restricted:
            pool = {self.ctx.hash(a) for a in self.ctx.candidates}
            archs = [a for a in archs if self.ctx.hash(a) in pool]
            if not archs:
                raise OptimizerError(f"best-on-source: none of source {self.chosen!r}'s architectures "
                                     f"is in the target's pool")
        self._queue = archs

    def ask(self, n: int) -> list:
        if self.chosen is None:
            return [self.ctx.probe] if self.is_new(self.ctx.probe) else []
        if self._queue is None:
            self._build_queue()
        return self.take_new(self._queue, n)

    def tell(self, archs, results) -> None:
        super().tell(archs, results)
        if self.chosen is None:
            for a, r in zip(archs, results):
                if self.ctx.hash(a) == self.ctx.hash(self.ctx.probe):
                    dist = closeness(r, self.ctx.probe_scores)
                    self.chosen = min(dist, key=lambda s: (dist[s], s))
