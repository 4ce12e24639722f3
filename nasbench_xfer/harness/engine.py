"""The step engine: one architecture's training as a sequence of GPU work, and many at once.

:class:`ArchTrainer` trains one architecture under a protocol.  Its
:meth:`~ArchTrainer.steps` generator enqueues one unit of device work per
``next()`` (a training step, an evaluation pass) and never waits for the device
until the very end, so a scheduler can interleave many trainers:
:func:`train_concurrently` keeps ``k`` of them in flight, each on its own CUDA
stream, round-robin from one host thread.  :func:`~nasbench_xfer.harness.train.train_one`
is the same generator run to the end with ``k = 1``.

What one training step is (every path; the protocol decides the numbers):

1. copy batch ``i`` of the epoch buffer into the step's input (the whole epoch is
   augmented at once on the device: :meth:`DeviceSplit.epoch_buffer`, the same
   images and draws as batch-by-batch augmentation);
2. write the learning rate (cosine, per step or per epoch) and the drop-path
   progress into two device scalars;
3. forward (bf16 autocast on CUDA), cross-entropy, backward;
4. clip the gradient norm (no host sync);
5. SGD with momentum and weight decay, written with ``torch._foreach_*`` ops and a
   device-tensor learning rate (:func:`sgd_update_`; the same arithmetic as
   ``torch.optim.SGD``, which the tests check);
6. add the batch loss and correct count to device accumulators.

With ``graph_step`` (CUDA; opt-in until it has been measured on a GPU), steps 3-6 are
captured once per architecture into a CUDA graph after a few eager warm-up steps (whose effect on the weights,
BatchNorm statistics and momentum is undone, so the protocol is unchanged) and
each step is one graph replay; evaluation is a second graph (eval mode, the
eval batch size).  A capture that fails falls back to the eager step for that
architecture and says so in the record's ``flags``.  Nothing here reads a value
back to the host before the end of a training: the per-epoch losses and
accuracies stay on the device and are read once.
"""
from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import Augment, DeviceSplit
from .network import Network
from .protocols import Protocol

__all__ = ["sgd_update_", "lr_at", "ArchTrainer", "train_concurrently"]


def lr_at(protocol: Protocol, step: int, epoch: int, total_steps: int) -> float:
    """The protocol's cosine learning rate at ``step`` (per-step schedule) or ``epoch``."""
    if protocol.lr_schedule == "cosine-per-epoch":
        frac = epoch / protocol.epochs
    else:
        frac = step / total_steps
    return protocol.lr_min + 0.5 * (protocol.lr_max - protocol.lr_min) * (1 + math.cos(math.pi * frac))


@torch.no_grad()
def sgd_update_(params: list[torch.Tensor], grads: list[torch.Tensor], bufs: list[torch.Tensor],
                lr: torch.Tensor, momentum: float, weight_decay: float, nesterov: bool = False) -> None:
    """In-place SGD (PyTorch's semantics, dampening 0) with a device-tensor learning rate.

    ``d = g + wd * p``; ``buf = momentum * buf + d`` (``buf`` starts at zero, which
    equals PyTorch's ``buf = d`` on the first step); ``p -= lr * buf`` (Nesterov:
    ``p -= lr * (d + momentum * buf)``).  ``grads`` are overwritten.  No host sync,
    so it can be captured in a CUDA graph.
    """
    if weight_decay:
        torch._foreach_add_(grads, params, alpha=weight_decay)
    if momentum:
        torch._foreach_mul_(bufs, momentum)
        torch._foreach_add_(bufs, grads)
        if nesterov:
            torch._foreach_add_(grads, bufs, alpha=momentum)
            upd = grads
        else:
            upd = bufs
    else:
        upd = grads
    torch._foreach_sub_(params, torch._foreach_mul(upd, lr))


