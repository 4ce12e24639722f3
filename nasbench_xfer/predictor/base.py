"""The interface every performance predictor satisfies, and the predictor registry.

A predictor is fitted on a *history* ``{task: (architectures, scores)}`` (scores higher
is better; the target's entry may be missing or empty) and predicts a score for any
architecture on any task it knows.  The transfer predictor (:mod:`.transfer`), NAO's
predictor and the target-only scikit-learn regressors (:mod:`.sklearn_token`) all satisfy
:class:`Predictor`, so the ablation (``nasbench-xfer ablation --predictor NAME``) and any
user code treat them alike.

:data:`PREDICTORS` maps names to factories called as ``factory(space, seed=seed, **options)``;
plugins register under the entry-point group ``nasbench_xfer.predictors``, and any
``module:callable`` path is accepted as a name.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..registry import Registry
from ..space import SearchSpace

#: {task: (architectures, scores)}
History = Mapping[str, tuple[Sequence[Hashable], Sequence[float]]]


@runtime_checkable
class Predictor(Protocol):
    """A performance predictor: ``fit`` on a history, ``predict`` per task."""

    def fit(self, history: History, target: str | None = None) -> Predictor:
        """Fit on ``history``; ``target`` names the task predictions are wanted for (a
        target-only predictor raises ``ValueError`` when it has too few of its evaluations)."""
        ...

    def predict(self, task: str, archs: Sequence[Hashable]) -> np.ndarray:
        """Predicted score (higher is better) of each architecture on ``task``."""
        ...


#: every predictor factory by name (built-ins imported lazily: most need torch)
PREDICTORS: Registry[Any] = Registry("predictor", "predictors", paths=True)
PREDICTORS.lazy("xfernas", "nasbench_xfer.predictor.hedged:HedgedTransferPredictor",
                doc="the default transfer predictor: the sources' model and the target's own, "
                    "weighted by out-of-sample evidence on the target's evaluations")
PREDICTORS.lazy("xfernas-joint", "nasbench_xfer.predictor.transfer:TransferPredictor",
                doc="XferNAS's network fitted jointly on sources and target (calibrated head)")
PREDICTORS.lazy("xfernas-paper", "nasbench_xfer.predictor.transfer:paper_predictor",
                doc="XferNAS's transfer head and loss as the paper gives them (head='paper', no shrinkage) "
                    "on the package's NAO codec (README: Paper fidelity)")
PREDICTORS.lazy("nao", "nasbench_xfer.predictor.transfer:NAOPredictor",
                doc="NAO's predictor: the same model on the target's evaluations only")
PREDICTORS.lazy("ridge", "nasbench_xfer.predictor.sklearn_token:ridge",
                doc="ridge regression on the one-hot token encoding, target only")
PREDICTORS.lazy("random-forest", "nasbench_xfer.predictor.sklearn_token:random_forest",
                doc="random forest on the one-hot token encoding, target only")


def make_predictor(name: str, space: SearchSpace, seed: int, options: Mapping[str, Any] | None = None) -> Predictor:
    """The predictor called ``name`` (a registered name or a ``module:callable`` path),
    built as ``factory(space, seed=seed, **options)``."""
    return PREDICTORS.get(name)(space, seed=seed, **dict(options or {}))
