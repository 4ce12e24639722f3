"""Fitting, prediction, proposal and persistence of the transfer predictor.

``history`` is a mapping ``{task: (archs, scores)}``: the evaluations of every
task, source and target alike, with ``scores`` a 1-D array aligned with
``archs`` (higher is better).  A task may have no evaluations (``([], [])``):
it is then known but predicted by the universal network alone, which is how
XferNAS starts on a fresh target.  Zero sources (NAO) and zero target
evaluations (pure transfer) are the same code path.

Normalisation: the scores of each task with evaluations are z-scored with
that task's own mean and (population) standard deviation, stored in
:attr:`TransferPredictor.stats`; a task with one evaluation, or constant
scores, gets ``std = 1``.  The networks learn normalised targets, so tasks with
different metric scales (accuracy in %, error in [0, 1], ...) are mixed on an
equal footing, and :meth:`TransferPredictor.predict` maps back:
``mean_i + std_i * (g_u(z) + r_i(z))`` - predictions come in the task's own
scale.  A task without evaluations has no scale: its predictions (the
universal network's) are in normalised units (a z-score relative to an
average task), as are those of :meth:`TransferPredictor.predict_universal`.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..logs import get_logger
from ..space import SearchSpace, SpaceError, get_space
from .model import PredictorConfig, TransferNet

__all__ = ["TransferPredictor", "NAOPredictor", "Proposal", "TaskStats", "History",
           "FORMAT", "FORMAT_VERSION", "DEFAULT_STEP_SIZES"]

History = Mapping[str, "tuple[Sequence[Hashable], Any]"]

FORMAT = "nasbench_xfer.predictor"
FORMAT_VERSION = 1
#: step sizes tried in order by :meth:`TransferPredictor.propose` (the paper uses eta = 10)
DEFAULT_STEP_SIZES: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0, 100.0)
_CHUNK = 4096


@dataclass(frozen=True)
class TaskStats:
    """Normalisation of one task: ``z = (score - mean) / std`` over its ``n`` evaluations."""

    mean: float
    std: float
    n: int


class Proposal(NamedTuple):
    """One architecture found by :meth:`TransferPredictor.propose`."""

    arch: Hashable
    #: predicted score of ``arch`` for the task (task scale; normalised if the task has none)
    score: float
    #: the starting architecture whose code was moved
    start: Hashable
    #: predicted score of ``start`` (same scale as ``score``)
    start_score: float
    #: the step size eta that produced it and the number of gradient steps taken
    step_size: float
    steps: int


class TransferPredictor:
    """XferNAS's performance predictor: NAO's auto-encoder + universal and residual networks.

    ``TransferPredictor(space, config=None, **overrides)``; ``overrides`` set
    fields of :class:`PredictorConfig` (``epochs=10``, ``device="cpu"``, ...).
    See the package docstring for the model and its relation to NAO.
    """

    def __init__(self, space: SearchSpace, config: PredictorConfig | None = None, **overrides: Any):
        if not isinstance(space, SearchSpace):
            raise ValueError(f"space must be a SearchSpace, got {type(space).__name__}")
        cfg = config if config is not None else PredictorConfig()
        if overrides:
            cfg = PredictorConfig.from_dict({**cfg.to_dict(), **overrides})
        self.space = space
        self.config = cfg
        self.device = cfg.resolve_device()
        self._mask = np.asarray(space.token_mask(), dtype=bool)
        if self._mask.shape != (space.seq_len, space.vocab_size):
            raise ValueError(f"{space.name}: token_mask() has shape {self._mask.shape}, expected "
                             f"(seq_len, vocab_size) = ({space.seq_len}, {space.vocab_size})")
        self.net: TransferNet | None = None
        #: every task the predictor knows, in history order
        self.tasks: list[str] = []
        #: normalisation of the tasks with evaluations
        self.stats: dict[str, TaskStats] = {}
        #: tasks with a residual network, in the order of the residual heads
        self.residual_tasks: list[str] = []
        #: per-epoch training losses (total, prediction, reconstruction) of the last fit
        self.train_log: list[tuple[float, float, float]] = []
        #: Adam steps and wall-clock seconds of the last fit
        self.train_steps = 0
        self.fit_seconds: float | None = None

    # ------------------------------------------------------------------ state
    @property
    def transfer(self) -> bool:
        return self.config.transfer

    @property
    def fitted(self) -> bool:
        return self.net is not None

    def __repr__(self) -> str:
        state = f"fitted on {len(self.tasks)} task(s)" if self.fitted else "not fitted"
        kind = "TransferPredictor" if self.transfer else "NAOPredictor"
        return f"{kind}({self.space!r}, {state})"

    def _need_fit(self, what: str) -> TransferNet:
        if self.net is None:
            raise ValueError(f"{what}: the predictor is not fitted; call fit(history) first")
        return self.net

    # ---------------------------------------------------------------- encoding
    def _tokens(self, archs: Sequence[Hashable], where: str) -> torch.Tensor:
        if isinstance(archs, (str, bytes)) or not isinstance(archs, Iterable):
            raise ValueError(f"{where}: expected a sequence of {self.space.name} architectures, "
                             f"got {type(archs).__name__}")
        rows = []
        for i, a in enumerate(archs):
            try:
                t = self.space.encode(a)
            except (SpaceError, TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"{where}: architecture {i} is not a valid {self.space.name} "
                                 f"architecture ({type(a).__name__}): {exc}") from None
            rows.append(t)
        if not rows:
            return torch.zeros((0, self.space.seq_len), dtype=torch.long)
        arr = np.asarray(rows, dtype=np.int64)
        if arr.shape[1] != self.space.seq_len or arr.min() < 0 or arr.max() >= self.space.vocab_size or \
                not self._mask[np.arange(arr.shape[1]), arr].all():
            raise ValueError(f"{where}: {self.space.name}.encode produced tokens outside token_mask()")
        return torch.from_numpy(arr)

    # --------------------------------------------------------------------- fit
    def _parse_history(self, history: History, target: str | None):
        if not isinstance(history, Mapping):
            raise ValueError("history must be a mapping {task: (archs, scores)}, "
                             f"got {type(history).__name__}")
        tasks: list[str] = []
        data: dict[str, tuple[torch.Tensor, np.ndarray, list]] = {}
        for task, value in history.items():
            if not isinstance(task, str) or not task:
                raise ValueError(f"history: task names must be non-empty strings, got {task!r}")
            if not (isinstance(value, (tuple, list)) and len(value) == 2):
                raise ValueError(f"history[{task!r}]: expected a pair (archs, scores)")
            archs, scores = value
            archs = list(archs) if archs is not None else []
            try:
                y = np.asarray([] if scores is None else scores, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"history[{task!r}]: scores must be numbers ({exc})") from None
            if y.ndim != 1:
                raise ValueError(f"history[{task!r}]: scores must be a 1-D array, got shape {y.shape}")
            if len(y) != len(archs):
                raise ValueError(f"history[{task!r}]: {len(archs)} architectures but {len(y)} scores")
            if not np.isfinite(y).all():
                raise ValueError(f"history[{task!r}]: scores contain NaN or infinite values "
                                 f"(first at index {int(np.flatnonzero(~np.isfinite(y))[0])})")
            tok = self._tokens(archs, f"history[{task!r}]")
            tasks.append(task)
            data[task] = (tok, y, archs)
        if target is not None:
            if not isinstance(target, str) or not target:
                raise ValueError(f"target must be a non-empty task name, got {target!r}")
            if target not in data:
                tasks.append(target)
                data[target] = (torch.zeros((0, self.space.seq_len), dtype=torch.long),
                                np.zeros(0), [])
        if not tasks:
            raise ValueError("history is empty: nothing to fit (give {task: (archs, scores)})")
        if not self.transfer:
            if target is None:
                if len(tasks) != 1:
                    raise ValueError("NAO (transfer=False) fits a single task: history has "
                                     f"{len(tasks)} tasks ({', '.join(tasks)}); pass target=")
                target = tasks[0]
            tasks = [target]
            data = {target: data[target]}
        if not any(len(data[t][1]) for t in tasks):
            raise ValueError("history has no evaluations: nothing to fit "
                             f"(tasks: {', '.join(tasks)})")
        return tasks, data

    def fit(self, history: History, target: str | None = None, verbose: bool = False,
            init: TransferPredictor | None = None, steps: int | None = None) -> TransferPredictor:
        """Train on ``history`` (``{task: (archs, scores)}``); returns ``self``.

        From scratch by default.  ``init`` (a fitted predictor of the same space
        and network sizes) warm-starts from its weights: the codec, the
        universal network and the residual / scale / shift of every task that
        ``init`` knew by name are copied, a new task's head starts as from
        scratch; ``steps`` then sets the number of Adam steps (a warm refit
        needs far fewer than a fresh fit; default: the usual schedule).

        ``target`` (optional) names the task searched for; it is added with no
        evaluations if ``history`` lacks it.  With ``transfer=False`` (NAO) only
        the target's evaluations are used (``target`` may be left out when
        ``history`` has a single task).  Loss (equation 6):
        ``alpha * L_pred + (1 - alpha) * L_rec`` per mini-batch, ``L_pred`` the
        mean squared error of the normalised predictions over the batch's rows
        (the rows of all tasks are shuffled together, so this is equation 7's
        sum over every evaluation of every task up to the constant 1/batch),
        ``L_rec`` the mean token cross-entropy of the teacher-forced decoder.
        Training runs ``max(epochs * ceil(rows / batch_size), min_steps)``
        Adam steps.
        """
        cfg = self.config
        if steps is not None and (not isinstance(steps, (int, np.integer)) or steps < 1):
            raise ValueError(f"fit: steps must be a positive integer, got {steps!r}")
        tasks, data = self._parse_history(history, target)
        stats = self._task_stats(tasks, data)
        residual_tasks = [t for t in tasks if t in stats] if self.transfer else []
        shrink = cfg.residual_shrinkage if (self.transfer and cfg.head != "paper") else 0.0
        rows = self._training_rows(tasks, data, stats, {t: k for k, t in enumerate(residual_tasks)}, shrink)
        dev = self.device
        t0 = time.perf_counter()
        cuda_devs = [dev.index if dev.index is not None else torch.cuda.current_device()] \
            if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda_devs):
            torch.manual_seed(cfg.seed)
            net = TransferNet(self._mask, len(residual_tasks), cfg).to(dev)
            if init is not None:
                self._warm_start(net, init, residual_tasks)
            log, step = self._train(net, rows, shrink, steps, verbose)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        self.fit_seconds = time.perf_counter() - t0
        self.net = net
        self.tasks = tasks
        self.stats = stats
        self.residual_tasks = residual_tasks
        self.train_log = log
        self.train_steps = step
        return self

    @staticmethod
    def _task_stats(tasks: list[str], data: dict) -> dict[str, TaskStats]:
        """Mean and standard deviation of each task's scores (the per-task z-scoring)."""
        stats: dict[str, TaskStats] = {}
        for t in tasks:
            y = data[t][1]
            if len(y):
                sd = float(y.std())
                stats[t] = TaskStats(float(y.mean()), sd if len(y) > 1 and sd > 1e-12 else 1.0, len(y))
        return stats

    def _training_rows(self, tasks: list[str], data: dict, stats: dict[str, TaskStats],
                       res_index: dict[str, int], shrink: float) -> tuple[torch.Tensor, ...]:
        """Every task's evaluations as one batch on the device: tokens, z-scored targets, residual
        index (-1: none) and the residual penalty weight of each row (shrinkage / task size),
        with ``augment_copies`` symmetry-augmented copies of each row when ``augment``."""
        cfg = self.config
        toks, ys, tids, pens = [], [], [], []
        rng = np.random.default_rng(cfg.seed)
        for t in tasks:
            tok, y, archs = data[t]
            if not len(y):
                continue
            yz = (y - stats[t].mean) / stats[t].std
            toks.append(tok)
            ys.append(yz)
            tids.append(np.full(len(y), res_index.get(t, -1)))
            pens.append(np.full(len(y), shrink / len(y)))
            if cfg.augment:
                for _ in range(cfg.augment_copies):
                    aug = [self.space.augment(a, rng) for a in archs]
                    toks.append(self._tokens(aug, f"augmented history[{t!r}]"))
                    ys.append(yz)
                    tids.append(tids[-1])
                    pens.append(pens[-1])
        dev = self.device
        return (torch.cat(toks).to(dev), torch.from_numpy(np.concatenate(ys)).float().to(dev),
                torch.from_numpy(np.concatenate(tids)).long().to(dev),
                torch.from_numpy(np.concatenate(pens)).float().to(dev))

    def _train(self, net: TransferNet, rows: tuple[torch.Tensor, ...], shrink: float, steps: int | None,
               verbose: bool) -> tuple[list[tuple[float, float, float]], int]:
        """Adam on equation 6 over shuffled mini-batches of ``rows``; returns the per-epoch mean
        (loss, prediction loss, reconstruction loss) and the number of steps taken."""
        cfg, dev = self.config, self.device
        X, Y, TID, PEN = rows
        N = X.shape[0]
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
        bs = min(cfg.batch_size, N)
        total = max(cfg.epochs * math.ceil(N / bs), cfg.min_steps) if steps is None else int(steps)
        log: list[tuple[float, float, float]] = []
        step = 0
        t0 = time.perf_counter()
        net.train()
        while step < total:
            perm = torch.randperm(N, generator=gen).to(dev)
            sums = torch.zeros(3, device=dev)
            nb = 0
            for i in range(0, N, bs):
                if step >= total:
                    break
                idx = perm[i:i + bs]
                loss, l_pred, l_rec = self._batch_loss(net, X[idx], Y[idx], TID[idx], PEN[idx], shrink)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
                opt.step()
                sums += torch.stack((loss.detach(), l_pred.detach(), l_rec.detach()))
                nb += 1
                step += 1
            ep = tuple(float(v) for v in (sums / max(nb, 1)).tolist())
            log.append(ep)  # type: ignore[arg-type]
            if verbose:
                print(f"epoch {len(log):4d}  loss {ep[0]:.4f}  pred {ep[1]:.4f}  rec {ep[2]:.4f}")
        net.eval()
        if log:
            get_logger(__name__).debug("predictor fit: %d rows, %d Adam steps, loss %.4f (prediction %.4f, "
                                       "reconstruction %.4f), %.2f s", N, step, *log[-1],
                                       time.perf_counter() - t0)
        return log, step

    def _batch_loss(self, net: TransferNet, xb: torch.Tensor, yb: torch.Tensor, tb: torch.Tensor,
                    pen: torch.Tensor, shrink: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(``alpha * L_pred + (1 - alpha) * L_rec``, ``L_pred``, ``L_rec``) of one mini-batch;
        ``L_pred`` includes the shrinkage of the residual to 0 and of the task scale to 1."""
        cfg = self.config
        pred, res, logits = net(xb, tb)
        l_pred = F.mse_loss(pred, yb)
        if shrink > 0:
            # shrink the residual to 0 and the task's scale to 1 (see PredictorConfig)
            dev_scale = torch.zeros_like(res)
            if net.calibrated:
                dev_scale = torch.where(tb >= 0, net.task_scale[tb.clamp(min=0)] - 1.0, dev_scale)
            l_pred = l_pred + (pen * (res.pow(2) + dev_scale.pow(2))).mean()
        l_rec = F.cross_entropy(logits.reshape(-1, net.codec.vocab_size), xb.reshape(-1))
        return cfg.alpha * l_pred + (1.0 - cfg.alpha) * l_rec, l_pred, l_rec

    def _warm_start(self, net: TransferNet, init: TransferPredictor, residual_tasks: list[str]) -> None:
        """Copy ``init``'s weights into ``net`` (per-task heads matched by task name)."""
        if not isinstance(init, TransferPredictor) or init.net is None:
            raise ValueError("fit: init must be a fitted TransferPredictor")
        if init.space.name != self.space.name or dict(init.space.config()) != dict(self.space.config()):
            raise ValueError(f"fit: init was fitted on another space ({init.space.name})")
        mine, theirs = self.config.to_dict(), init.config.to_dict()
        shape_keys = ("emb_size", "hidden_size", "decoder_hidden_size", "universal_hidden",
                      "residual_hidden", "position_embedding", "general_attention", "head", "transfer")
        diff = [k for k in shape_keys if mine[k] != theirs[k]]
        if diff:
            raise ValueError(f"fit: init has a different network ({', '.join(diff)} differ)")
        src = init.net.state_dict()
        dst = net.state_dict()
        old_idx = {t: k for k, t in enumerate(init.residual_tasks)}
        pairs = [(k, old_idx[t]) for k, t in enumerate(residual_tasks) if t in old_idx]
        with torch.no_grad():
            for name, value in dst.items():
                if name not in src:
                    continue
                if name.startswith("residual.") or name in ("task_scale", "task_shift"):
                    for new, old in pairs:
                        value[new].copy_(src[name][old])
                elif src[name].shape == value.shape:
                    value.copy_(src[name])
        net.load_state_dict(dst)

    # ----------------------------------------------------------------- predict
    def _task_index(self, task: str, where: str) -> int:
        """Residual-head index of ``task``; -1 for the universal network alone."""
        self._need_fit(where)
        if task in self.residual_tasks:
            return self.residual_tasks.index(task)
        if task in self.tasks:
            return -1
        hint = ("; the universal network's prediction of an unseen task is predict_universal(archs), "
                "or name the task in fit(history, target=...)") if self.transfer else \
            " (NAO is fitted on a single task)"
        raise ValueError(f"{where}: unknown task {task!r}; known tasks: {', '.join(self.tasks)}{hint}")

    def _to_scale(self, task: str | None, z: np.ndarray) -> np.ndarray:
        if task is not None and task in self.stats:
            s = self.stats[task]
            return s.mean + s.std * z
        return z

    @torch.no_grad()
    def _predict_norm(self, tokens: torch.Tensor, idx: int) -> np.ndarray:
        net = self._need_fit("predict")
        out = []
        for i in range(0, tokens.shape[0], _CHUNK):
            x = tokens[i:i + _CHUNK].to(self.device)
            _, code = net.codec.encode(x)
            tid = torch.full((x.shape[0],), idx, dtype=torch.long, device=self.device)
            out.append(net.head(code, tid).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def predict(self, task: str, archs: Sequence[Hashable]) -> np.ndarray:
        """Predicted scores of ``archs`` for ``task`` (float64 array, task scale; see module doc)."""
        return self._to_scale(task, self.predict_normalised(task, archs))

    def predict_tokens(self, task: str, tokens: np.ndarray) -> np.ndarray:
        """:meth:`predict` of token rows ``(N, seq_len)`` (``space.encode`` of each
        architecture): the batched path of callers that already hold tokens."""
        arr = np.asarray(tokens, dtype=np.int64)
        if arr.ndim != 2 or arr.shape[1] != self.space.seq_len:
            raise ValueError(f"predict_tokens: expected token rows of shape (N, {self.space.seq_len}), "
                             f"got {arr.shape}")
        if len(arr) and (arr.min() < 0 or arr.max() >= self.space.vocab_size
                         or not self._mask[np.arange(arr.shape[1]), arr].all()):
            raise ValueError(f"predict_tokens: tokens outside {self.space.name}'s token_mask()")
        idx = self._task_index(task, "predict_tokens")
        return self._to_scale(task, self._predict_norm(torch.from_numpy(arr), idx))

    def predict_normalised(self, task: str, archs: Sequence[Hashable]) -> np.ndarray:
        """:meth:`predict` before the task's scale is applied: normalised units (z-scores of
        the task's evaluations)."""
        return self._predict_norm(self._tokens(archs, "predict"), self._task_index(task, "predict"))

    def predict_universal(self, archs: Sequence[Hashable]) -> np.ndarray:
        """The universal network's predictions (normalised units) - any task, seen or not."""
        self._need_fit("predict_universal")
        return self._predict_norm(self._tokens(archs, "predict_universal"), -1)

    @torch.no_grad()
    def codes(self, archs: Sequence[Hashable]) -> np.ndarray:
        """Architecture codes ``(N, hidden_size)`` (unit L2 norm)."""
        net = self._need_fit("codes")
        tok = self._tokens(archs, "codes")
        out = [net.codec.encode(tok[i:i + _CHUNK].to(self.device))[1].cpu().numpy()
               for i in range(0, tok.shape[0], _CHUNK)]
        return np.concatenate(out) if out else np.zeros((0, self.config.hidden_size), np.float32)

    @torch.no_grad()
    def reconstruct_tokens(self, archs: Sequence[Hashable]) -> np.ndarray:
        """Greedy masked decoding of each architecture's own code: tokens ``(N, seq_len)``."""
        net = self._need_fit("reconstruct")
        tok = self._tokens(archs, "reconstruct")
        out = []
        for i in range(0, tok.shape[0], _CHUNK):
            o, c = net.codec.encode(tok[i:i + _CHUNK].to(self.device))
            out.append(net.codec.greedy(o, c).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.space.seq_len), np.int64)

    def reconstruct(self, archs: Sequence[Hashable]) -> list[Hashable]:
        """Encode then decode each architecture (``space.decode(..., repair=True)``)."""
        return [self.space.decode(t.tolist(), repair=True) for t in self.reconstruct_tokens(archs)]

    def reconstruction_accuracy(self, archs: Sequence[Hashable]) -> float:
        """Fraction of ``archs`` whose token sequence the decoder reproduces exactly."""
        archs = list(archs)
        if not archs:
            raise ValueError("reconstruction_accuracy: no architectures given")
        tok = self._tokens(archs, "reconstruction_accuracy").numpy()
        return float((self.reconstruct_tokens(archs) == tok).all(axis=1).mean())

    # ----------------------------------------------------------------- propose
    def propose(self, task: str, starts: Sequence[Hashable],
                step_sizes: Sequence[float] = DEFAULT_STEP_SIZES, n: int = 100,
                exclude: Iterable[Hashable] = (), max_steps: int = 10,
                require_improvement: bool = True) -> list[Proposal]:
        """New architectures for ``task`` by gradient ascent in code space (equation 8).

        For each step size ``eta`` in ``step_sizes`` (in order) and each start,
        the start's encoder outputs ``e`` (NAO moves these, the code being
        their normalised mean) are updated ``e <- normalize(e + eta * d f/d e)``
        for at most ``max_steps`` steps, ``f`` the normalised prediction for
        ``task`` (its universal + residual network, or the universal network
        alone for a task without evaluations), and decoded after each step.
        The first decoded architecture that is valid, differs from its start
        (by ``space.hash``), is not in ``exclude`` and not already proposed,
        and (with ``require_improvement``) is predicted better than its start,
        is kept for that start and step size.  Step sizes are tried until at
        least ``n`` architectures are found (as NAO raises its step size).
        Returns at most ``n`` :class:`Proposal` s, best predicted first (ties
        by hash), scores in the task's scale.  Deterministic.
        """
        net = self._need_fit("propose")
        idx = self._task_index(task, "propose")
        step_sizes = _check_propose_args(n, max_steps, step_sizes)
        starts = list(starts)
        if not starts:
            return []
        start_tok = self._tokens(starts, "propose starts").to(self.device)
        try:
            seen = {self.space.hash(a) for a in exclude}
        except (SpaceError, TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"propose: exclude holds an invalid {self.space.name} architecture: {exc}") from None
        start_hash = [self.space.hash(a) for a in starts]
        start_pred = self._predict_norm(start_tok, idx)
        tid = torch.full((len(starts),), idx, dtype=torch.long, device=self.device)
        with torch.no_grad():
            e0, _ = net.codec.encode(start_tok)
        found: list[tuple[float, str, Hashable, int, float, int]] = []
        for eta in step_sizes:
            found += self._ascend(net, e0, tid, idx, eta, max_steps, start_hash, start_pred, seen,
                                  require_improvement)
            if len(found) >= n:
                break
        found.sort(key=lambda c: (-c[0], c[1]))
        return [Proposal(arch, float(self._to_scale(task, np.array([p]))[0]), starts[r],
                         float(self._to_scale(task, start_pred[r:r + 1])[0]), eta, step)
                for p, _h, arch, r, eta, step in found[:n]]

    def _ascend(self, net: TransferNet, e0: torch.Tensor, tid: torch.Tensor, idx: int, eta: float,
                max_steps: int, start_hash: list[str], start_pred: np.ndarray, seen: set[str],
                require_improvement: bool) -> list[tuple[float, str, Hashable, int, float, int]]:
        """Gradient ascent from every start with one step size: after each step, the decoded
        architectures that qualify (see :meth:`propose`) are kept, one per start, and their
        starts stop.  ``seen`` is updated.  Rows: (prediction, hash, arch, start, eta, step)."""
        found: list[tuple[float, str, Hashable, int, float, int]] = []
        e = e0.clone()
        active = np.ones(len(start_hash), dtype=bool)
        for step in range(1, max_steps + 1):
            with torch.enable_grad():
                e_req = e.detach().requires_grad_(True)
                f = net.head(net.codec.pool(e_req), tid).sum()
                (g,) = torch.autograd.grad(f, e_req)
            e = F.normalize(e + eta * g, p=2, dim=-1).detach()
            cands = self._decoded(net, e, [int(i) for i in np.flatnonzero(active)], start_hash, seen)
            if cands:
                preds = self._predict_norm(self._tokens([c[1] for c in cands], "propose"), idx)
                for (r, arch, h), p in zip(cands, preds):
                    if h in seen or (require_improvement and not p > start_pred[r]):
                        continue
                    seen.add(h)
                    active[r] = False
                    found.append((float(p), h, arch, r, eta, step))
            if not active.any():
                break
        return found

    def _decoded(self, net: TransferNet, e: torch.Tensor, rows: list[int], start_hash: list[str],
                 seen: set[str]) -> list[tuple[int, Hashable, str]]:
        """(start, architecture, hash) of the valid decodings of ``e[rows]`` that are new:
        not their start and not in ``seen``."""
        with torch.no_grad():
            es = e[torch.as_tensor(rows, dtype=torch.long, device=self.device)]
            toks = net.codec.greedy(es, net.codec.pool(es)).cpu().numpy()
        cands: list[tuple[int, Hashable, str]] = []
        for r, tk in zip(rows, toks):
            try:
                arch = self.space.decode(tk.tolist())
                h = self.space.hash(arch)
            except SpaceError:
                continue
            if h != start_hash[r] and h not in seen:
                cands.append((r, arch, h))
        return cands

    # ------------------------------------------------------------- save / load
    def state(self) -> dict[str, Any]:
        """Everything :meth:`from_state` needs (tensors on the CPU)."""
        net = self._need_fit("save")
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "space_name": self.space.name,
            "space_config": dict(self.space.config()),
            "tasks": list(self.tasks),
            "residual_tasks": list(self.residual_tasks),
            "stats": {t: [s.mean, s.std, s.n] for t, s in self.stats.items()},
            "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        }

    def save(self, path: str | os.PathLike[str] | IO[bytes]) -> None:
        """Write the fitted predictor to one file (``torch.save`` of :meth:`state`)."""
        torch.save(self.state(), path)

    @classmethod
    def from_state(cls, state: Mapping[str, Any], device: str | None = None) -> TransferPredictor:
        if not isinstance(state, Mapping) or state.get("format") != FORMAT:
            raise ValueError("not a saved nasbench_xfer predictor")
        if int(state.get("version", 0)) > FORMAT_VERSION:
            raise ValueError(f"predictor file version {state['version']} is newer than this package "
                             f"supports ({FORMAT_VERSION}); upgrade nasbench_xfer")
        cfg = dict(state["config"])
        if "head" not in cfg:  # saved before the calibrated head existed: the paper's model
            cfg.update(head="paper", residual_shrinkage=0.0)
        if device is not None:
            cfg["device"] = device
        config = PredictorConfig.from_dict(cfg)
        space = get_space(state["space_name"], state["space_config"])
        klass = cls
        if cls in (TransferPredictor, NAOPredictor):
            klass = TransferPredictor if config.transfer else NAOPredictor
        self = klass.__new__(klass)
        TransferPredictor.__init__(self, space, config)
        self.tasks = list(state["tasks"])
        self.residual_tasks = list(state["residual_tasks"])
        self.stats = {t: TaskStats(float(m), float(s), int(k)) for t, (m, s, k) in state["stats"].items()}
        net = TransferNet(self._mask, len(self.residual_tasks), config)
        net.load_state_dict(state["state_dict"])
        self.net = net.to(self.device).eval()
        return self

    @classmethod
    def load(cls, path: str | os.PathLike[str] | IO[bytes], device: str | None = None) -> TransferPredictor:
        """Read a predictor written by :meth:`save`; ``device`` overrides the saved one."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as exc:  # noqa: BLE001 - unpickling errors of a file that is not ours
            # torch's text advises weights_only=False (which runs code from the file): not relayed
            raise ValueError(f"{path} is not a saved nasbench_xfer predictor (TransferPredictor.save): "
                             f"torch cannot read it as one ({type(exc).__name__})") from None
        return cls.from_state(state, device=device)


class NAOPredictor(TransferPredictor):
    """NAO: the same model with ``transfer=False`` (one task, a single head = the universal network)."""

    def __init__(self, space: SearchSpace, config: PredictorConfig | None = None, **overrides: Any):
        overrides["transfer"] = False
        super().__init__(space, config, **overrides)


def paper_predictor(space: SearchSpace, seed: int = 0, **options: Any) -> TransferPredictor:
    """XferNAS's transfer head and loss as the paper gives them: ``head="paper"`` and no
    residual shrinkage (options may override either), on the package's NAO codec (its
    differences from NAO's published code: the README's "Paper fidelity")."""
    return TransferPredictor(space, seed=seed, **{"head": "paper", "residual_shrinkage": 0.0, **options})


def _check_propose_args(n: Any, max_steps: Any, step_sizes: Any) -> list[float]:
    """Bad-argument checks of :meth:`TransferPredictor.propose`; the step sizes as a list."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"propose: n must be a positive integer, got {n!r}")
    if not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"propose: max_steps must be a positive integer, got {max_steps!r}")
    if isinstance(step_sizes, (int, float)):
        step_sizes = (float(step_sizes),)
    sizes = [float(s) for s in step_sizes]
    if not sizes or not all(math.isfinite(s) and s > 0 for s in sizes):
        raise ValueError(f"propose: step_sizes must be positive numbers, got {sizes!r}")
    return sizes
