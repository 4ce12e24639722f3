"""A scikit-learn estimator view of any registered predictor.

:class:`PredictorRegressor` wraps a predictor of :data:`~nasbench_xfer.predictor.base.PREDICTORS`
(``"xfernas"``, ``"nao"``, ``"ridge"``, a plugin, ...) behind scikit-learn's regressor API, so
it drops into a researcher's own evaluation code, ``sklearn.base.clone``, ``cross_val_score``
and pipelines:

* ``X`` is a sequence of architectures of the estimator's space (objects or spec strings);
* ``y`` their metric on the estimator's ``task`` (``higher_is_better=False`` for a loss or an
  error: the predictor is fitted on ``-y`` and predictions are negated back);
* ``sources`` (transfer predictors) is the source knowledge ``{task: (archs, metrics)}``,
  higher-is-better scores as the predictors take them.

Predictions are in ``y``'s units: ``fit`` always has target evaluations, so the predictor
learns the target's scale from them (the transfer predictor predicts in normalised units only
for a task without evaluations, which this view cannot produce).  ``score`` is scikit-learn's
R^2; :func:`nasbench_xfer.evaluate.predictors.evaluate_predictor` gives the rank correlations
NAS cares about.  ``query`` is NASLib's name for ``predict``.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from ..space import SearchSpace, SpaceError, get_space
from .base import make_predictor

__all__ = ["PredictorRegressor"]


class PredictorRegressor(RegressorMixin, BaseEstimator):
    """``PredictorRegressor(predictor="xfernas", space="nasnet", task="target", sources=None,
    seed=0, options=None, higher_is_better=True)`` - see the module docstring."""

    def __init__(self, predictor: str = "xfernas", space: str | SearchSpace = "nasnet",
                 task: str = "target", sources: Mapping[str, tuple[Sequence[Any], Sequence[float]]] | None = None,
                 seed: int = 0, options: Mapping[str, Any] | None = None, higher_is_better: bool = True):
        self.predictor = predictor
        self.space = space
        self.task = task
        self.sources = sources
        self.seed = seed
        self.options = options
        self.higher_is_better = higher_is_better

    # -- helpers -----------------------------------------------------------
    def _space(self) -> SearchSpace:
        if isinstance(self.space, SearchSpace):
            return self.space
        if isinstance(self.space, str):
            return get_space(self.space)
        raise ValueError(f"space must be a SearchSpace or a registered space name, got {type(self.space).__name__}")

    @staticmethod
    def _archs(space: SearchSpace, X: Any, where: str) -> list[Hashable]:
        if isinstance(X, (str, bytes)) or not hasattr(X, "__iter__"):
            raise ValueError(f"{where}: X must be a sequence of architectures or spec strings, "
                             f"got {type(X).__name__}")
        out = []
        for i, a in enumerate(X):
            if isinstance(a, (np.ndarray,)) and a.ndim == 0:
                a = a.item()
            if isinstance(a, str):
                try:
                    a = space.from_string(a)
                except SpaceError as exc:
                    raise ValueError(f"{where}: X[{i}] is not a {space.name} spec string: {exc}") from None
            out.append(a)
        return out

    def _sign(self) -> float:
        return 1.0 if self.higher_is_better else -1.0

    # -- scikit-learn API ----------------------------------------------------
    def fit(self, X: Any, y: Any) -> PredictorRegressor:
        space = self._space()
        archs = self._archs(space, X, "fit")
        y_arr = np.asarray(y, dtype=np.float64)
        if y_arr.ndim != 1:
            raise ValueError(f"fit: y must be 1-D (one metric per architecture), got shape {y_arr.shape}")
        if len(y_arr) != len(archs):
            raise ValueError(f"fit: {len(archs)} architectures but {len(y_arr)} values of y")
        if not np.isfinite(y_arr).all():
            raise ValueError("fit: y contains NaN or infinite values")
        if not isinstance(self.task, str) or not self.task:
            raise ValueError(f"task must be a non-empty task name, got {self.task!r}")
        history: dict[str, Any] = {}
        for name, (s_archs, s_y) in dict(self.sources or {}).items():
            if name == self.task:
                raise ValueError(f"sources hold the estimator's own task {self.task!r}: give its "
                                 "evaluations as X, y")
            history[name] = (self._archs(space, s_archs, f"sources[{name!r}]"), np.asarray(s_y, dtype=float))
        history[self.task] = (archs, self._sign() * y_arr)
        model = make_predictor(self.predictor, space, int(self.seed), self.options)
        model.fit(history, target=self.task)
        self.predictor_ = model
        self.space_ = space
        return self

    def predict(self, X: Any) -> np.ndarray:
        if not hasattr(self, "predictor_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this PredictorRegressor is not fitted yet; call fit(X, y) first")
        archs = self._archs(self.space_, X, "predict")
        return self._sign() * np.asarray(self.predictor_.predict(self.task, archs), dtype=np.float64)

    def query(self, X: Any) -> np.ndarray:
        """NASLib's name for :meth:`predict`."""
        return self.predict(X)
