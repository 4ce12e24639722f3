"""Surrogate model kinds, by name: what a surrogate benchmark fits.

Two shapes of kind, both registered with :func:`register_surrogate_model` (then available
to ``nasbench-xfer surrogate fit --model NAME``):

* **per task** (``multitask = False``, the default): ``fit(X, y, seed) -> self`` on one
  task's feature matrix (:mod:`.features`), ``predict(X) -> (mean, spread)``,
  ``to_bytes()``, ``from_bytes(data)``; the benchmark fits one per task.
* **multi-task** (``multitask = True``): ``fit_tasks(space, data, seed) -> self`` once on
  every task together (``data``: ``{task: TaskData}``), ``predict_task(task, tokens, X=None)
  -> (mean, spread)`` on token rows (``X``: their features, when the caller has them),
  ``to_bytes()``, ``from_bytes(data, space)``.  Such a model answers the same architecture
  on several tasks from one shared representation, which is what transfer NAS needs from
  a surrogate.

``spread`` is the members' standard deviation per architecture (0 for a single model): the
``ensemble`` noise model draws from it.

Kinds:

* ``lgb`` (default): an ensemble of LightGBM gradient-boosted regression trees per task
  (members differ in seed, row bagging and feature subsampling), on the features of
  :mod:`.features`.  LightGBM is used as it is: its text model format is what is stored.
* ``xfer``: the package's transfer predictor (:class:`~nasbench_xfer.predictor.transfer.TransferPredictor`,
  a universal network plus a calibrated residual per task on NAO's encoder) fitted on all
  tasks jointly; ``members`` predictors with different seeds.  Each task's metric is
  oriented higher-is-better for the fit (the universal network is shared) and turned back.
* ``ensemble``: ``lgb`` and ``xfer`` together; the mean is the average of the two kinds'
  means, the spread the standard deviation over all their members' predictions.
"""
from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from ..registry import Registry

__all__ = ["SURROGATE_MODELS", "register_surrogate_model", "get_surrogate_model", "LGBEnsemble",
           "TaskData", "XferSurrogate", "KindEnsemble"]

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


#: set in every process forked from this one (see LGBEnsemble.predict)
_IN_FORKED_CHILD = False


def _mark_forked_child() -> None:
    global _IN_FORKED_CHILD
    _IN_FORKED_CHILD = True


os.register_at_fork(after_in_child=_mark_forked_child)


def _one_lightgbm_thread_if_forked() -> None:
    """In a forked process (a compare/ablation worker): LightGBM limited to one thread
    (``LGBM_SetMaxThreads``, for parsing as well as predicting); call before it runs.  A child
    inherits the OpenMP state of a parent that already ran parallel LightGBM code (parsing a
    booster, predicting a large batch) but not its pool threads, and a parallel region there
    waits for them forever.  Elsewhere: nothing changes."""
    if _IN_FORKED_CHILD:
        import ctypes

        from lightgbm.basic import _LIB

        if hasattr(_LIB, "LGBM_SetMaxThreads"):  # LightGBM >= 4.2
            _LIB.LGBM_SetMaxThreads(ctypes.c_int(1))


