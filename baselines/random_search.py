"""Random search: uniform sampling without repeats."""
from __future__ import annotations

from nasbench_xfer.optimizer import Optimizer, SearchContext


class RandomSearch(Optimizer):
    """Evaluates architectures in a uniformly random order, never twice.

    With a tabular oracle it draws uniformly from the table's pool (every table
    entry equally likely); with a live oracle it samples the space (uniform over
    each decision, as the paper's random architectures).
    """

    name = "random"

    def setup(self, ctx: SearchContext) -> None:
        super().setup(ctx)
        self._order = (None if ctx.candidates is None
                       else iter(ctx.rng.permutation(len(ctx.candidates)).tolist()))

    def ask(self, n: int) -> list:
        out: list = []
        hashes: set[str] = set()
        while len(out) < n:
            if self._order is not None:
                i = next(self._order, None)
                if i is None:
                    break
                arch = self.ctx.candidates[i]  # type: ignore[index]  # _order is set only with candidates
            else:
                arch = self.ctx.space.sample(self.ctx.rng)
            h = self.ctx.hash(arch)
            if h in hashes or not self.is_new(arch):
                continue
            hashes.add(h)
            out.append(arch)
        return self.mark(out, "random")
