"""Surrogate benchmarks: models fitted on a store that answer any architecture of its space.

:func:`fit_surrogate` fits a model kind of :mod:`.models` on a store's tasks (a per-task
kind, e.g. ``lgb`` on the features of :mod:`.features`, once per task; a multi-task kind,
e.g. ``xfer``, once on every task's training part together) and validates it the way
NAS-Bench-301 validated its own: the architectures are split once (seeded) into a
training part and a held-out part (``holdout``, 20% by default), the model is fitted on the per-architecture mean metric
of the training part, and the held-out part gives R², Spearman's rho, Kendall's tau,
Kendall's tau among the held-out top 10%, and, where the store has architectures
evaluated with several seeds, the *noise ceiling*: Kendall's tau between two seeds of
the same architectures beside the surrogate's tau against their mean (NAS-Bench-301's
argument: a surrogate can be closer to the mean than one more training run is).  The
model that is saved is the one those figures describe (fitted without the held-out
part); ``holdout=0`` fits on everything and reports no figures.

Noise (``predict(..., seed=s)``): with ``noise="auto"`` a task whose store holds at least
10 architectures evaluated with two or more seeds draws ``mean + N(0, sigma)`` with
``sigma`` the pooled within-architecture standard deviation over seeds (``"seeds"``);
otherwise ``mean + N(0, spread)`` with ``spread`` the ensemble members' standard
deviation for that architecture (``"ensemble"``).  The choice is stored per task.  Draws are
truncated to the range of the metric over the evaluations the surrogate was fitted on
(:func:`noisy_draw`; stored per task as the noise model's ``bounds``): on TransNAS-Bench-101
jigsaw an untruncated ensemble draw reached 100+% accuracy and let two searches "beat" the
surrogate's best by 2 points.  Files written before bounds were stored draw untruncated.

Cost: where the store records training seconds for at least 20 architectures of a
task, a single LightGBM model of log seconds answers :meth:`SurrogateBenchmark.cost`.

File: one HDF5 file (``format = "nasbench_xfer.surrogate"``, ``version = 2``; version-1
files, which only had per-task kinds, are read) with the space, the model kind and
parameters, the serialised model (per task, or one ``model`` dataset for a multi-task
kind), per task the noise model,
the validation figures, and the store's provenance (path, SHA-256, per-task row counts,
the store's own provenance) and the package version.  Written atomically.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import time
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from scipy import stats

from .. import __version__
from ..space import get_space
from ..space.base import EnumerableSpace, SearchSpace
from ..store.schema import file_sha256
from .features import FeatureMap
from .models import LGBEnsemble, TaskData, get_surrogate_model

__all__ = ["SurrogateBenchmark", "SurrogateError", "fit_surrogate", "validation_figures", "FORMAT", "VERSION"]

FORMAT = "nasbench_xfer.surrogate"
VERSION = 2
MIN_REPEATED_ARCHS = 10
MIN_COST_ARCHS = 20


class SurrogateError(ValueError):
    """Bad input to a surrogate benchmark, or a file that is not one."""


def validation_figures(y_true: np.ndarray, y_pred: np.ndarray, higher_is_better: bool = True) -> dict[str, Any]:
    """The held-out figures of a surrogate: n, R², Spearman, Kendall, Kendall among the true top
    10% (the best 10%: the highest values, or the lowest for a lower-is-better metric)."""
    ss_res = float(np.sum((y_true - y_pred) ** 2))
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    top = (y_true >= np.quantile(y_true, 0.9)) if higher_is_better else (y_true <= np.quantile(y_true, 0.1))
    return {"n": int(len(y_true)),
            "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
            "spearman": float(stats.spearmanr(y_true, y_pred)[0]),
            "kendall": float(stats.kendalltau(y_true, y_pred)[0]),
            "kendall_top10": float(stats.kendalltau(y_true[top], y_pred[top])[0]) if top.sum() > 2 else None}


class SurrogateBenchmark:
    """A fitted surrogate benchmark (see the module doc); build with :func:`fit_surrogate`
    or :meth:`load`."""

    def __init__(self, space: SearchSpace, model_kind: str, model_params: dict[str, Any],
                 tasks: dict[str, dict[str, Any]], provenance: dict[str, Any], shared_model: Any = None):
        self.space = space
        self.features = FeatureMap(space)
        self.model_kind = model_kind
        self.model_params = model_params
        self._tasks = tasks          # task -> {"model" (per-task kinds), "cost_model", "noise", "validation", ...}
        self.shared_model = shared_model   # a multi-task kind: one model answers every task
        self.provenance = provenance
        self._dense: dict[str, tuple[np.ndarray, np.ndarray]] = {}   # task -> (mean, spread) by dense index
        #: the file's format version, the package version that wrote it and when (a loaded file);
        #: a fitted, unsaved surrogate: this package's
        self.file_info: dict[str, Any] = {"version": VERSION, "package_version": __version__, "created": ""}

    # ------------------------------------------------------------------ queries
    @property
    def tasks(self) -> list[str]:
        return sorted(self._tasks)

    def _task(self, task: str) -> dict[str, Any]:
        try:
            return self._tasks[task]
        except KeyError:
            raise SurrogateError(f"task {task!r} is not in this surrogate (tasks: {', '.join(self.tasks)})") from None

    def _inputs(self, archs: Sequence[Hashable] | None, tokens: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(token rows, feature matrix) of a query, checked against the space."""
        if (archs is None) == (tokens is None):
            raise SurrogateError("give exactly one of archs and tokens")
        try:
            if archs is not None:
                tokens = self.features.arch_tokens(archs)
            assert tokens is not None
            tokens = np.asarray(tokens, dtype=np.int64)
            # a large batch goes to the trees in sparse form (same answers, faster)
            return tokens, self.features.token_features(tokens, sparse=len(tokens) >= self.SPARSE_MIN_BATCH)
        except ValueError as exc:
            raise SurrogateError(str(exc)) from None

    def _model_predict(self, task: str, tokens: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _predict(self._task(task)["model"], self.shared_model is not None, task, tokens, X)

    def predict(self, task: str, archs: Sequence[Hashable] | None = None, *, tokens: np.ndarray | None = None,
                seed: int | None = None) -> np.ndarray:
        """The task's metric for each architecture: the mean (``seed=None``) or one noisy draw.

        ``archs``: architecture objects or spec strings (canonicalised); ``tokens``: token
        rows (N, seq_len), the fast path (taken as given: pass canonical tokens).
        """
        if seed is not None and (isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer))
                                 or seed < 0):
            raise SurrogateError(f"seed must be a non-negative integer (or None for the mean), got {seed!r}")
        t = self._task(task)
        mean, spread = self._mean_spread(task, archs, tokens)
        if seed is None:
            return mean
        # each architecture's draw from (seed, its canonical tokens): the same architecture gets
        # the same value with the same seed, whatever else is in the batch
        rows = self.features.arch_tokens(archs) if archs is not None else np.asarray(tokens)
        sigma = np.broadcast_to(np.asarray(spread if t["noise"]["kind"] == "ensemble" else t["noise"]["sigma"],
                                           dtype=np.float64), mean.shape)
        out = np.empty(len(mean))
        for i, row in enumerate(np.asarray(rows, dtype=np.int64)):
            key = int.from_bytes(hashlib.sha256(row.tobytes()).digest()[:8], "little")
            rng = np.random.default_rng([int(seed), key])
            out[i] = noisy_draw(mean[i:i + 1], sigma[i:i + 1], t["noise"].get("bounds"), rng)[0]
        return out

    def draw(self, task: str, archs: Sequence[Hashable], rng: np.random.Generator) -> np.ndarray:
        """One noisy evaluation per architecture, all drawn from ``rng`` in order (so a draw
        depends on the batch: :meth:`predict` with a seed does not).  What
        :class:`SurrogateOracle` uses for one architecture, with a generator seeded from its seed
        and the architecture's hash, and a surrogate read as a table for its reference set."""
        t = self._task(task)
        mean, spread = self._mean_spread(task, archs, None)
        sigma = spread if t["noise"]["kind"] == "ensemble" else t["noise"]["sigma"]
        return noisy_draw(mean, sigma, t["noise"].get("bounds"), rng)

    #: token batches at least this large are answered from a table of the whole space
    #: where the space is small and enumerable (dense_index_tokens + enumerate)
    DENSE_MIN_BATCH = 2048
    SPARSE_MIN_BATCH = 512
    DENSE_MAX_SIZE = 100_000

    def _mean_spread(self, task: str, archs, tokens) -> tuple[np.ndarray, np.ndarray]:
        space = self.space
        if (isinstance(space, EnumerableSpace) and int(space.size or 0) <= self.DENSE_MAX_SIZE
                and tokens is not None and archs is None and (
                task in self._dense or len(tokens) >= self.DENSE_MIN_BATCH)):
            if task not in self._dense:
                # every architecture of the space through the model once, stored at the dense
                # index of its canonical form (a query's raw spec maps there through the table)
                archs_all = [space.canonical(a) for a in space.enumerate()]
                all_tokens = np.asarray([space.encode(a) for a in archs_all], dtype=np.int64)
                where = space.dense_index_tokens(all_tokens)
                m, s = self._model_predict(task, all_tokens, self.features.token_features(all_tokens, sparse=True))
                mean, spread = np.full(space.dense_size, np.nan), np.full(space.dense_size, np.nan)
                mean[where], spread[where] = m, s
                self._dense[task] = (mean, spread)
            try:
                idx = space.dense_canonical_table()[space.dense_index_tokens(tokens)]
            except ValueError as exc:
                raise SurrogateError(str(exc)) from None
            mean, spread = self._dense[task]
            return mean[idx], spread[idx]
        return self._model_predict(task, *self._inputs(archs, tokens))

    def cost(self, task: str, archs: Sequence[Hashable] | None = None, *,
             tokens: np.ndarray | None = None) -> np.ndarray:
        """Predicted training seconds per architecture (NaN when the store had no times)."""
        t = self._task(task)
        _, X = self._inputs(archs, tokens)
        if t["cost_model"] is None:
            return np.full(len(X), np.nan)
        return np.exp(t["cost_model"].predict(X)[0])

    def validation(self, task: str) -> dict[str, Any]:
        return dict(self._task(task)["validation"])

    def held_out(self, task: str) -> np.ndarray:
        """The store's arch ids of the task's held-out architectures (the validation figures'
        architectures, never seen by the model); empty for ``holdout=0`` or a version-1 file."""
        ids = self._task(task).get("held_out_ids")
        return np.zeros(0, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)

    def info(self) -> dict[str, Any]:
        return {"format": FORMAT, **self.file_info, "space": self.space.name, "model": self.model_kind,
                "multitask": self.shared_model is not None,
                "model_params": self.model_params, "provenance": self.provenance,
                "tasks": {k: {kk: v[kk] for kk in ("metric", "higher_is_better", "noise", "validation",
                                                   "num_archs", "num_evaluations", "has_cost")}
                          for k, v in sorted(self._tasks.items())}}

    # ------------------------------------------------------------------ file
    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        path = Path(path)
        if path.exists() and not overwrite:
            raise SurrogateError(f"{path} exists (pass overwrite=True / --overwrite to replace it)")
        if not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.writing-{os.getpid()}")
        try:
            with h5py.File(tmp, "w") as f:
                f.attrs["format"] = FORMAT
                f.attrs["version"] = VERSION
                f.attrs["package_version"] = __version__
                f.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                f.attrs["space"] = json.dumps({"name": self.space.name, "config": self.space.config()})
                f.attrs["model"] = self.model_kind
                f.attrs["model_params"] = json.dumps(self.model_params)
                f.attrs["provenance"] = json.dumps(self.provenance, default=str)
                if self.shared_model is not None:
                    _write_blob(f, "model", self.shared_model.to_bytes())
                for task, t in self._tasks.items():
                    g = f.create_group(f"tasks/{task}")
                    meta = {k: t[k] for k in ("metric", "higher_is_better", "noise", "validation", "num_archs",
                                              "num_evaluations", "has_cost")}
                    g.attrs["meta"] = json.dumps(meta)
                    g.attrs["meta_sha256"] = hashlib.sha256(g.attrs["meta"].encode()).hexdigest()
                    g.create_dataset("held_out_ids", data=self.held_out(task))
                    if self.shared_model is None:
                        _write_blob(g, "model", t["model"].to_bytes())
                    if t["cost_model"] is not None:
                        _write_blob(g, "cost_model", t["cost_model"].to_bytes())
                f.flush()
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> SurrogateBenchmark:
        path = Path(path)
        if not path.is_file():
            raise SurrogateError(f"no surrogate file at {path}")
        try:
            f = h5py.File(path, "r", locking=False)
        except OSError as exc:
            raise SurrogateError(f"{path} is not a surrogate benchmark (not an HDF5 file: {exc})") from None
        with f:
            if f.attrs.get("format") != FORMAT:
                raise SurrogateError(f"{path} is not a surrogate benchmark (format {f.attrs.get('format')!r})")
            try:
                version = int(f.attrs.get("version", -1))
            except (TypeError, ValueError):
                raise SurrogateError(f"{path} is damaged: its version attribute is "
                                     f"{f.attrs.get('version')!r}") from None
            if version > VERSION:
                raise SurrogateError(f"{path} was written by a newer nasbench_xfer (surrogate version {version}; "
                                     f"this one reads up to {VERSION}): upgrade the package")
            try:
                sp = json.loads(f.attrs["space"])
                space = get_space(sp["name"], sp["config"])
                kind = str(f.attrs["model"])
                model_cls: Any = get_surrogate_model(kind)
                multitask = bool(getattr(model_cls, "multitask", False))
                shared = model_cls.from_bytes(_read_blob(f, "model"), space) if multitask else None
                tasks: dict[str, dict[str, Any]] = {}
                for task, g in f["tasks"].items():
                    text = g.attrs["meta"]
                    want = g.attrs.get("meta_sha256")
                    if want is not None and hashlib.sha256(str(text).encode()).hexdigest() != want:
                        raise ValueError(f"task {task}: its meta attribute does not match its checksum")
                    t = json.loads(text)
                    lost = [k for k in _META_KEYS if k not in t]
                    if lost:
                        raise ValueError(f"task {task}: meta misses {lost}")
                    t["model"] = shared if multitask else model_cls.from_bytes(_read_blob(g, "model"))
                    t["held_out_ids"] = g["held_out_ids"][()] if "held_out_ids" in g else None
                    t["cost_model"] = (LGBEnsemble.from_bytes(_read_blob(g, "cost_model"))
                                       if "cost_model" in g else None)
                    tasks[task] = t
                sb = cls(space, kind, json.loads(f.attrs["model_params"]), tasks,
                         json.loads(f.attrs["provenance"]), shared_model=shared)
                sb.file_info = {"version": version, "package_version": str(f.attrs.get("package_version", "")),
                                "created": str(f.attrs.get("created", ""))}
                return sb
            except (KeyError, ValueError, TypeError, RuntimeError, EOFError, OSError,
                    pickle.UnpicklingError) as exc:
                raise SurrogateError(f"{path} is damaged: {type(exc).__name__}: {exc}") from None


