"""Horizontal fusion (harness/fused.py): K networks trained as one must be the K trainings
one at a time would be: the same outputs, the same per-network gradient clipping, the
same losses step by step and the same records."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import nasbench_xfer.datasets
from nasbench_xfer.harness.fused import ZERO, ChannelGather, FusedNetwork
from nasbench_xfer.harness.network import NetConfig, Network
from nasbench_xfer.harness.protocols import get_protocol
from nasbench_xfer.harness.train import SpeedFlags, train_concurrent
from nasbench_xfer.space.nasnet import NASNetSpace, named_arch

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CFG = NetConfig(num_cells=1, filters=8, num_classes=4, input_size=16, drop_path=0.0)


def _nets(n: int, seed: int = 1, cfg: NetConfig = CFG) -> list[Network]:
    archs = [named_arch("xfernasnet")] + NASNetSpace().sample_many(n - 1, np.random.default_rng(seed))
    nets = []
    for i, a in enumerate(archs):
        torch.manual_seed(i)
        nets.append(Network(a, cfg))
    return nets


@pytest.fixture(scope="module")
def task():
    return nasbench_xfer.datasets.load_task("quickdraw", SHARED, download=False, num_classes=4)


def test_channel_gather_picks_zero_pads_and_scatters_gradients_back():
    a = torch.arange(2 * 4 * 1 * 1, dtype=torch.float32).reshape(2, 4, 1, 1).requires_grad_()
    b = (100 + torch.arange(2 * 6 * 1 * 1, dtype=torch.float32)).reshape(2, 6, 1, 1).requires_grad_()
    g = ChannelGather([(1, 4, 2), (0, 0, 2), (ZERO, 0, 3), (1, 0, 1)])
    out = g([a, b])
    expect = torch.cat([b[:, 4:6], a[:, 0:2], torch.zeros(2, 3, 1, 1), b[:, 0:1]], dim=1)
    assert out.shape == (2, 8, 1, 1) and torch.equal(out, expect)
    w = torch.randn_like(out)
    (out * w).sum().backward()
    ga, gb = torch.zeros_like(a), torch.zeros_like(b)
    ga[:, 0:2], gb[:, 4:6], gb[:, 0:1] = w[:, 2:4], w[:, 0:2], w[:, 7:8]
    assert torch.equal(a.grad, ga) and torch.equal(b.grad, gb)
    with pytest.raises(ValueError, match="non-zero source"):
        ChannelGather([(ZERO, 0, 2)])


def test_fused_forward_equals_each_network_in_train_and_eval_mode():
    nets = _nets(5)
    widths = {len(n.cells[i].concat) for n in nets for i in range(len(n.cells))}
    assert len(widths) > 1, "the sample must exercise zero-padded cell outputs"
    fused = FusedNetwork(nets)
    x = torch.randn(6, 5, 3, 16, 16)
    for training in (True, False):
        fused.train(training)
        out = fused(x)
        assert out.shape == (6, 5, 4)
        for k, n in enumerate(nets):
            n.train(training)
            torch.testing.assert_close(out[:, k], n(x[:, k]), rtol=0, atol=1e-4)
    # one batch for every network (evaluation) equals the batch repeated
    fused.eval()
    torch.testing.assert_close(fused(x[:, 0]), fused(x[:, :1].expand(-1, 5, -1, -1, -1).contiguous()))


def test_fused_gradients_and_clipping_are_per_network():
    nets = _nets(4, seed=2)
    fused = FusedNetwork(nets)
    x, y = torch.randn(8, 4, 3, 16, 16), torch.randint(0, 4, (8, 4))
    with pytest.raises(RuntimeError, match="flatten_"):
        fused.grad_norms()
    # the flat storage (what the trainer uses) keeps the gradients in place
    fused.flatten_()
    logits = fused(x)
    F.cross_entropy(logits.reshape(-1, 4), y.reshape(-1), reduction="none").reshape(8, 4).mean(0).sum().backward()
    lo, n = fused.flat_grad.data_ptr(), fused.flat_grad.numel() * fused.flat_grad.element_size()
    assert all(lo <= p.grad.data_ptr() < lo + n for p in fused.parameters())
    ref_norms = []
    for k, net in enumerate(nets):
        F.cross_entropy(net(x[:, k]), y[:, k]).backward()
        ref_norms.append(float(nn.utils.clip_grad_norm_(net.parameters(), 1e9)))
    torch.testing.assert_close(fused.grad_norms(), torch.tensor(ref_norms), rtol=1e-4, atol=1e-6)
    max_norm = float(np.median(ref_norms))  # binds for some networks, not for others
    norms = fused.clip_grad_norm_(max_norm)
    after = fused.grad_norms()
    for k in range(4):
        expect = min(ref_norms[k], max_norm)
        assert abs(float(after[k]) - expect) < 1e-3 * expect, (k, float(norms[k]), float(after[k]))
    # the networks' parameters (zero padding aside) are all in the fused one
    padded = sum(p.numel() for p in fused.parameters())
    assert padded >= sum(sum(p.numel() for p in n.parameters()) for n in nets)


def test_fused_training_gives_the_records_of_separate_trainings(task):
    """Same seeds, one at a time against fused 2 + 1: every record agrees (the epoch losses to
    float rounding: grouped and single convolutions sum in different orders)."""
    p = get_protocol("smoke").replace(name="smoke-fuse", epochs=2, drop_path=0.0, grad_clip=0.5,
                                      train_images=256)
    archs = NASNetSpace().sample_many(3, np.random.default_rng(3))
    seeds = [0, 1, 2]
    sep = train_concurrent(archs, task, p, seeds, "cpu", concurrency=1)
    fus = train_concurrent(archs, task, p, seeds, "cpu", concurrency=1, flags=SpeedFlags(fuse=2))
    for a, b in zip(sep, fus):
        assert a is not None and b is not None and a["status"] == b["status"] == "ok"
        assert b["flags"]["fuse"] == 2 and b["flags"]["fused_with"] in (2, 1)
        for k in ("params", "flops", "arch_hash", "seed", "epochs_done"):
            assert a[k] == b[k], k
        np.testing.assert_allclose(b["train_loss_curve"][0], a["train_loss_curve"][0], rtol=0, atol=2e-4)
        np.testing.assert_allclose(b["train_loss_curve"], a["train_loss_curve"], rtol=0, atol=3e-3)
        assert abs(b["val_acc"] - a["val_acc"]) <= 2 / 128 and abs(b["test_acc"] - a["test_acc"]) <= 2 / 128


def test_fused_training_with_drop_path_runs_and_is_seeded(task):
    p = get_protocol("smoke").replace(name="smoke-fuse-dp", train_images=128)
    assert p.drop_path > 0
    archs = NASNetSpace().sample_many(2, np.random.default_rng(8))
    r1 = train_concurrent(archs, task, p, [5, 6], "cpu", flags=SpeedFlags(fuse=2))
    r2 = train_concurrent(archs, task, p, [5, 6], "cpu", flags=SpeedFlags(fuse=2))
    assert [r["status"] for r in r1] == ["ok", "ok"]
    assert [r["train_loss_curve"] for r in r1] == [r["train_loss_curve"] for r in r2]


def test_fusion_rejects_what_it_cannot_fuse():
    nets = _nets(2)
    other = Network(nets[0].arch, NetConfig(num_cells=1, filters=16, num_classes=4, input_size=16))
    with pytest.raises(ValueError, match="different configurations"):
        FusedNetwork([nets[0], other])
    aux = NetConfig(num_cells=1, filters=8, num_classes=4, input_size=16, auxiliary=True)
    with pytest.raises(ValueError, match="auxiliary head"):
        FusedNetwork([Network(nets[0].arch, aux)])
    with pytest.raises(ValueError, match=r"shape \(B, 2, C, H, W\)"):
        FusedNetwork(nets)(torch.randn(2, 3, 3, 16, 16))
    with pytest.raises(ValueError, match="fuse must be"):
        SpeedFlags(fuse=0).resolve(torch.device("cpu"))


def test_train_command_fuses_and_stores_every_evaluation(tmp_path):
    from click.testing import CliRunner

    from nasbench_xfer.cli.main import cli
    from nasbench_xfer.store import Store
    store = tmp_path / "f.h5"
    args = ["train", str(store), "-d", "quickdraw", "--data", str(SHARED), "-p", "smoke", "--random", "3",
            "--num-classes", "4", "--device", "cpu", "--fuse", "2"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    with Store.open(store) as st:
        ev = st.evaluations("quickdraw")
    assert len(ev) == 3 and set(ev["status"]) == {"ok"}
    res = CliRunner().invoke(cli, args)  # resume: nothing left to train
    assert res.exit_code == 0 and json.loads(res.output.strip().splitlines()[-1])["skipped"] == 3, res.output
    res = CliRunner().invoke(cli, args[:-2] + ["--fuse", "0"])
    assert res.exit_code != 0 and "--fuse" in res.output


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fused_graph_step_matches_fused_eager_step_on_gpu(task):
    """The fused step captured as one CUDA graph against the same step eager (drop-path off:
    the device RNG's offsets differ between capture and eager runs)."""
    p = get_protocol("smoke").replace(name="smoke-gpu-fuse", epochs=2, batch_size=64, train_images=640,
                                      drop_path=0.0)
    archs = NASNetSpace().sample_many(3, np.random.default_rng(2))
    g = train_concurrent(archs, task, p, [0, 1, 2], "cuda", flags=SpeedFlags(graph_step=True, fuse=3))
    e = train_concurrent(archs, task, p, [0, 1, 2], "cuda", flags=SpeedFlags(graph_step=False, fuse=3))
    for a, b in zip(g, e):
        assert a["status"] == b["status"] == "ok" and a["flags"]["graph_step"] is True
        np.testing.assert_allclose(a["train_loss_curve"], b["train_loss_curve"], rtol=0.03)
