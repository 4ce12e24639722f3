"""One evaluator for performance predictors: every correlation metric for a list of train sizes.

:func:`evaluate_predictor` takes any scikit-learn-style regressor whose ``X`` is a sequence of
architectures (:class:`~nasbench_xfer.predictor.estimator.PredictorRegressor`, or your own), a
pool of evaluated architectures and their metrics, and for each seed holds out ``test_size``
architectures, fits a fresh clone (``sklearn.base.clone``) on the first ``n`` of a shuffled
training pool for every ``n`` in ``train_sizes`` (nested: the 25 of ``n = 25`` contain the 10
of ``n = 10``), and scores its predictions on the held-out set: Pearson, Spearman, Kendall,
precision@k (share of the true top k among the predicted top k), plus the fit and predict
seconds.  NASLib's ``PredictorEvaluator`` is the model for this; :func:`from_store` builds the
pool from a store's task.
"""
from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from nasbench_xfer.evaluate.ablation import correlation_metrics

__all__ = ["evaluate_predictor", "from_store"]


def evaluate_predictor(estimator: Any, X: Sequence[Hashable], y: Sequence[float], train_sizes: Sequence[int], *,
                       test_size: int = 200, seeds: Sequence[int] = (0,), ks: Sequence[int] = (5, 10),
                       higher_is_better: bool = True) -> pd.DataFrame:
    """One row per (seed, train size): ``seed``, ``train_size``, ``test_size``, ``pearson``,
    ``spearman``, ``kendall``, ``precision@k``..., ``fit_seconds``, ``predict_seconds``.

    Correlations compare predictions with ``y`` as given; precision@k takes the best as the
    highest values (``higher_is_better=False``: the lowest)."""
    from sklearn.base import clone

    X = list(X)
    y_arr = np.asarray(y, dtype=np.float64)
    if y_arr.ndim != 1 or len(y_arr) != len(X):
        raise ValueError(f"evaluate_predictor: X has {len(X)} architectures but y has shape {y_arr.shape}")
    if not np.isfinite(y_arr).all():
        raise ValueError("evaluate_predictor: y contains NaN or infinite values")
    sizes = sorted({int(n) for n in train_sizes})
    if not sizes or sizes[0] < 1:
        raise ValueError(f"evaluate_predictor: train sizes must be positive integers, got {list(train_sizes)}")
    if test_size < 2 or sizes[-1] + test_size > len(X):
        raise ValueError(f"evaluate_predictor: {len(X)} architectures cannot hold a test set of {test_size} "
                         f"(at least 2) and a training set of {sizes[-1]}")
    sign = 1.0 if higher_is_better else -1.0
    rows = []
    for seed in seeds:
        order = np.random.default_rng(seed).permutation(len(X))
        test, pool = order[:test_size], order[test_size:]
        X_test = [X[i] for i in test]
        for n in sizes:
            train = pool[:n]
            model = clone(estimator)
            t0 = time.perf_counter()
            model.fit([X[i] for i in train], y_arr[train])
            t1 = time.perf_counter()
            pred = np.asarray(model.predict(X_test), dtype=np.float64)
            t2 = time.perf_counter()
            if pred.shape != (test_size,):
                raise ValueError(f"evaluate_predictor: predict returned shape {pred.shape}, expected ({test_size},)")
            m = correlation_metrics(sign * pred, sign * y_arr[test], ks)
            rows.append({"seed": int(seed), "train_size": n, "test_size": int(test_size), **m,
                         "fit_seconds": t1 - t0, "predict_seconds": t2 - t1})
    return pd.DataFrame(rows)


def from_store(store: Any, task: str) -> tuple[list[Hashable], np.ndarray, bool]:
    """The evaluated architectures of ``task`` in an open store, their mean validation metric
    and whether higher is better: ``(X, y, higher_is_better)`` for :func:`evaluate_predictor`."""
    table = store.metric_table(task)
    ids = np.flatnonzero(np.isfinite(table))
    return store.archs(ids), table[ids], bool(store.task_info(task)["higher_is_better"])