_META_KEYS = ("metric", "higher_is_better", "noise", "validation", "num_archs", "num_evaluations", "has_cost")


def _write_blob(g: h5py.Group, name: str, data: bytes) -> None:
    """A model's bytes as a dataset of ``g``, with their SHA-256 (checked by :func:`_read_blob`
    before a model library parses them: some abort the process on damaged input)."""
    ds = g.create_dataset(name, data=np.frombuffer(data, dtype=np.uint8))
    ds.attrs["sha256"] = hashlib.sha256(data).hexdigest()


def _read_blob(g: h5py.Group, name: str) -> bytes:
    ds = g[name]
    data = ds[()].tobytes()
    want = ds.attrs.get("sha256")  # absent in files written before the digests
    if want is not None and hashlib.sha256(data).hexdigest() != want:
        raise ValueError(f"{ds.name}: the model's bytes do not match their checksum")
    return data


#: fewest architectures a task's surrogate is fitted on
MIN_TRAIN_ARCHS = 10


def fit_surrogate(store_path: str | os.PathLike, tasks: Sequence[str] | None = None, *, model: str = "lgb",
                  params: dict[str, Any] | None = None, holdout: float = 0.2, seed: int = 0,
                  noise: str = "auto", log=None) -> SurrogateBenchmark:
    """Fit and validate a surrogate benchmark on the ``ok`` evaluations of a store (module doc).

    ``holdout`` is the fraction of each task's architectures held out (0.8 fits on 20%);
    the split of a task depends on ``seed`` only, so kinds fitted with the same seed are
    validated on the same architectures.
    """
    from ..store import Store
    if not 0 <= holdout < 1:
        raise SurrogateError(f"holdout must be in [0, 1), got {holdout}")
    if noise not in ("auto", "seeds", "ensemble"):
        raise SurrogateError(f"noise must be auto, seeds or ensemble, got {noise!r}")
    model_cls: Any = get_surrogate_model(model)
    multitask = bool(getattr(model_cls, "multitask", False))
    params = dict(params or {})
    store_path = Path(store_path)
    with Store.open(store_path) as st:
        space = st.space
        fmap = FeatureMap(space)
        chosen = list(tasks) if tasks else st.tasks
        missing = [t for t in chosen if t not in st.tasks]
        if missing:
            raise SurrogateError(f"tasks {missing} are not in {store_path} (tasks: {', '.join(st.tasks)})")
        counts = {t: st.num_evaluations(t) for t in chosen}
        provenance = {"store": str(store_path.resolve()), "store_sha256": file_sha256(store_path),
                      "store_attrs": st.attrs, "num_evaluations": counts, "holdout": holdout, "seed": seed}
        prep = {task: _prepare_task(st, task, fmap, holdout, seed) for task in chosen}
    t0 = time.perf_counter()
    shared = None
    if multitask:
        shared = model_cls(**params).fit_tasks(
            space, {task: TaskData([d["archs"][i] for i in d["train"]], d["tokens"][d["train"]],
                                   d["y"][d["train"]], d["higher_is_better"]) for task, d in prep.items()},
            seed=seed)
        if log:
            log(f"{model} on {len(prep)} tasks together: fit {time.perf_counter() - t0:.1f} s")
    out: dict[str, dict[str, Any]] = {}
    for task, d in prep.items():
        t0 = time.perf_counter()
        X, y, train, test = d["X"], d["y"], d["train"], d["test"]
        m = shared if multitask else model_cls(**params).fit(X[train], y[train], seed=seed)

        def predict(rows: np.ndarray, task=task, m=m, d=d) -> np.ndarray:
            return _predict(m, multitask, task, d["tokens"][rows], d["X"][rows])[0]

        validation: dict[str, Any] = {"fitted_on": int(len(train)), "held_out": int(len(test))}
        if len(test) >= 5:
            validation.update(validation_figures(y[test], predict(test), bool(d["higher_is_better"])))
        noise_model = {**_noise_model(task, d, noise), "bounds": d["bounds"]}
        if d["ceiling"] is not None:
            first, second, rows = d["ceiling"]
            validation["noise_ceiling"] = {
                "archs": len(rows),
                "kendall_seed_vs_seed": float(stats.kendalltau(first, second)[0]),
                "kendall_surrogate_vs_mean": float(stats.kendalltau(y[rows], predict(rows))[0])}
        secs = d["secs"]
        ok = np.isfinite(secs) & (secs > 0)
        cost = None
        if ok.sum() >= MIN_COST_ARCHS:
            cost = LGBEnsemble(members=1, n_estimators=200, target="raw").fit(X[ok], np.log(secs[ok]), seed=seed)
        out[task] = {"model": m, "cost_model": cost, "noise": noise_model, "validation": validation,
                     "held_out_ids": d["ids"][test],
                     "metric": d["metric"], "higher_is_better": d["higher_is_better"],
                     "num_archs": int(len(y)), "num_evaluations": d["num_evaluations"], "has_cost": cost is not None}
        if log:
            v = validation
            log(f"{task}: {len(y)} archs, {'validated' if multitask else 'fit'} {time.perf_counter() - t0:.1f} s"
                + (f", held-out spearman {v['spearman']:.3f} kendall {v['kendall']:.3f} r2 {v['r2']:.3f}"
                   if "spearman" in v else "") + f", noise {noise_model['kind']}")
    return SurrogateBenchmark(space, model, {**model_cls.DEFAULTS, **params}, out, provenance, shared_model=shared)


