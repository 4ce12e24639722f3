"""Surrogate model kinds, by name: what a surrogate benchmark fits per task.

A model kind is a class with ``fit(X, y, seed) -> self``, ``predict(X) -> (mean, spread)``
(``spread``: the members' standard deviation, 0 for a single model), ``to_bytes()`` and
``from_bytes(data)``; register it with :func:`register_surrogate_model` to make it
available to ``nasbench-xfer surrogate fit --model NAME``.

``lgb`` (default): an ensemble of LightGBM gradient-boosted regression trees (members
differ in seed, row bagging and feature subsampling), on the features of
:mod:`.features`.  LightGBM is used as it is: its text model format is what is stored.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from ..registry import Registry

__all__ = ["SURROGATE_MODELS", "register_surrogate_model", "get_surrogate_model", "LGBEnsemble"]

#: every surrogate model kind by name (plugins: entry-point group ``nasbench_xfer.surrogate_models``)
SURROGATE_MODELS: Registry[type] = Registry("surrogate model", "surrogate_models")


def register_surrogate_model(name: str) -> Callable[[type], type]:
    """Class decorator: make a model kind available under ``name``."""
    def deco(cls: type) -> type:
        SURROGATE_MODELS.register(cls, name=name)
        cls.kind = name  # type: ignore[attr-defined]
        return cls
    return deco


def get_surrogate_model(name: str) -> type:
    return SURROGATE_MODELS.get(name)


@register_surrogate_model("lgb")
class LGBEnsemble:
    """``members`` LightGBM regressors; the mean of their predictions and their spread."""

    DEFAULTS: dict[str, Any] = {"members": 3, "n_estimators": 150, "learning_rate": 0.1, "num_leaves": 31,
                                "min_child_samples": 5, "subsample": 0.8, "colsample_bytree": 0.8}

    def __init__(self, **params: Any):
        unknown = set(params) - set(self.DEFAULTS)
        if unknown:
            raise ValueError(f"unknown lgb parameters {sorted(unknown)}; known: {sorted(self.DEFAULTS)}")
        self.params = {**self.DEFAULTS, **params}
        if int(self.params["members"]) < 1:
            raise ValueError("members must be >= 1")
        self.boosters: list = []

    def fit(self, X: np.ndarray, y: np.ndarray, seed: int = 0) -> LGBEnsemble:
        import lightgbm as lgb
        p = self.params
        self.boosters = []
        for m in range(int(p["members"])):
            model = lgb.LGBMRegressor(
                n_estimators=int(p["n_estimators"]), learning_rate=float(p["learning_rate"]),
                num_leaves=int(p["num_leaves"]), min_child_samples=int(p["min_child_samples"]),
                subsample=float(p["subsample"]), subsample_freq=1, colsample_bytree=float(p["colsample_bytree"]),
                random_state=int(seed) * 1000 + m, n_jobs=2, verbose=-1)
            model.fit(X, y)
            self.boosters.append(model.booster_)
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self.boosters:
            raise RuntimeError("the model is not fitted")
        threads = 1 if len(X) < 2048 else 2  # waking a thread pool costs more than a small batch
        preds = np.stack([b.predict(X, num_threads=threads) for b in self.boosters])
        return preds.mean(axis=0), preds.std(axis=0)

    def to_bytes(self) -> bytes:
        return json.dumps({"params": self.params,
                           "boosters": [b.model_to_string() for b in self.boosters]}).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LGBEnsemble:
        import lightgbm as lgb
        d = json.loads(bytes(data).decode())
        obj = cls(**d["params"])
        obj.boosters = [lgb.Booster(model_str=s) for s in d["boosters"]]
        return obj
