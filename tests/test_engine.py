"""The step engine (harness/engine.py): the same arithmetic as a plain PyTorch loop, the
epoch buffer, several trainings interleaved, and (on a GPU) the captured step.

The CUDA-graph step cannot run on CPU; what it captures (``_step_body``) is the code
the eager step runs, and the GPU test below checks graph against eager losses.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import nasbench_xfer.datasets
from nasbench_xfer.harness.data import Augment, DeviceSplit
from nasbench_xfer.harness.engine import ArchTrainer, lr_at, sgd_update_
from nasbench_xfer.harness.protocols import get_protocol
from nasbench_xfer.harness.runner import run
from nasbench_xfer.harness.train import SpeedFlags, build_for_task, train_concurrent, train_one
from nasbench_xfer.space.nasnet import NASNetSpace, named_arch

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def task():
    return nasbench_xfer.datasets.load_task("quickdraw", SHARED, download=False, num_classes=4)


@pytest.mark.parametrize("nesterov", [False, True])
def test_foreach_sgd_matches_torch_sgd(nesterov):
    torch.manual_seed(0)
    ps = [torch.randn(5, 3), torch.randn(7)]
    qs = [p.clone().requires_grad_() for p in ps]
    ours = [p.clone() for p in ps]
    bufs = [torch.zeros_like(p) for p in ps]
    opt = torch.optim.SGD(qs, lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=nesterov)
    for step in range(4):
        lr = 0.1 * (1 - step / 4)
        grads = [torch.randn_like(p) for p in ps]
        for q, g in zip(qs, grads):
            q.grad = g.clone()
        for grp in opt.param_groups:
            grp["lr"] = lr
        opt.step()
        sgd_update_(ours, [g.clone() for g in grads], bufs, torch.tensor(lr), 0.9, 5e-4, nesterov)
        for a, b in zip(ours, qs):
            torch.testing.assert_close(a, b.detach(), rtol=1e-6, atol=1e-7)


def test_epoch_buffer_is_the_batches_of_train_batches(task):
    split = DeviceSplit(task.train_x[:300], task.train_y[:300], task.preprocessing["mean"],
                        task.preprocessing["std"])
    aug = Augment(cutout=8)
    batches = list(split.train_batches(64, aug, torch.Generator().manual_seed(3), drop_last=True))
    x, y, nb, blen = split.epoch_buffer(64, aug, torch.Generator().manual_seed(3), chunk=100)
    assert (nb, blen) == (len(batches), 64) == (4, 64)
    for i, (bx, by) in enumerate(batches):
        assert torch.equal(x[i * 64:(i + 1) * 64], bx) and torch.equal(y[i * 64:(i + 1) * 64], by)
    # a split smaller than a batch is one batch of all of it
    small = DeviceSplit(task.train_x[:10], task.train_y[:10], task.preprocessing["mean"],
                        task.preprocessing["std"])
    x, y, nb, blen = small.epoch_buffer(64, aug, torch.Generator().manual_seed(0))
    assert (nb, blen, x.shape[0]) == (1, 10, 10)


def _plain_loop_losses(arch, task, protocol, seed: int, steps: int) -> list[float]:
    """What a textbook loop computes: torch.optim.SGD, clip_grad_norm_, train_batches."""
    torch.manual_seed(seed)
    model = build_for_task(arch, protocol, task)
    model.drop_generator = torch.Generator().manual_seed(seed + 7919)
    t = task.subset(train=protocol.train_images, val=protocol.val_images, test=protocol.test_images,
                    seed=int(task.meta.get("split_seed", 0)))
    split = DeviceSplit(t.train_x, t.train_y, t.preprocessing["mean"], t.preprocessing["std"])
    opt = torch.optim.SGD(model.parameters(), lr=protocol.lr_max, momentum=protocol.momentum,
                          weight_decay=protocol.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    aug = Augment(pad=protocol.pad, hflip=protocol.hflip, cutout=protocol.cutout)
    nb = split.num_batches(protocol.effective_batch_size, drop_last=True)
    total = protocol.epochs * nb
    losses, step = [], 0
    model.train()
    for epoch in range(protocol.epochs):
        # the epoch's batches as epoch_buffer serves them (equal to train_batches: tested above)
        xs, ys, nb_e, blen = split.epoch_buffer(protocol.effective_batch_size, aug, gen)
        for x, y in zip(xs.split(blen), ys.split(blen)):
            for g in opt.param_groups:
                g["lr"] = lr_at(protocol, step, epoch, total)
            model.set_drop_path_progress(step / total)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if protocol.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), protocol.grad_clip)
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
            if step == steps:
                return losses
    return losses


def test_speed_flags_default_to_fp32_with_the_graph_step_on_cuda():
    """The H100 measurement (benchmarks/results/parity_variants.json) decided these defaults:
    bf16 autocast lowered accuracy, the fp32 graph step kept it."""
    cuda = SpeedFlags().resolve(torch.device("cuda"))
    assert (cuda["bf16"], cuda["channels_last"], cuda["graph_step"], cuda["cudnn_benchmark"]) == \
        (False, False, True, True)
    cpu = SpeedFlags().resolve(torch.device("cpu"))
    assert not any(cpu[k] for k in ("bf16", "channels_last", "graph_step", "cudnn_benchmark"))
    assert SpeedFlags(bf16=True, channels_last=True).resolve(torch.device("cuda"))["bf16"] is True
    assert SpeedFlags(bf16=True).resolve(torch.device("cpu"))["bf16"] is False  # never on CPU
    assert SpeedFlags(compile=True).resolve(torch.device("cuda"))["graph_step"] is False
    assert SpeedFlags(graph_step=False).resolve(torch.device("cuda"))["graph_step"] is False


def test_engine_step_equals_a_plain_pytorch_loop(task):
    p = get_protocol("smoke").replace(name="smoke-eq", epochs=2, batch_size=32, train_images=128,
                                      lr_max=0.05)
    arch = NASNetSpace().sample(np.random.default_rng(5))
    ref = _plain_loop_losses(arch, task, p, seed=2, steps=8)
    torch.manual_seed(2)
    model = build_for_task(arch, p, task)
    t = task.subset(train=p.train_images, val=p.val_images, test=p.test_images, seed=0)
    mk = lambda x, y: DeviceSplit(x, y, t.preprocessing["mean"], t.preprocessing["std"])  # noqa: E731
    tr = ArchTrainer(model, mk(t.train_x, t.train_y), mk(t.val_x, t.val_y), mk(t.test_x, t.test_y), p, 2,
                     torch.device("cpu"), SpeedFlags().resolve(torch.device("cpu")))
    per_step = []
    orig = tr._step_body

    def spy(x, y, cache=True):
        before = float(tr.loss_acc)
        orig(x, y, cache)
        per_step.append((float(tr.loss_acc) - before) / y.shape[0])
    tr._step_body = spy
    for _ in tr.steps():
        pass
    assert len(per_step) == 8
    # the first steps agree to float rounding (foreach vs per-parameter SGD round differently in
    # the last bit); later, max-pool ties and ReLU boundaries amplify that rounding, so the
    # tolerance widens (measured: <= 3e-6 over 5 steps, <= 1e-3 over 8)
    np.testing.assert_allclose(per_step[:4], ref[:4], rtol=0, atol=1e-5)
    np.testing.assert_allclose(per_step, ref, rtol=0, atol=5e-3)
    assert tr.result["epochs_done"] == 2 and len(tr.result["val_curve"]) == 2


def test_concurrent_trainings_give_the_records_of_one_at_a_time(task):
    space = NASNetSpace()
    archs = [named_arch("xfernasnet")] + space.sample_many(2, np.random.default_rng(3))
    seq = [train_one(a, task, "smoke", seed=i) for i, a in enumerate(archs)]
    order = []
    conc = train_concurrent(archs, task, "smoke", [0, 1, 2], "cpu", concurrency=2,
                            on_record=lambda i, r: order.append(i))
    assert sorted(order) == [0, 1, 2]
    for a, b in zip(seq, conc):
        assert b["status"] == "ok"
        for k in ("val_curve", "train_loss_curve", "train_acc_curve", "test_acc", "params", "flops", "arch_hash"):
            assert a[k] == b[k], k


def test_should_stop_leaves_the_rest_untrained(task):
    archs = NASNetSpace().sample_many(4, np.random.default_rng(9))
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 2
    out = train_concurrent(archs, task, "smoke", 0, "cpu", concurrency=1, should_stop=stop)
    assert [r is not None for r in out] == [True, True, False, False]


def test_runner_time_limit_then_resume(task, tmp_path):
    from nasbench_xfer.store import Store
    archs = NASNetSpace().sample_many(3, np.random.default_rng(4))
    store = tmp_path / "t.h5"
    s0 = run(store, "quickdraw", archs, "smoke", task_data=task, log=lambda m: None, concurrent=2,
             time_limit=0.0)
    assert s0.get("stopped_early") and s0["trained"] == 0
    s1 = run(store, "quickdraw", archs[:1], "smoke", task_data=task, log=lambda m: None, concurrent=2)
    assert s1["trained"] == 1 and not s1.get("stopped_early")
    s2 = run(store, "quickdraw", archs, "smoke", task_data=task, log=lambda m: None, concurrent=2,
             flush_seconds=0.0)
    assert s2["skipped"] == 1 and s2["trained"] == 2
    with Store.open(store) as st:
        ev = st.evaluations("quickdraw")
    assert len(ev) == 3 and set(ev["status"]) == {"ok"}


def test_a_job_another_run_stored_meanwhile_is_stored_once(task, tmp_path, monkeypatch):
    """Two runs that both train a job (identical commands started together, or workers of a killed
    run finishing beside its rerun) store it once: appends skip what the store holds, under the lock."""
    from nasbench_xfer.harness import runner
    from nasbench_xfer.store import Store

    archs = NASNetSpace().sample_many(2, np.random.default_rng(5))
    store = tmp_path / "t.h5"
    assert run(store, "quickdraw", archs[:1], "smoke", task_data=task, log=lambda m: None)["trained"] == 1
    monkeypatch.setattr(runner, "_done_keys", lambda ev, protocol: {})  # as if read before that run stored
    again = run(store, "quickdraw", archs, "smoke", task_data=task, log=lambda m: None)
    assert again["trained"] == 2
    with Store.open(store) as st:
        ev = st.evaluations("quickdraw")
    assert len(ev) == 2 and len(set(zip(ev["hash"], ev["seed"]))) == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_graph_step_matches_eager_step_on_gpu(task):
    """The captured step against the eager step, same seed: epoch losses agree within 3%
    (cuDNN's autotuned algorithms and TF32 convolutions differ between the two runs).
    Passed on an H100 (torch 2.11, 2026-11-24) with the flags of that day (bf16 on).

    Drop-path is off (its masks come from the device RNG, whose offsets differ between
    capture and eager runs); everything else is the protocol's.
    """
    p = get_protocol("smoke").replace(name="smoke-gpu", epochs=2, batch_size=64, train_images=640,
                                      drop_path=0.0)
    arch = named_arch("xfernasnet")
    g = train_one(arch, task, p, seed=0, device="cuda", flags=SpeedFlags(graph_step=True))
    e = train_one(arch, task, p, seed=0, device="cuda", flags=SpeedFlags(graph_step=False))
    assert g["flags"]["graph_step"] is True and e["flags"]["graph_step"] is False
    assert g["status"] == e["status"] == "ok"
    for a, b in zip(g["train_loss_curve"], e["train_loss_curve"]):
        assert math.isclose(a, b, rel_tol=0.03), (g["train_loss_curve"], e["train_loss_curve"])