class ArchTrainer:
    """Train one built network on one task's device splits under ``protocol``.

    ``model`` is on ``device`` already; ``fl`` the resolved speed flags
    (:meth:`SpeedFlags.resolve`).  Drive it with :meth:`steps`; afterwards
    :attr:`result` holds the curves and accuracies (host values).
    """

    WARMUP_STEPS = 3

    def __init__(self, model: Network, train: DeviceSplit, val: DeviceSplit, test: DeviceSplit,
                 protocol: Protocol, seed: int, device: torch.device, fl: dict[str, Any],
                 log: Callable[[str], None] | None = None):
        self.model, self.train, self.val, self.test = model, train, val, test
        self.protocol, self.seed, self.device, self.fl = protocol, int(seed), device, dict(fl)
        self.log = log
        self.cuda = device.type == "cuda"
        self.params: list[torch.Tensor] = [p for p in model.parameters() if p.requires_grad]
        self.bufs = [torch.zeros_like(p) for p in self.params]
        self.lr_t = torch.zeros((), device=device)
        self.loss_acc = torch.zeros((), device=device)
        self.correct_acc = torch.zeros((), dtype=torch.int64, device=device)
        self.gen = torch.Generator().manual_seed(self.seed)       # data order and augmentation
        if not self.cuda:
            # CPU: drop-path masks from a generator of this training alone, so trainings
            # interleaved by train_concurrently give the same records as one at a time
            g = torch.Generator().manual_seed(self.seed + 7919)
            model.drop_generator = g
        self.aug = Augment(pad=protocol.pad, hflip=protocol.hflip, cutout=protocol.cutout)
        self.memory_format = torch.channels_last if fl.get("channels_last") else torch.contiguous_format
        self.result: dict[str, Any] | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.eval_graph: torch.cuda.CUDAGraph | None = None
        self.setup_seconds = 0.0

    # ---------------------------------------------------------------- one step
    def _autocast(self, cache: bool = True):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bool(self.fl.get("bf16")),
                              cache_enabled=cache)

    def _step_body(self, x: torch.Tensor, y: torch.Tensor, cache: bool = True) -> None:
        """Forward, backward, clipping, SGD and the accumulators (what a graph captures)."""
        with self._autocast(cache):
            out = self.model(x)
            if isinstance(out, tuple):
                logits, aux = out
                loss = F.cross_entropy(logits, y) + self.protocol.aux_weight * F.cross_entropy(aux, y)
            else:
                logits = out
                loss = F.cross_entropy(logits, y)
        loss.backward()
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        params: list[torch.Tensor] = [self.params[i] for i in live]
        grads = [g for g in (self.params[i].grad for i in live) if g is not None]
        if self.protocol.grad_clip:
            nn.utils.clip_grad_norm_(params, self.protocol.grad_clip, foreach=self.cuda or None)
        sgd_update_(params, grads, [self.bufs[i] for i in live], self.lr_t, self.protocol.momentum,
                    self.protocol.weight_decay, self.protocol.nesterov)
        with torch.no_grad():
            self.loss_acc.add_(loss.detach().float() * y.shape[0])
            self.correct_acc.add_(self._count_correct(logits.detach(), y))

    @staticmethod
    def _count_correct(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Correct predictions in a batch (a device count; one per network in a fused trainer)."""
        return (logits.argmax(1) == y).sum()

    def _epoch_buffer(self, buf: Any) -> tuple[Any, torch.Tensor, int, int]:
        """The next epoch's augmented images and labels, ``(x, y, batches, batch_len)`` (``buf`` reused)."""
        return self.train.epoch_buffer(self.protocol.effective_batch_size, self.aug, self.gen, out=buf,
                                       memory_format=self.memory_format)

    def _eager_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        for p in self.params:
            p.grad = None
        self._step_body(x, y)

    # ---------------------------------------------------------------- CUDA graphs
    def _capture(self, x0: torch.Tensor, y0: torch.Tensor) -> None:
        """Capture the training step (and the evaluation forward) as CUDA graphs.

        A few eager warm-up steps first (cuDNN picks its algorithms, the gradients
        exist); their effect on parameters, buffers and momentum is undone.
        """
        t0 = time.perf_counter()
        model = self.model
        snapshot = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.static_x = x0.clone(memory_format=self.memory_format)
        self.static_y = y0.clone()
        self.lr_t.fill_(0.0)  # warm-up steps with lr 0 still move BN statistics: restored below
        for _ in range(self.WARMUP_STEPS):
            self._eager_step(self.static_x, self.static_y)
        with torch.no_grad():
            for k, v in model.state_dict().items():
                v.copy_(snapshot[k])
            for b in self.bufs:
                b.zero_()
            self.loss_acc.zero_()
            self.correct_acc.zero_()
        for p in self.params:
            p.grad = None
        g = torch.cuda.CUDAGraph()
        g.capture_begin(capture_error_mode="thread_local")
        try:
            self._step_body(self.static_x, self.static_y, cache=False)
        finally:
            g.capture_end()
        self.graph = g
        # evaluation graph (eval mode: BatchNorm running statistics, no drop-path)
        ebs = self.protocol.eval_batch_size
        C, H, W = self.val.x.shape[1:]
        self.static_ex = torch.zeros((ebs, C, H, W), device=self.device).contiguous(memory_format=self.memory_format)
        model.eval()
        with torch.no_grad():
            with self._autocast():
                model(self.static_ex)  # warm-up (algorithm choice) outside the capture
            eg = torch.cuda.CUDAGraph()
            eg.capture_begin(capture_error_mode="thread_local")
            try:
                with self._autocast(cache=False):
                    self.static_elogits = model(self.static_ex)
            finally:
                eg.capture_end()
        model.train()
        self.eval_graph = eg
        self.setup_seconds += time.perf_counter() - t0

    # ---------------------------------------------------------------- evaluation
    def _evaluate(self, split: DeviceSplit) -> Iterator[torch.Tensor]:
        """Yield after each batch; the last value yielded is the device count of correct predictions."""
        self.model.eval()
        correct = torch.zeros_like(self.correct_acc)
        ebs = self.protocol.eval_batch_size
        for x, y in split.eval_batches(ebs):
            m = x.shape[0]
            with torch.no_grad():
                if self.eval_graph is not None:
                    self.static_ex[:m].copy_(x)
                    self.eval_graph.replay()
                    logits = self.static_elogits[:m]
                else:
                    if self.fl.get("channels_last"):
                        x = x.contiguous(memory_format=torch.channels_last)
                    with self._autocast():
                        logits = self.model(x)
                correct += self._count_correct(logits, y)
            yield correct
        self.model.train()
        yield correct

    # ---------------------------------------------------------------- the whole training
    def steps(self) -> Iterator[None]:
        """Enqueue the training one unit of work per ``next()``; sets :attr:`result` at the end."""
        p = self.protocol
        model = self.model
        model.train()
        nb = self.train.num_batches(p.effective_batch_size, drop_last=True)
        total_steps = max(p.epochs * nb, 1)
        use_graph = bool(self.fl.get("graph_step")) and self.cuda
        if self.cuda:
            start_ev = torch.cuda.Event(enable_timing=True)
            train_ev = torch.cuda.Event(enable_timing=True)
            start_ev.record()
        t_host = time.perf_counter()
        losses, corrects, seens, val_correct = [], [], [], []
        buf = None
        step = 0
        eval_wall = 0.0
        for epoch in range(p.epochs):
            buf, ys, nb_e, blen = self._epoch_buffer(buf)
            self.loss_acc.zero_()
            self.correct_acc.zero_()
            for i in range(nb_e):
                x = buf[i * blen:(i + 1) * blen]
                y = ys[i * blen:(i + 1) * blen]
                if use_graph and self.graph is None:
                    try:
                        self._capture(x, y)
                    except Exception as exc:  # noqa: BLE001 - fall back to the eager step
                        use_graph = False
                        self.graph = self.eval_graph = None
                        self.fl["graph_step"] = f"off (capture failed: {type(exc).__name__}: {str(exc)[:120]})"
                        with torch.no_grad():
                            for b in self.bufs:
                                b.zero_()
                        self.loss_acc.zero_()
                        self.correct_acc.zero_()
                self.lr_t.fill_(lr_at(p, step, epoch, total_steps))
                model.set_drop_path_progress(step / total_steps)
                if use_graph:
                    self.static_x.copy_(x)
                    self.static_y.copy_(y)
                    self.graph.replay()  # type: ignore[union-attr]  # use_graph: captured above
                else:
                    if self.fl.get("channels_last"):
                        x = x.contiguous(memory_format=torch.channels_last)
                    self._eager_step(x, y)
                step += 1
                yield
            losses.append(self.loss_acc.clone())
            corrects.append(self.correct_acc.clone())
            seens.append(nb_e * blen)
            t0 = time.perf_counter()
            for c in self._evaluate(self.val):  # noqa: B007 (the last value is the count)
                yield
            eval_wall += time.perf_counter() - t0
            val_correct.append(c)
            if self.log:
                self.log(f"epoch {epoch + 1}/{p.epochs} loss {float(losses[-1].mean()) / max(seens[-1], 1):.4f} "
                         f"val_acc {float(c.float().mean()) / max(len(self.val), 1):.4f}")
        if self.cuda:
            train_ev.record()
        for c in self._evaluate(self.test):  # noqa: B007 (the last value is the count)
            yield
        test_correct = c
        if self.cuda:
            end_ev = torch.cuda.Event(enable_timing=True)
            end_ev.record()
            while not end_ev.query():  # let the other trainings run while this one drains
                yield
        t_end = time.perf_counter()
        if self.cuda:
            wall = start_ev.elapsed_time(end_ev) / 1000.0
            train_s = start_ev.elapsed_time(train_ev) / 1000.0
        else:
            wall = t_end - t_host
            train_s = max(wall - eval_wall, 0.0)
        loss_v, corr_v, valc_v = [torch.stack(v).cpu().tolist() if v else [] for v in (losses, corrects, val_correct)]
        self._collect(loss_v, corr_v, valc_v, test_correct.cpu().tolist(), seens, train_s, wall)

    def _collect(self, loss_v: list, corr_v: list, valc_v: list, test_c: Any, seens: list[int],
                 train_s: float, wall: float) -> None:
        """Set :attr:`result` from the host copies of the per-epoch device accumulators."""
        nval, ntest = max(len(self.val), 1), max(len(self.test), 1)
        self.result = {
            "train_loss_curve": [v / max(s, 1) for v, s in zip(loss_v, seens)],
            "train_acc_curve": [v / max(s, 1) for v, s in zip(corr_v, seens)],
            "val_curve": [v / nval for v in valc_v],
            "test_acc": float(test_c) / ntest,
            "epochs_done": len(loss_v),
            "images": int(sum(seens)),
            "train_seconds": train_s,      # includes the per-epoch validation passes on CUDA
            "total_device_seconds": wall,
            "setup_seconds": self.setup_seconds,
        }


class InFlight:
    """Trainings in flight on one device, each on its own CUDA stream, advanced round-robin
    from this thread: :meth:`start` adds one, :meth:`advance` runs one unit of work of each
    and returns those that ended.  The scheduler behind :func:`train_concurrently` and the
    live search's asynchronous batches (a new training starts whenever one ends).  On CPU the
    trainings interleave step by step with the same results as one after another.
    """

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self._active: list[list[Any]] = []   # [trainer, generator, stream, state]

    def __len__(self) -> int:
        return len(self._active)

    def start(self, build: Callable[[], tuple[ArchTrainer | None, Any]]
              ) -> tuple[Any, ArchTrainer | None, BaseException | None] | None:
        """Build a training (``build()`` returns ``(trainer, state)``, ``(None, state)`` when building
        failed) on a new stream; a failed build comes back at once as ``(state, None, None)``."""
        stream = None
        if self.cuda:
            stream = torch.cuda.Stream(self.device)
            # pool streams do not wait for the default stream by themselves: the task's
            # images were copied to the device there
            stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream) if self.cuda else contextlib.nullcontext():
            trainer, state = build()
        if trainer is None:
            return state, None, None
        self._active.append([trainer, trainer.steps(), stream, state])
        return None

    def advance(self) -> list[tuple[Any, ArchTrainer | None, BaseException | None]]:
        """One unit of device work of every training in flight; ``(state, trainer, error)`` of
        those that ended (``error`` set when the training raised), in the order they ended."""
        ended: list[tuple[Any, ArchTrainer | None, BaseException | None]] = []
        for entry in list(self._active):
            trainer, gen, stream, state = entry
            try:
                with torch.cuda.stream(stream) if self.cuda else contextlib.nullcontext():
                    next(gen)
            except StopIteration:
                self._active.remove(entry)
                ended.append((state, trainer, None))
            except Exception as exc:  # noqa: BLE001 - one failed training must not stop the others
                self._active.remove(entry)
                ended.append((state, trainer, exc))
        return ended


def train_concurrently(jobs: Iterable[Any], start: Callable[[Any], tuple[ArchTrainer | None, Any]],
                       finish: Callable[[Any, ArchTrainer | None, BaseException | None], None],
                       k: int, device: torch.device | str) -> None:
    """Keep ``k`` trainings in flight (:class:`InFlight`), taking the next job from ``jobs``
    whenever one ends (``jobs`` may be a lazy generator).

    ``start(job)`` builds a job's trainer (``(None, state)`` when building failed);
    ``finish(state, trainer, error)`` is called once per job, in the order the jobs
    finish, with ``error`` set when the training raised.
    """
    pool = InFlight(device)
    it = iter(jobs)
    exhausted = False
    while len(pool) or not exhausted:
        while not exhausted and len(pool) < max(int(k), 1):
            try:
                job = next(it)
            except StopIteration:
                exhausted = True
                break
            failed = pool.start(functools.partial(start, job))
            if failed is not None:
                finish(*failed)
        for ended in pool.advance():
            finish(*ended)