def _predict(model: Any, multitask: bool, task: str, tokens: np.ndarray, X: Any) -> tuple[np.ndarray, np.ndarray]:
    """(mean, spread) from a per-task model (reads ``X``) or a multi-task one (``tokens``, and
    ``X`` so it need not featurise again)."""
    return model.predict_task(task, tokens, X) if multitask else model.predict(X)


def _prepare_task(st, task: str, fmap: FeatureMap, holdout: float, seed: int) -> dict[str, Any]:
    """One task's per-architecture data, its seeded train/held-out split, and what the noise
    model and the noise ceiling need."""
    space = st.space
    info = st.task_info(task)
    ev = st.evaluations(task)
    ev = ev[(ev["status"] == "ok") & np.isfinite(ev["val_metric"].astype(float))]
    if ev["arch_id"].nunique() < 10:
        raise SurrogateError(f"task {task!r}: {ev['arch_id'].nunique()} evaluated architectures; "
                             "a surrogate needs at least 10")
    # one row per architecture: mean metric over seeds, its count and variance, mean seconds
    per_arch = ev.groupby("arch_id").agg(val=("val_metric", "mean"), count=("val_metric", "count"),
                                         var=("val_metric", "var"), secs=("train_seconds", "mean"))
    ids = np.asarray(per_arch.index, dtype=np.int64)
    archs = st.archs(ids)
    tokens = np.asarray([space.encode(a) for a in archs], dtype=np.int64)
    perm = np.random.default_rng(seed).permutation(len(ids))
    n_test = int(round(holdout * len(ids)))
    test, train = perm[:n_test], perm[n_test:]
    if len(train) < MIN_TRAIN_ARCHS:
        raise SurrogateError(f"task {task!r}: holdout {holdout} leaves {len(train)} of its {len(ids)} evaluated "
                             f"architectures to fit on; at least {MIN_TRAIN_ARCHS} are needed (lower --holdout)")
    reps = per_arch[["count", "var"]]
    rep_ids = reps.index[reps["count"] >= 2]
    ceiling = None
    if len(rep_ids) >= MIN_REPEATED_ARCHS and n_test >= 5:
        # noise ceiling on repeated architectures of the held-out part
        held = set(ids[test].tolist())
        rep_test = [a for a in rep_ids if a in held]
        if len(rep_test) >= 5:
            sub = ev[ev["arch_id"].isin(rep_test)].sort_values(["arch_id", "seed"])
            pos = {a: i for i, a in enumerate(ids)}
            ceiling = (sub.groupby("arch_id")["val_metric"].nth(0).to_numpy(),
                       sub.groupby("arch_id")["val_metric"].nth(1).to_numpy(),
                       np.asarray([pos[a] for a in rep_test], dtype=np.int64))
    fitted = ev[ev["arch_id"].isin(ids[train])]["val_metric"].astype(float)
    bounds = [float(fitted.min()), float(fitted.max())]
    return {"ids": ids, "archs": archs, "tokens": tokens, "X": fmap.token_features(tokens), "bounds": bounds,
            "y": per_arch["val"].to_numpy(dtype=np.float64), "train": train, "test": test,
            "reps": reps.loc[rep_ids], "ceiling": ceiling, "secs": per_arch["secs"].to_numpy(dtype=np.float64),
            "metric": info["metric"], "higher_is_better": info["higher_is_better"],
            "num_evaluations": int(len(ev))}