def _check_params(kind: str, params: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(params) - set(defaults)
    if unknown:
        raise ValueError(f"unknown {kind} parameters {sorted(unknown)}; known: {sorted(defaults)}")
    out = {**defaults, **params}
    m = out["members"]
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise ValueError(f"{kind} parameter members must be a whole number >= 1, got {m!r}")
    return out


TARGETS = ("quantile", "raw")


@register_surrogate_model("lgb")
class LGBEnsemble:
    """``members`` LightGBM regressors; the mean of their predictions and their spread.

    ``target``: what the trees are fitted to.  ``"quantile"`` (default): the metric's normal
    scores (``Phi^-1`` of its mid-ranks); a prediction is mapped back through the fitted
    metric values' empirical quantile function (linear between them), so every answer lies
    within the fitted range and a few extreme evaluations do not dominate the fit.
    ``"raw"``: the metric itself (the only form before this option; boosted sums can leave
    the fitted range: on TransNAS-Bench-101 jigsaw, fitted on 20%, the mean answer reached
    101.6% accuracy where the table's best is 95.4%; ``docs/results/surrogate/lgb_target.md``
    has both forms' held-out figures: ``quantile`` ranks better on 13 of 15 tasks, ``raw`` has
    the higher R^2 on all 15, the tails being pulled in).  Files without the option load as
    ``"raw"``.  The benchmark's noise draws are truncated to the fitted range whatever the
    target (:func:`~nasbench_xfer.surrogate.benchmark.noisy_draw`).
    """

    DEFAULTS: dict[str, Any] = {"members": 3, "n_estimators": 150, "learning_rate": 0.1, "num_leaves": 31,
                                "min_child_samples": 5, "subsample": 0.8, "colsample_bytree": 0.8,
                                "target": "quantile"}

    def __init__(self, **params: Any):
        self.params = _check_params("lgb", params, self.DEFAULTS)
        if self.params["target"] not in TARGETS:
            raise ValueError(f"lgb target must be one of {', '.join(TARGETS)}, got {self.params['target']!r}")
        self._boosters: list = []
        self._model_strings: list[str] | None = None
        #: the fitted metric values, sorted (``target="quantile"``: the map back to metric units)
        self.y_sorted: np.ndarray | None = None

    @property
    def boosters(self) -> list:
        """The fitted boosters.  A loaded model parses them on first use, so that a process that
        only opens a surrogate (a ``compare`` parent, before it forks its workers) never starts
        LightGBM's OpenMP threads, which a forked worker would inherit without their threads."""
        if self._model_strings is not None:
            import lightgbm as lgb

            _one_lightgbm_thread_if_forked()  # parsing runs OpenMP threads too
            self._boosters = [lgb.Booster(model_str=s) for s in self._model_strings]
            self._model_strings = None
        return self._boosters

    @boosters.setter
    def boosters(self, value: list) -> None:
        self._boosters, self._model_strings = list(value), None

    def _levels(self) -> np.ndarray:
        assert self.y_sorted is not None
        n = len(self.y_sorted)
        return (np.arange(n) + 0.5) / n

    def _to_metric(self, z: np.ndarray) -> np.ndarray:
        from scipy.special import ndtr
        assert self.y_sorted is not None
        return np.asarray(np.interp(ndtr(z), self._levels(), self.y_sorted), dtype=np.float64)

    def fit(self, X: np.ndarray, y: np.ndarray, seed: int = 0) -> LGBEnsemble:
        import lightgbm as lgb

        from ..evaluate.stats import normal_scores
        p = self.params
        y = np.asarray(y, dtype=np.float64)
        if p["target"] == "quantile":
            self.y_sorted = np.sort(y)
            y = normal_scores(y)
        self.boosters = []
        # one thread below 20k rows: faster than waking a pool, and OpenMP threads that spin
        # beside other busy processes (compare workers, a test suite) slow a fit down ~40x
        jobs = 1 if len(y) < 20000 else 2
        for m in range(int(p["members"])):
            model = lgb.LGBMRegressor(
                n_estimators=int(p["n_estimators"]), learning_rate=float(p["learning_rate"]),
                num_leaves=int(p["num_leaves"]), min_child_samples=int(p["min_child_samples"]),
                subsample=float(p["subsample"]), subsample_freq=1, colsample_bytree=float(p["colsample_bytree"]),
                random_state=int(seed) * 1000 + m, n_jobs=jobs, verbose=-1)
            model.fit(X, y)
            self.boosters.append(model.booster_)
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        threads = 1 if X.shape[0] < 2048 else 2  # waking a thread pool costs more than a small batch
        if _IN_FORKED_CHILD:
            threads = 1  # see _one_lightgbm_thread_if_forked
        preds = self.member_predictions(X, threads)
        return preds.mean(axis=0), preds.std(axis=0)

    def member_predictions(self, X: Any, threads: int = 1) -> np.ndarray:
        """(members, N): each regressor's prediction in the metric's units."""
        if not self.boosters:
            raise RuntimeError("the model is not fitted")
        boosters = self.boosters
        _one_lightgbm_thread_if_forked()
        preds = np.stack([b.predict(X, num_threads=threads) for b in boosters])
        return self._to_metric(preds) if self.params["target"] == "quantile" else preds

    def to_bytes(self) -> bytes:
        d: dict[str, Any] = {"params": self.params, "boosters": [b.model_to_string() for b in self.boosters]}
        if self.y_sorted is not None:
            d["y_sorted"] = self.y_sorted.tolist()
        return json.dumps(d).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LGBEnsemble:
        d = json.loads(bytes(data).decode())
        obj = cls(**{"target": "raw", **d["params"]})  # written before the option: raw targets
        obj._model_strings = list(d["boosters"])  # parsed on first use (see boosters)
        if obj.params["target"] == "quantile":
            if "y_sorted" not in d:
                raise ValueError("the lgb model has target 'quantile' but no fitted values to map back to")
            obj.y_sorted = np.asarray(d["y_sorted"], dtype=np.float64)
        return obj


class TaskData(NamedTuple):
    """One task's training part, as a multi-task kind receives it."""

    archs: list          # architecture objects (canonical)
    tokens: np.ndarray   # (N, seq_len) int64, space.encode of each
    y: np.ndarray        # (N,) the metric, per-architecture mean over seeds
    higher_is_better: bool


@register_surrogate_model("xfer")
class XferSurrogate:
    """``members`` transfer predictors fitted on every task jointly (module doc).

    ``epochs`` passes over all tasks' rows, at most ``max_steps`` Adam steps (the cap keeps a
    fit on a large table to minutes on a CPU); ``device`` as the predictor's (``auto``: CUDA
    when available).
    """

    multitask = True
    DEFAULTS: dict[str, Any] = {"members": 2, "epochs": 40, "max_steps": 4000, "device": "auto"}

    def __init__(self, **params: Any):
        self.params = _check_params("xfer", params, self.DEFAULTS)
        self.predictors: list = []
        self.sign: dict[str, float] = {}

    def fit_tasks(self, space, data: Mapping[str, TaskData], seed: int = 0) -> XferSurrogate:
        from ..predictor.transfer import TransferPredictor
        p = self.params
        self.sign = {t: 1.0 if d.higher_is_better else -1.0 for t, d in data.items()}
        history = {t: (list(d.archs), self.sign[t] * np.asarray(d.y, dtype=np.float64)) for t, d in data.items()}
        rows = sum(len(d.y) for d in data.values())
        self.predictors = []
        for m in range(int(p["members"])):
            pred = TransferPredictor(space, seed=int(seed) * 1000 + m, device=str(p["device"]),
                                     epochs=int(p["epochs"]))
            cfg = pred.config
            steps = max(int(p["epochs"]) * -(-rows // cfg.batch_size), cfg.min_steps)
            pred.fit(history, steps=min(steps, int(p["max_steps"])))
            self.predictors.append(pred)
        return self

    def predict_task(self, task: str, tokens: np.ndarray, X: Any = None) -> tuple[np.ndarray, np.ndarray]:
        preds = self.member_predictions(task, tokens)       # the networks read tokens, not X
        return preds.mean(axis=0), preds.std(axis=0)

    def member_predictions(self, task: str, tokens: np.ndarray) -> np.ndarray:
        """(members, N): each member's prediction in the task's units."""
        if not self.predictors:
            raise RuntimeError("the model is not fitted")
        if task not in self.sign:
            raise ValueError(f"task {task!r} was not fitted (tasks: {', '.join(sorted(self.sign))})")
        return np.stack([self.sign[task] * p.predict_tokens(task, tokens) for p in self.predictors])

    def to_bytes(self) -> bytes:
        import torch
        buf = io.BytesIO()
        torch.save({"params": self.params, "sign": self.sign,
                    "predictors": [p.state() for p in self.predictors]}, buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, space=None) -> XferSurrogate:
        import torch

        from ..predictor.transfer import TransferPredictor
        d = torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)
        obj = cls(**d["params"])
        obj.sign = {str(k): float(v) for k, v in d["sign"].items()}
        # a model fitted on a GPU answers on a machine without one ("auto": CUDA when available)
        device = "cpu" if str(d["params"]["device"]) == "cpu" else "auto"
        obj.predictors = [TransferPredictor.from_state(s, device=device) for s in d["predictors"]]
        return obj


@register_surrogate_model("ensemble")
class KindEnsemble:
    """``lgb`` per task and ``xfer`` on all tasks, their predictions averaged (module doc).

    ``lgb`` and ``xfer`` are the parameter dicts of the two kinds (e.g.
    ``--param 'xfer={"members": 1}'``)."""

    multitask = True
    DEFAULTS: dict[str, Any] = {"lgb": {}, "xfer": {}}

    def __init__(self, **params: Any):
        unknown = set(params) - set(self.DEFAULTS)
        if unknown:
            raise ValueError(f"unknown ensemble parameters {sorted(unknown)}; known: lgb, xfer (dicts of "
                             "the two kinds' parameters)")
        for k, v in params.items():
            if not isinstance(v, Mapping):
                raise ValueError(f"ensemble parameter {k} must be a dict of {k}'s parameters, got {v!r}")
        self.params = {k: dict(params.get(k, {})) for k in self.DEFAULTS}
        LGBEnsemble(**self.params["lgb"])              # validate now
        self.xfer = XferSurrogate(**self.params["xfer"])
        self.trees: dict[str, LGBEnsemble] = {}
        self.space: Any = None
        self._features: Any = None

    def _X(self, space, tokens: np.ndarray, sparse: bool) -> Any:
        from .features import FeatureMap
        if self._features is None or self._features.space is not space:
            self._features = FeatureMap(space)
        return self._features.token_features(tokens, sparse=sparse)

    def fit_tasks(self, space, data: Mapping[str, TaskData], seed: int = 0) -> KindEnsemble:
        self.trees = {t: LGBEnsemble(**self.params["lgb"]).fit(self._X(space, d.tokens, False),
                                                                   np.asarray(d.y), seed=seed)
                      for t, d in data.items()}
        self.xfer.fit_tasks(space, data, seed=seed)
        self.space = space
        return self

    def members(self, task: str, tokens: np.ndarray, X: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """(trees, nets): each tree member's and each network member's prediction, (members, N)."""
        if task not in self.trees:
            raise ValueError(f"task {task!r} was not fitted (tasks: {', '.join(sorted(self.trees))})")
        if X is None:
            X = self._X(self.space, tokens, sparse=len(tokens) >= 512)   # same answers, faster
        # one thread: forked compare workers (-j N) hung in their first multi-threaded
        # LightGBM call here once the driver had run one
        trees = self.trees[task].member_predictions(X, threads=1)
        return trees, self.xfer.member_predictions(task, tokens)

    def predict_task(self, task: str, tokens: np.ndarray, X: Any = None) -> tuple[np.ndarray, np.ndarray]:
        trees, nets = self.members(task, tokens, X)
        mean = 0.5 * (trees.mean(axis=0) + nets.mean(axis=0))
        return mean, np.concatenate([trees, nets]).std(axis=0)

    def to_bytes(self) -> bytes:
        import torch
        buf = io.BytesIO()
        torch.save({"params": self.params, "trees": {t: m.to_bytes() for t, m in self.trees.items()},
                    "xfer": self.xfer.to_bytes()}, buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, space=None) -> KindEnsemble:
        import torch
        d = torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)
        obj = cls(**d["params"])
        obj.trees = {str(t): LGBEnsemble.from_bytes(b) for t, b in d["trees"].items()}
        obj.xfer = XferSurrogate.from_bytes(d["xfer"])
        obj.space = space
        return obj
