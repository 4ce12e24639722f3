"""Target-only scikit-learn regressors on the one-hot token encoding: the simplest
surrogates to compare the transfer predictor against under the same protocol."""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from ..space import SearchSpace
from .base import History


class SklearnTokenPredictor:
    """A scikit-learn regressor on the one-hot token encoding, fitted on the target only.

    With fewer than two target evaluations it cannot be fitted (``fit`` raises
    ``ValueError``; the ablation records the cell as "no data").
    """

    def __init__(self, space: SearchSpace, estimator: Any) -> None:
        self.space = space
        self.model = estimator

    def fit(self, history: History, target: str | None = None) -> SklearnTokenPredictor:
        archs, scores = history.get(target, ([], [])) if target is not None else ([], [])
        if len(archs) < 2:
            raise ValueError("needs at least two target evaluations")
        self.model.fit(self.space.one_hot(archs), np.asarray(scores, dtype=float))
        return self

    def predict(self, task: str, archs: Sequence[Hashable]) -> np.ndarray:
        return self.model.predict(self.space.one_hot(archs))


def ridge(space: SearchSpace, seed: int = 0) -> SklearnTokenPredictor:
    """Ridge regression (alpha 1) on the one-hot tokens, target only."""
    from sklearn.linear_model import Ridge

    return SklearnTokenPredictor(space, Ridge(alpha=1.0))


def random_forest(space: SearchSpace, seed: int = 0) -> SklearnTokenPredictor:
    """Random forest (200 trees) on the one-hot tokens, target only."""
    from sklearn.ensemble import RandomForestRegressor

    return SklearnTokenPredictor(space, RandomForestRegressor(n_estimators=200, random_state=seed, n_jobs=1))
