"""Transfer predictor (issue 4): ranking, transfer structure, reconstruction, proposal, I/O, errors.

One predictor is fitted once per module (module-scoped fixture, ~20 s on 2
cores) on 1,000 random NASNet architectures - 4 source tasks x 200 + 200
target - with SYNTHETIC scores: a sum of per-operation values shared by all
tasks plus a task-specific per-operation term, each task on its own scale.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from nasbench_xfer.predictor import NAOPredictor, PredictorConfig, Proposal, TransferPredictor
from nasbench_xfer.predictor.model import ResidualHeads
from nasbench_xfer.space import OPS, NASNetSpace, SearchSpace, SpaceError

SCALES = {0: (80.0, 1.5), 1: (0.7, 0.01), 2: (60.0, 3.0), 3: (0.5, 0.02), 4: (90.0, 1.0)}
TARGET = 4


def scores(space: NASNetSpace, archs: list, task: int) -> np.ndarray:
    shared = np.random.default_rng(7).normal(size=len(OPS))
    own = np.random.default_rng(100 + task).normal(size=len(OPS))
    tok = np.array([space.encode(a) for a in archs])[:, 1::2] - (space.num_blocks + 2)
    offset, scale = SCALES[task]
    return offset + scale * (shared[tok].sum(1) + 0.5 * own[tok].sum(1))


@pytest.fixture(scope="module")
def setup() -> dict[str, Any]:
    space = NASNetSpace()
    archs = space.sample_many(1300, np.random.default_rng(0))
    history: dict[str, Any] = {}
    for t in range(4):
        a = archs[200 * t:200 * (t + 1)]
        history[f"src{t}"] = (a, scores(space, a, t))
    target = archs[800:1000]
    history["target"] = (target, scores(space, target, TARGET))
    history["fresh"] = ([], np.array([]))  # a task with no evaluations yet
    pred = TransferPredictor(space, device="cpu").fit(history)
    return {"space": space, "pred": pred, "history": history, "fitted": archs[:1000],
            "held": archs[1000:], "target": target}


# ------------------------------------------------------------------ ranking
def test_ranks_heldout_target_architectures(setup):
    p, space, held = setup["pred"], setup["space"], setup["held"]
    rho = spearmanr(p.predict("target", held), scores(space, held, TARGET))[0]
    assert rho >= 0.9, rho
    rho_src = spearmanr(p.predict("src1", held), scores(space, held, 1))[0]
    assert rho_src >= 0.9, rho_src


def test_predictions_in_each_tasks_scale(setup):
    p, space, held = setup["pred"], setup["space"], setup["held"]
    for t, name in ((0, "src0"), (1, "src1"), (TARGET, "target")):
        y, yhat = scores(space, held, t), p.predict(name, held)
        assert yhat.dtype == np.float64 and yhat.shape == (len(held),)
        assert abs(yhat.mean() - y.mean()) < 0.3 * y.std()
        assert 0.5 < yhat.std() / y.std() < 1.5
    s = p.stats["src1"]
    y = setup["history"]["src1"][1]
    assert s.n == 200 and s.mean == pytest.approx(y.mean()) and s.std == pytest.approx(y.std())


def test_task_without_evaluations_is_the_universal_network(setup):
    p, held = setup["pred"], setup["held"]
    assert "fresh" in p.tasks and "fresh" not in p.residual_tasks and "fresh" not in p.stats
    np.testing.assert_array_equal(p.predict("fresh", held), p.predict_universal(held))
    # the universal network alone (no target data) still ranks the target reasonably:
    # all tasks share the per-operation values
    rho = spearmanr(p.predict_universal(held), scores(setup["space"], held, TARGET))[0]
    assert rho > 0.5, rho


def test_residual_moves_only_its_own_task(setup):
    p, held = setup["pred"], setup["held"][:50]
    before = {t: p.predict(t, held) for t in p.tasks}
    uni = p.predict_universal(held)
    q = copy.deepcopy(p)
    k = q.residual_tasks.index("src2")
    with torch.no_grad():
        q.net.residual.biases[-1][k] += 1.0
        q.net.residual.weights[0][k] *= 2.0
    after = {t: q.predict(t, held) for t in q.tasks}
    for t in p.tasks:
        if t == "src2":
            assert (after[t] != before[t]).all()
            assert np.abs(after[t] - before[t]).mean() > 0.1 * p.stats["src2"].std
        else:
            np.testing.assert_array_equal(after[t], before[t])
    np.testing.assert_array_equal(q.predict_universal(held), uni)


def test_batched_residual_heads_match_a_loop_over_tasks():
    torch.manual_seed(0)
    heads = ResidualHeads(5, 12, (7, 3))
    with torch.no_grad():
        for w in heads.weights:
            w.normal_()
    x = torch.randn(9, 12)
    out = heads(x)
    for t in range(5):
        h = x
        for i, (w, b) in enumerate(zip(heads.weights, heads.biases)):
            h = h @ w[t] + b[t]
            if i < len(heads.weights) - 1:
                h = torch.relu(h)
        torch.testing.assert_close(out[:, t], h.squeeze(-1))
    idx = torch.tensor([0, 4, -1, 2, 2, 1, 3, -1, 0])
    g = ResidualHeads.gather(out, idx)
    assert g[2] == 0 and g[7] == 0 and g[1] == out[1, 4]


# ------------------------------------------------------------ reconstruction
def test_decoder_reconstructs_heldout_architectures(setup):
    p, held = setup["pred"], setup["held"]
    acc = p.reconstruction_accuracy(held)
    assert acc >= 0.99, acc
    rec = p.reconstruct(held[:20])
    assert rec == held[:20]


# ------------------------------------------------------------------ propose
def test_propose_returns_new_valid_better_architectures(setup):
    p, space = setup["pred"], setup["space"]
    target, y = setup["history"]["target"]
    starts = [target[i] for i in np.argsort(-y)[:15]]
    exclude = setup["fitted"]
    props = p.propose("target", starts, n=10, exclude=exclude)
    assert 1 <= len(props) <= 10 and all(isinstance(q, Proposal) for q in props)
    excluded = {space.hash(a) for a in exclude}
    hashes = [space.hash(q.arch) for q in props]
    assert len(set(hashes)) == len(hashes)
    assert not excluded & set(hashes)
    for q in props:
        assert space.validate(q.arch) is q.arch
        assert space.hash(q.arch) != space.hash(q.start)
        assert q.score > q.start_score
        assert q.score == pytest.approx(p.predict("target", [q.arch])[0])
        assert q.start_score == pytest.approx(p.predict("target", [q.start])[0])
    assert [q.score for q in props] == sorted((q.score for q in props), reverse=True)
    # deterministic
    again = p.propose("target", starts, n=10, exclude=exclude)
    assert [space.hash(q.arch) for q in again] == hashes
    # on the synthetic function the moves mostly pay off for real
    gain = scores(space, [q.arch for q in props], TARGET) - scores(space, [q.start for q in props], TARGET)
    assert np.mean(gain > 0) >= 0.5


def test_propose_for_a_task_without_evaluations_uses_the_universal_network(setup):
    p, _space = setup["pred"], setup["space"]
    starts = setup["history"]["src0"][0][:10]
    props = p.propose("fresh", starts, step_sizes=[10.0], n=5, exclude=starts)
    assert props and all(q.score > q.start_score for q in props)
    assert props[0].score == pytest.approx(float(p.predict_universal([props[0].arch])[0]))
    assert p.propose("fresh", [], n=5) == []


# -------------------------------------------------------------- save / load
def test_save_load_round_trip(setup, tmp_path):
    p, held = setup["pred"], setup["held"][:100]
    path = tmp_path / "pred.pt"
    p.save(path)
    q = TransferPredictor.load(path)
    assert q.tasks == p.tasks and q.residual_tasks == p.residual_tasks and q.stats == p.stats
    assert q.config == p.config and q.space == p.space
    for t in p.tasks:
        np.testing.assert_array_equal(q.predict(t, held), p.predict(t, held))
    np.testing.assert_array_equal(q.predict_universal(held), p.predict_universal(held))
    starts = setup["target"][:5]
    assert [x.arch for x in q.propose("target", starts, n=3)] == \
        [x.arch for x in p.propose("target", starts, n=3)]


# ------------------------------------------------------------------- errors
def test_bad_input_gives_clear_errors(setup, tmp_path):
    p, space = setup["pred"], setup["space"]
    held = setup["held"][:3]
    fresh = TransferPredictor(space, device="cpu")
    with pytest.raises(ValueError, match="history is empty"):
        fresh.fit({})
    with pytest.raises(ValueError, match="no evaluations"):
        fresh.fit({"a": ([], [])})
    with pytest.raises(ValueError, match="must be a mapping"):
        fresh.fit([(held, [1, 2, 3])])
    with pytest.raises(ValueError, match=r"history\['a'\]: 3 architectures but 2 scores"):
        fresh.fit({"a": (held, [1.0, 2.0])})
    with pytest.raises(ValueError, match="NaN"):
        fresh.fit({"a": (held, [1.0, np.nan, 2.0])})
    with pytest.raises(ValueError, match=r"history\['a'\]: architecture 1 is not a valid nasnet"):
        fresh.fit({"a": ([held[0], "conv 3x3", held[2]], [1.0, 2.0, 3.0])})
    with pytest.raises(ValueError, match="not fitted"):
        fresh.predict("a", held)
    with pytest.raises(ValueError, match="unknown task 'cifar10'.*predict_universal"):
        p.predict("cifar10", held)
    with pytest.raises(ValueError, match="predict: architecture 0 is not a valid nasnet"):
        p.predict("target", [(1, 2, 3)])
    with pytest.raises(ValueError, match="step_sizes"):
        p.propose("target", held, step_sizes=[-1.0])
    with pytest.raises(ValueError, match="unknown task"):
        p.propose("nope", held)
    with pytest.raises(ValueError, match="alpha"):
        PredictorConfig(alpha=1.5)
    with pytest.raises(ValueError, match=r"encoder_dropout must be in \[0, 1\)"):
        PredictorConfig(encoder_dropout=1.0)
    with pytest.raises(ValueError, match="unknown fields"):
        TransferPredictor(space, hidden=3)
    bad = tmp_path / "bad.pt"
    torch.save({"something": 1}, bad)
    with pytest.raises(ValueError, match="not a saved nasbench_xfer predictor"):
        TransferPredictor.load(bad)
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))  # not a torch file at all
    with pytest.raises(ValueError, match=r"bad.pt is not a saved nasbench_xfer predictor \(TransferPredictor.save\)"
                       ) as exc:
        TransferPredictor.load(bad)
    assert "weights_only" not in str(exc.value)  # torch's advice to load it unsafely is not relayed
    with pytest.raises(ValueError, match=r"universal_hidden must be a list of layer sizes \(integers\)"):
        PredictorConfig(universal_hidden="x")
    with pytest.raises(ValueError, match=r"residual_hidden must be a list of layer sizes"):
        PredictorConfig(residual_hidden=[64, "x"])
    nao = NAOPredictor(space, device="cpu")
    with pytest.raises(ValueError, match="single task"):
        nao.fit({"a": (held, [1.0, 2.0, 3.0]), "b": (held, [1.0, 2.0, 3.0])})


# ---------------------------------------------------------------------- NAO
def test_nao_is_the_universal_network_trained_on_the_target_only(setup):
    space, history = setup["space"], setup["history"]
    target, y = history["target"]
    nao = NAOPredictor(space, device="cpu", epochs=1, min_steps=60)
    assert nao.config.transfer is False and not nao.transfer
    nao.fit(history, target="target")  # the source tasks are ignored
    assert nao.tasks == ["target"] and nao.residual_tasks == [] and nao.net.residual is None
    assert list(nao.stats) == ["target"] and nao.stats["target"].n == len(y)
    held = setup["held"][:20]
    z = nao.predict_universal(held)
    s = nao.stats["target"]
    np.testing.assert_allclose(nao.predict("target", held), s.mean + s.std * z)
    with pytest.raises(ValueError, match="unknown task 'src0'"):
        nao.predict("src0", held)
    # the same thing spelled as a flag
    same = TransferPredictor(space, device="cpu", epochs=1, min_steps=60, transfer=False)
    same.fit({"target": (target, y)})
    np.testing.assert_array_equal(same.predict("target", held), nao.predict("target", held))


# --------------------------------------------------------- generic spaces
class ToySpace(SearchSpace):
    """A 6-token space unlike NASNet: (input, op) pairs with per-position masks."""

    name = "toy"
    seq_len = 6
    vocab_size = 7

    def token_mask(self) -> np.ndarray:
        m = np.zeros((6, 7), dtype=bool)
        for i in range(3):
            m[2 * i, : i + 1] = True   # input of node i: 0..i
            m[2 * i + 1, 3:] = True    # op: tokens 3..6
        return m

    def validate(self, arch):
        if not (isinstance(arch, tuple) and len(arch) == 6):
            raise SpaceError(f"toy: expected a 6-tuple, got {arch!r}")
        if not self.token_mask()[np.arange(6), list(arch)].all():
            raise SpaceError(f"toy: invalid {arch!r}")
        return arch

    def encode(self, arch):
        return self.validate(arch)

    def _from_tokens(self, tokens):
        return tuple(tokens)

    def sample(self, rng):
        m = self.token_mask()
        return tuple(int(rng.choice(np.flatnonzero(m[i]))) for i in range(6))

    def canonical(self, arch):
        return arch

    def augment(self, arch, rng):
        self.augmented = getattr(self, "augmented", 0) + 1
        return arch

    def to_string(self, arch):
        return ",".join(map(str, arch))

    def from_string(self, text):
        return tuple(int(t) for t in text.split(","))


def toy_score(archs, task):
    w = np.random.default_rng(task).normal(size=7) * 0.3 + np.arange(7)
    return np.array([w[list(a)].sum() for a in archs])


def test_generic_space_fit_predict_propose_and_determinism():
    space = ToySpace()
    archs = space.sample_many(120, np.random.default_rng(0))
    hist = {"a": (archs[:60], toy_score(archs[:60], 0)), "b": (archs[60:100], 10 * toy_score(archs[60:100], 1))}
    kw = dict(device="cpu", epochs=1, min_steps=120, universal_hidden=(32,), residual_hidden=(16,))
    p1 = TransferPredictor(space, **kw).fit(hist, target="c")
    p2 = TransferPredictor(space, **kw).fit(hist, target="c")
    held = archs[100:]
    np.testing.assert_array_equal(p1.predict("b", held), p2.predict("b", held))
    assert p1.tasks == ["a", "b", "c"] and p1.residual_tasks == ["a", "b"]
    np.testing.assert_array_equal(p1.predict("c", held), p1.predict_universal(held))
    tok = p1.reconstruct_tokens(held)
    assert space.token_mask()[np.arange(6), tok].all()  # decoder respects the mask
    props = p1.propose("b", archs[60:100], n=5, exclude=archs)
    for q in props:
        space.encode(q.arch)
        assert q.arch not in archs and q.score > q.start_score
    p3 = TransferPredictor(space, augment=True, augment_copies=2, **kw).fit(hist)
    assert space.augmented == 2 * 100 and p3.fitted


# ------------------------------------------------ heads and warm starts (issue 11)
def test_paper_head_is_the_papers_model_and_calibrated_adds_scale_shift(setup):
    space = setup["space"]
    small = {"device": "cpu", "epochs": 1, "min_steps": 20}
    first = setup["target"][:10]
    hist = {"src0": setup["history"]["src0"], "target": (first, scores(space, first, TARGET))}
    paper = TransferPredictor(space, head="paper", residual_shrinkage=0.0, **small).fit(hist)
    names = {n for n, _ in paper.net.named_parameters()}
    assert not any(n.startswith("task_") for n in names)
    cal = TransferPredictor(space, **small).fit(hist)
    assert cal.config.head == "calibrated" and cal.config.residual_shrinkage > 0
    assert cal.net.task_scale.shape == (2,) and cal.net.task_shift.shape == (2,)
    # calibrated head: f_i = a_i * g_u + b_i + r_i (checked against its parts)
    held = setup["held"][:20]
    code = torch.from_numpy(cal.codes(held))
    k = cal.residual_tasks.index("target")
    with torch.no_grad():
        g = cal.net.universal(code)
        r = cal.net.residual(code)[:, k]
        want = cal.net.task_scale[k] * g + cal.net.task_shift[k] + r
    s = cal.stats["target"]
    np.testing.assert_allclose(cal.predict("target", held), s.mean + s.std * want.double().numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="head='paper' is the paper's model"):
        PredictorConfig(head="paper", residual_shrinkage=1.0)
    with pytest.raises(ValueError, match="head must be one of"):
        PredictorConfig(head="fancy")
    with pytest.raises(ValueError, match="residual_shrinkage"):
        PredictorConfig(residual_shrinkage=-1)


def test_residual_shrinkage_keeps_few_target_points_from_bending_the_prediction(setup):
    """With 5 target points, the shrunk residual stays much smaller than the unshrunk one."""
    space = setup["space"]
    few = setup["target"][:5]
    hist = {"src0": setup["history"]["src0"], "src1": setup["history"]["src1"],
            "target": (few, scores(space, few, TARGET))}
    opts = {"device": "cpu", "epochs": 5, "min_steps": 200, "seed": 3}
    held = setup["held"][:100]
    size = {}
    for k in (0.0, 50.0):
        m = TransferPredictor(space, residual_shrinkage=k, **opts).fit(hist)
        code = torch.from_numpy(m.codes(held))
        with torch.no_grad():
            size[k] = float(m.net.residual(code)[:, m.residual_tasks.index("target")].abs().mean())
    assert size[50.0] < 0.5 * size[0.0], size


def test_warm_start_continues_from_the_previous_weights(setup):
    space, history = setup["space"], setup["history"]
    src = {"src0": history["src0"], "src1": history["src1"]}
    first = TransferPredictor(space, device="cpu", epochs=5, min_steps=100).fit(src, target="target")
    assert "target" not in first.residual_tasks
    few = setup["target"][:10]
    hist = {**src, "target": (few, scores(space, few, TARGET))}
    held = setup["held"][:100]
    # zero warm steps are not allowed; one step keeps the copied weights nearly unchanged
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        TransferPredictor(space, device="cpu").fit(hist, init=first, steps=0)
    warm = TransferPredictor(space, device="cpu", lr=1e-6).fit(hist, init=first, steps=1)
    assert warm.residual_tasks == ["src0", "src1", "target"] and warm.train_steps == 1
    np.testing.assert_allclose(warm.predict_universal(held), first.predict_universal(held), atol=1e-2)
    s1 = first.stats["src1"].std
    np.testing.assert_allclose(warm.predict("src1", held), first.predict("src1", held), atol=1e-2 * s1)
    cold = TransferPredictor(space, device="cpu", lr=1e-6).fit(hist, steps=1)
    assert np.abs(cold.predict_universal(held) - first.predict_universal(held)).max() > 0.1
    with pytest.raises(ValueError, match="different network"):
        TransferPredictor(space, device="cpu", hidden_size=48).fit(hist, init=first, steps=1)
    with pytest.raises(ValueError, match="init must be a fitted"):
        TransferPredictor(space, device="cpu").fit(hist, init=TransferPredictor(space), steps=1)


def test_predictor_files_from_before_the_calibrated_head_load_as_the_paper_model(setup, tmp_path):
    space = setup["space"]
    m = TransferPredictor(space, head="paper", residual_shrinkage=0.0, device="cpu", epochs=1,
                          min_steps=10).fit({"src0": setup["history"]["src0"]})
    state = m.state()
    for k in ("head", "residual_shrinkage"):
        del state["config"][k]                     # as written by the previous version
    torch.save(state, tmp_path / "old.pt")
    q = TransferPredictor.load(tmp_path / "old.pt")
    assert q.config.head == "paper"
    np.testing.assert_array_equal(q.predict("src0", setup["held"][:10]), m.predict("src0", setup["held"][:10]))


# ------------------------------------------- the default, hedged predictor (issue 11)
def test_concordance_matrix_and_bootstrap_preference_known_values():
    from nasbench_xfer.evaluate.stats import bootstrap_preference, concordance_matrix

    y = np.array([1.0, 2.0, 3.0, 3.0])
    c = concordance_matrix(np.array([0.1, 0.2, 0.2, 0.0]), y)
    # pairs (0,1) right, (0,2) right, (0,3) wrong, (1,2) tied in pred -> 0.5, (1,3) wrong,
    # (2,3) tied in y -> not counted
    assert c[0, 1] == c[0, 2] == 1 and c[0, 3] == c[1, 3] == 0 and c[1, 2] == 0.5 and c[2, 3] == 0
    np.testing.assert_array_equal(c, c.T)
    perfect, reversed_ = concordance_matrix(y, y), concordance_matrix(-y, y)
    assert np.triu(perfect, 1).sum() == 5 and np.triu(reversed_, 1).sum() == 0
    assert bootstrap_preference(perfect, perfect, 200, 0) == 0.5
    assert bootstrap_preference(reversed_, perfect, 200, 0) > 0.95
    assert bootstrap_preference(perfect, reversed_, 200, 0) < 0.05
    with pytest.raises(ValueError, match="1-D of one length"):
        concordance_matrix(np.zeros(3), np.zeros(4))


def _hedged_case(sign: float, n_target: int):
    from nasbench_xfer.predictor.hedged import HedgedTransferPredictor

    space = ToySpace()
    archs = space.sample_many(380, np.random.default_rng(1))  # the space has 384
    truth = toy_score(archs, 0)
    # the sources evaluated the same 200 architectures (as benchmark tasks do), the target others
    hist = {"a": (archs[:200], sign * truth[:200]), "b": (archs[:200], sign * 3 * truth[:200] + 1),
            "t": (archs[200:200 + n_target], truth[200:200 + n_target])}
    kw = dict(device="cpu", epochs=1, min_steps=200, universal_hidden=(32,), residual_hidden=(16,))
    p = HedgedTransferPredictor(space, seed=3, **kw).fit(hist, target="t")
    return p, archs[300:], truth[300:], hist, kw


def test_hedged_predictor_keeps_the_sources_ranking_when_they_agree_with_the_target():
    p, held, _truth, hist, kw = _hedged_case(+1.0, 12)
    assert p.source_model is not None and p.target_model is not None
    assert p.evidence["source"] > p.evidence["target_cv"] and p.p_target_better < 0.5
    assert p.weight == 0.0
    # weight 0: exactly the zero-target model's ranking (the universal network), on the target's scale
    z = p.source_model.predict_universal(held)
    y = hist["t"][1]
    np.testing.assert_allclose(p.predict("t", held), y.mean() + y.std() * z)
    zero = TransferPredictor(ToySpace(), seed=3, **kw).fit({"a": hist["a"], "b": hist["b"]}, target="t")
    np.testing.assert_allclose(zero.predict("t", held), z)
    np.testing.assert_allclose(p.predict("a", held), zero.predict("a", held))


def test_hedged_predictor_follows_the_target_when_the_sources_mislead():
    p, held, truth, hist, kw = _hedged_case(-1.0, 100)
    assert p.p_target_better > 0.95, (p.p_target_better, p.evidence)
    # the sources count as a prior worth 50 target evaluations; 100 evaluations that reject them
    # retire it: e * 100 / (100 + 50 (1 - e)), nearly the whole weight
    e = 2 * p.p_target_better - 1
    assert p.weight == pytest.approx(e * 100 / (100 + 50 * (1 - e))) and p.weight > 0.9
    rho_src = spearmanr(p.source_model.predict_universal(held), truth)[0]
    assert rho_src < 0 and spearmanr(p.predict("t", held), truth)[0] > 0.3
    # the blend's parts: predict is (1 - w) u + w t mapped affinely to the target's scale
    u, t = p.blend_parts(held)
    np.testing.assert_allclose(u, p.source_model.predict_universal(held))
    blend = (1 - p.weight) * u + p.weight * t
    y = hist["t"][1]
    np.testing.assert_allclose(p.predict("t", held), y.mean() + y.std() * blend, rtol=1e-6, atol=1e-9)
    # the evidence's material: 5 folds over the 100 evaluations, the universal network's predictions
    oof = p.out_of_fold
    assert sorted(np.bincount(oof["fold"])) == [20] * 5 and oof["target_cv"].shape == (100,)
    np.testing.assert_allclose(oof["source"], p.source_model.predict_universal(hist["t"][0]))
    # no sources: the target model alone, which is the plain fit on the target's evaluations
    from nasbench_xfer.predictor.hedged import HedgedTransferPredictor

    alone = HedgedTransferPredictor(ToySpace(), seed=3, **kw).fit({"t": hist["t"]})
    plain = TransferPredictor(ToySpace(), seed=3, **kw).fit({"t": hist["t"]}, target="t")
    assert alone.weight == 1.0 and alone.source_model is None
    with pytest.raises(ValueError, match="only one member"):
        alone.blend_parts(held)
    np.testing.assert_allclose(alone.predict("t", held), plain.predict("t", held))


def test_blend_weight_known_values():
    """The hedge's rule: e * n / (n + k (1 - e r)), e = max(0, 2p - 1), r ramping from 0 at
    n = k / 2 to 1 at n = k; retire=False is the fixed prior e * n / (n + k)."""
    from nasbench_xfer.predictor.hedged import blend_weight

    assert blend_weight(0.5, 100, 50) == 0.0 and blend_weight(0.3, 100, 50) == 0.0   # no preference
    assert blend_weight(0.9, 0, 50) == 0.0
    # up to k / 2 = 25 evaluations both rules agree (the ablation's dip grid: 10 and 25)
    for n in (5, 10, 25):
        for p in (0.6, 0.8, 1.0):
            fixed = (2 * p - 1) * n / (n + 50)
            assert blend_weight(p, n, 50) == pytest.approx(fixed)
            assert blend_weight(p, n, 50, retire=False) == pytest.approx(fixed)
    # from k = 50 on, decisive evidence takes the whole weight; the fixed prior caps it at n / (n + k)
    assert blend_weight(1.0, 50, 50) == pytest.approx(1.0)
    assert blend_weight(1.0, 50, 50, retire=False) == pytest.approx(0.5)
    assert blend_weight(1.0, 150, 50, retire=False) == pytest.approx(0.75)
    # e = 0.5 at 100 evaluations: 0.5 * 100 / (100 + 25) = 0.4 (fixed: 0.5 * 100 / 150)
    assert blend_weight(0.75, 100, 50) == pytest.approx(0.4)
    assert blend_weight(0.75, 100, 50, retire=False) == pytest.approx(1 / 3)
    # halfway up the ramp (n = 37.5 -> r = 0.5): e = 1 gives 37.5 / (37.5 + 25)
    assert blend_weight(1.0, 37.5, 50) == pytest.approx(37.5 / 62.5)
    # the weight never falls as evidence or evaluations grow
    grid = [[blend_weight(p, n, 50) for n in range(1, 200)] for p in np.linspace(0.5, 1, 11)]
    assert np.all(np.diff(grid, axis=1) >= -1e-12) and np.all(np.diff(grid, axis=0) >= -1e-12)
    # no prior: the evidence alone
    assert blend_weight(0.8, 10, 0) == pytest.approx(0.6)


def test_hedged_predictor_errors_and_registry():
    from nasbench_xfer.predictor.base import PREDICTORS
    from nasbench_xfer.predictor.hedged import HedgedTransferPredictor

    space = ToySpace()
    assert PREDICTORS.get("xfernas") is HedgedTransferPredictor
    assert PREDICTORS.get("xfernas-joint") is TransferPredictor
    with pytest.raises(ValueError, match="folds must be an integer >= 2"):
        HedgedTransferPredictor(space, folds=1)
    with pytest.raises(ValueError, match="'transfer' is not an option"):
        HedgedTransferPredictor(space, transfer=False)
    with pytest.raises(ValueError, match="retire_prior must be true or false, got 'no'"):
        HedgedTransferPredictor(space, retire_prior="no")
    with pytest.raises(ValueError, match="PredictorConfig.epochs"):
        HedgedTransferPredictor(space, epochs=-1)
    p = HedgedTransferPredictor(space)
    with pytest.raises(RuntimeError, match="not fitted"):
        p.predict("t", [])
    with pytest.raises(ValueError, match="name the target task"):
        p.fit({"a": ([], []), "b": ([], [])})
    with pytest.raises(ValueError, match="no evaluations"):
        p.fit({"t": ([], [])}, target="t")


def test_encoder_dropout_acts_while_training_only():
    """NAO's encoder dropout (``encoder_dropout``): the codes differ between two passes in
    training mode and are deterministic in evaluation mode, where predictions are made; off by
    default, so the default model's codes are unchanged."""
    from nasbench_xfer.predictor.model import Codec

    space = NASNetSpace()
    tokens = torch.as_tensor(np.asarray([space.encode(a) for a in space.sample_many(4, np.random.default_rng(1))]))
    torch.manual_seed(0)
    codec = Codec(space.token_mask(), encoder_dropout=0.5)
    codec.train()
    assert not torch.equal(codec.encode(tokens)[1], codec.encode(tokens)[1])
    codec.eval()
    assert torch.equal(codec.encode(tokens)[1], codec.encode(tokens)[1])
    plain = Codec(space.token_mask())
    plain.train()
    assert torch.equal(plain.encode(tokens)[1], plain.encode(tokens)[1])
