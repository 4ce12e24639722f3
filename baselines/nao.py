"""NAO (Luo et al. 2018) on the target only: the XferNAS loop without source knowledge.

The predictor is :class:`nasbench_xfer.predictor.NAOPredictor` semantics
(``transfer=False``: one performance head, trained on the target's evaluations
only).  NAO needs target data before it can fit, so the first ``n_init``
evaluations (default 10) are random; then it refits every ``refit_every`` new
evaluations and proposes by gradient ascent from the best evaluated
architectures (step sizes growing until new architectures appear), with the
same pool screening as XferNAS on sampled tables.
"""
from __future__ import annotations

from typing import Any

from nasbench_xfer.xfernas import SurrogateSearch


class NAO(SurrogateSearch):
    """NAO (Luo et al. 2018): the same search on the target's evaluations only, no source knowledge."""

    name = "nao"
    transfer = False

    def __init__(self, n_init: int = 10, **options: Any):
        super().__init__(n_init=n_init, **options)