def noisy_draw(mean: np.ndarray, sigma: Any, bounds: Sequence[float] | None,
               rng: np.random.Generator) -> np.ndarray:
    """One noisy evaluation per architecture: ``N(mean, sigma)`` truncated to ``bounds`` (the
    range of the metric over the evaluations the surrogate was fitted on), so no draw reports
    a metric that no training ever reached, such as an accuracy above 100%; ``bounds=None``
    (files written before bounds were stored): untruncated.  A mean outside the bounds is
    first moved onto them; ``sigma`` 0 returns the mean."""
    mean = np.asarray(mean, dtype=np.float64)
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), mean.shape)
    if bounds is None:
        return mean + rng.standard_normal(len(mean)) * sigma
    lo, hi = float(bounds[0]), float(bounds[1])
    mean = np.clip(mean, lo, hi)
    out = mean.copy()
    noisy = sigma > 0
    if hi > lo and noisy.any():
        from scipy.stats import truncnorm

        m, sd = mean[noisy], sigma[noisy]
        out[noisy] = truncnorm.rvs((lo - m) / sd, (hi - m) / sd, loc=m, scale=sd, random_state=rng)
    return np.clip(out, lo, hi)  # guards the last ulp of the inverse-CDF arithmetic


def _noise_model(task: str, d: dict[str, Any], noise: str) -> dict[str, Any]:
    """``seeds`` (pooled within-architecture std over repeated seeds) or ``ensemble``."""
    r = d["reps"]
    if noise == "seeds" and len(r) < 2:
        raise SurrogateError(f"task {task!r}: noise='seeds' needs architectures evaluated with "
                             f"several seeds; the store has {len(r)}")
    if noise == "seeds" or (noise == "auto" and len(r) >= MIN_REPEATED_ARCHS):
        pooled = float(np.sqrt(np.sum(r["var"] * (r["count"] - 1)) / np.sum(r["count"] - 1)))
        return {"kind": "seeds", "sigma": pooled, "repeated_archs": int(len(r))}
    return {"kind": "ensemble", "repeated_archs": int(len(r))}
