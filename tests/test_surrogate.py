"""Surrogate benchmarks: featurisation, fit + held-out validation on a real table, the noise
models, the cost model, the one-file round trip, errors, and the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from nasbench_xfer.cli.main import cli
from nasbench_xfer.importers import import_transnas
from nasbench_xfer.space import GraphSpace, NASNetSpace
from nasbench_xfer.space.nasnet import Block, NASNetArch, named_arch
from nasbench_xfer.store import Store
from nasbench_xfer.surrogate import FeatureMap, SurrogateBenchmark, SurrogateError, fit_surrogate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TRANSNAS_ZIP = SHARED / "transnas-bench-101-micro" / "naslib-zc-transbench101-micro.zip"
SMALL = {"members": 2, "n_estimators": 40}


@pytest.fixture(scope="module")
def transnas(tmp_path_factory):
    out = tmp_path_factory.mktemp("tn") / "tn.h5"
    import_transnas(out, TRANSNAS_ZIP, tasks=["jigsaw", "class_object"])
    return out


@pytest.fixture(scope="module")
def fitted(transnas):
    return fit_surrogate(transnas, ["jigsaw"], params=SMALL, holdout=0.2, seed=0)


@pytest.fixture(scope="module")
def noisy_store(tmp_path_factory):
    """NASNet-space store: metric = a known function of the operation counts + N(0, 0.02) per
    seed; 60 architectures with two seeds; training seconds from the number of sep convs."""
    space = NASNetSpace()
    rng = np.random.default_rng(0)
    archs = space.sample_many(300, rng)
    path = tmp_path_factory.mktemp("ns") / "ns.h5"
    rows = []
    for i, a in enumerate(archs):
        ops = [b.op_a for b in a.normal] + [b.op_b for b in a.normal]
        true = 0.5 + 0.03 * sum(o.startswith("sep_conv") for o in ops) - 0.02 * sum("pool" in o for o in ops)
        secs = 10.0 + 5.0 * sum(o.startswith("sep_conv") for o in ops)
        for seed in ((0, 1) if i < 60 else (0,)):
            rows.append(dict(arch=a, seed=seed, val_metric=true + rng.normal(0, 0.02), test_metric=np.nan,
                             train_seconds=secs, status="ok"))
    with Store.create(path, space) as st:
        st.add_task("toy", dataset="toy", num_classes=10)
        st.append("toy", rows)
    return path


def test_features_of_equivalent_specs_are_equal_and_counts_add_up():
    space = NASNetSpace()
    fm = FeatureMap(space)
    a = named_arch("xfernasnet")
    swapped = NASNetArch(tuple(Block(b.input_b, b.op_b, b.input_a, b.op_a) for b in a.normal), a.reduction)
    assert space.hash(swapped) == space.hash(a)
    X = fm([a, swapped, space.to_string(a)])
    assert X.shape == (3, fm.n_features) and np.array_equal(X[0], X[1]) and np.array_equal(X[0], X[2])
    assert X[0, :fm.n_onehot].sum() == space.seq_len == X[0, fm.n_onehot:].sum()
    assert len(fm.names) == fm.n_features
    bad = np.asarray([space.encode(a)])
    bad[0, 0] = space.vocab_size - 1  # an operation where an input id belongs
    with pytest.raises(ValueError, match="not valid at position 0"):
        fm.token_features(bad)
    with pytest.raises(ValueError, match=r"shape \(N, 40\)"):
        fm.token_features(np.zeros((2, 7), dtype=int))


def test_sparse_features_equal_the_dense_ones_and_answer_the_same():
    space = NASNetSpace()
    fmap = FeatureMap(space)
    rng = np.random.default_rng(3)
    tokens = np.asarray([space.encode(space.canonical(a)) for a in space.sample_many(300, rng)])
    dense = fmap.token_features(tokens)
    sparse = fmap.token_features(tokens, sparse=True)
    assert sparse.shape == dense.shape and np.array_equal(sparse.toarray(), dense)
    # every row stores its 40 one-hot entries and all count columns (zero counts included)
    assert sparse.nnz == len(tokens) * (40 + fmap.n_features - fmap.n_onehot)
    from nasbench_xfer.surrogate.models import LGBEnsemble
    y = dense[:, :40].sum(axis=1) + (dense[:, fmap.n_onehot:] == 0).sum(axis=1)  # absent tokens matter
    m = LGBEnsemble(members=2, n_estimators=20).fit(dense, y, seed=0)
    for a, b in zip(m.predict(dense), m.predict(sparse)):
        np.testing.assert_array_equal(a, b)


def test_lgb_quantile_target_stays_in_the_fitted_range_and_old_files_load_raw():
    """target="quantile" (default): answers mapped back through the fitted values' quantiles,
    so even a few extreme values cannot push an answer outside [min, max]; "raw" fits the metric;
    a model written before the option loads as raw; an unknown target is refused."""
    import json

    from nasbench_xfer.surrogate.models import LGBEnsemble
    rng = np.random.default_rng(0)
    X = rng.integers(0, 2, size=(400, 12)).astype(np.float32)
    y = X[:, :4].sum(axis=1) + 0.1 * rng.standard_normal(400)
    y[:6] = -40.0  # a few broken architectures, as jigsaw's near-0% accuracies
    q = LGBEnsemble(members=2, n_estimators=60).fit(X, y, seed=0)
    assert q.params["target"] == "quantile"
    grid = np.array([[a, b, c, d, *rng.integers(0, 2, 8)] for a in (0, 1) for b in (0, 1) for c in (0, 1)
                     for d in (0, 1)], dtype=np.float32)
    mean, spread = q.predict(grid)
    members = q.member_predictions(grid)
    assert members.shape == (2, 16) and np.allclose(members.mean(axis=0), mean)
    assert (members >= y.min()).all() and (members <= y.max()).all()
    from scipy.stats import spearmanr
    assert spearmanr(mean, grid[:, :4].sum(axis=1)).statistic > 0.9
    again = LGBEnsemble.from_bytes(q.to_bytes())
    np.testing.assert_array_equal(again.predict(grid)[0], mean)
    raw = LGBEnsemble(members=1, n_estimators=60, target="raw").fit(X, y, seed=0)
    legacy = json.loads(raw.to_bytes())
    del legacy["params"]["target"]  # as written before the option
    old = LGBEnsemble.from_bytes(json.dumps(legacy).encode())
    assert old.params["target"] == "raw"
    np.testing.assert_array_equal(old.predict(grid)[0], raw.predict(grid)[0])
    with pytest.raises(ValueError, match="lgb target must be one of quantile, raw, got 'rank'"):
        LGBEnsemble(target="rank")


def test_fit_validates_on_held_out_architectures_of_a_real_table(fitted, transnas):
    v = fitted.validation("jigsaw")
    assert v["held_out"] == v["n"] == 819 and v["fitted_on"] == 4096 - 819
    assert v["spearman"] > 0.6 and v["kendall"] > 0.45 and v["r2"] > 0.5   # measured 0.83 / 0.66 / 0.96
    with Store.open(transnas) as st:
        archs = st.archs(np.arange(0, 4096, 97))
        truth = st.lookup("jigsaw", archs)
    pred = fitted.predict("jigsaw", archs)
    from scipy.stats import spearmanr
    assert spearmanr(pred, truth)[0] > 0.6
    assert fitted.info()["provenance"]["num_evaluations"] == {"jigsaw": 4096}


def test_round_trip_and_noise(fitted, tmp_path):
    path = fitted.save(tmp_path / "s.surr")
    back = SurrogateBenchmark.load(path)
    space = back.space
    archs = space.sample_many(50, np.random.default_rng(1))
    np.testing.assert_array_equal(back.predict("jigsaw", archs), fitted.predict("jigsaw", archs))
    a = back.predict("jigsaw", archs, seed=3)
    assert np.array_equal(a, back.predict("jigsaw", archs, seed=3))
    assert not np.array_equal(a, back.predict("jigsaw", archs, seed=4))
    # an architecture's draw does not depend on the rest of the batch
    assert back.predict("jigsaw", [archs[1], archs[0], archs[0]], seed=3).tolist() == [a[1], a[0], a[0]]
    with pytest.raises(SurrogateError, match="seed must be a non-negative integer"):
        back.predict("jigsaw", archs, seed=-1)
    noise = back.info()["tasks"]["jigsaw"]["noise"]
    assert noise["kind"] == "ensemble"  # TransNAS has one seed
    # draws never leave the range of the evaluations it was fitted on (jigsaw accuracy, %)
    lo, hi = noise["bounds"]
    assert 0 < lo < hi <= 100 and hi == fitted.info()["tasks"]["jigsaw"]["noise"]["bounds"][1]
    many = np.concatenate([back.predict("jigsaw", archs, seed=k) for k in range(20)])
    assert lo <= many.min() and many.max() <= hi
    tokens = np.asarray([space.encode(space.canonical(x)) for x in archs])
    np.testing.assert_array_equal(back.predict("jigsaw", tokens=tokens), back.predict("jigsaw", archs))
    assert np.isnan(back.cost("jigsaw", archs)).all()  # the table has no training times
    with pytest.raises(SurrogateError, match="exists"):
        fitted.save(path)


FORK_PREDICT = """
import os, signal, sys
import numpy as np
from nasbench_xfer.surrogate import SurrogateBenchmark
sb = SurrogateBenchmark.load(sys.argv[1])
model = sb._tasks["jigsaw"]["model"]
assert model._model_strings is not None, "loading parsed the boosters"
archs = sb.space.sample_many(3000, np.random.default_rng(1))
sb.predict("jigsaw", archs)  # the parent predicts a large batch: LightGBM starts its thread pool
pid = os.fork()
if pid == 0:
    signal.alarm(60)  # a hang fails the test instead of blocking the suite
    sb.predict("jigsaw", archs)  # a model made before the fork
    SurrogateBenchmark.load(sys.argv[1]).predict("jigsaw", archs)  # and one loaded after it
    os._exit(0)
_, status = os.waitpid(pid, 0)
print("child", os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status))
"""


def test_a_loaded_surrogate_predicts_in_a_forked_worker(fitted, tmp_path):
    """compare/ablation workers are forked from a process that opened the surrogate: LightGBM's
    OpenMP pool, started in the parent, must not leave a worker's parallel predict hanging
    (it did with -j 2).  Loading defers parsing the boosters; a forked process predicts on
    one thread."""
    import subprocess
    import sys

    path = fitted.save(tmp_path / "f.surr")
    script = tmp_path / "fork.py"
    script.write_text(FORK_PREDICT)
    r = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "child 0" in r.stdout, (r.stdout, r.stderr)


def test_a_damaged_model_blob_or_meta_is_refused_before_parsing(fitted, tmp_path):
    """Every model blob and task meta carries a SHA-256: a flipped byte is a SurrogateError at
    load (LightGBM aborts the process on some damaged model strings)."""
    path = fitted.save(tmp_path / "d.surr")
    data = path.read_bytes()
    for marker in (b"Tree=1", b'"higher_is_better"'):
        at = data.index(marker) + 2
        bad = tmp_path / "bad.surr"
        bad.write_bytes(data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:])
        with pytest.raises(SurrogateError, match="is damaged: .*(do not|does not) match (their|its) checksum"):
            SurrogateBenchmark.load(bad)
    fitted.save(tmp_path / "ok.surr")  # the undamaged file loads
    SurrogateBenchmark.load(tmp_path / "ok.surr")


def test_noisy_draw_is_truncated_to_the_fitted_range():
    from nasbench_xfer.surrogate.benchmark import noisy_draw

    rng = np.random.default_rng(0)
    mean = np.array([0.5, 0.98, 1.2, 0.3])
    d = np.stack([noisy_draw(mean, np.array([0.01, 0.05, 0.05, 0.0]), (0.0, 1.0), rng) for _ in range(4000)])
    assert d.min() >= 0.0 and d.max() <= 1.0
    assert abs(d[:, 0].mean() - 0.5) < 0.001 and abs(d[:, 0].std() - 0.01) < 0.001  # far from bounds: N(mean, sigma)
    assert d[:, 1].max() <= 1.0 and (d[:, 1] > 0.98).mean() < 0.5 < (d[:, 1] < 1.0).mean()
    assert (d[:, 2] <= 1.0).all()                                     # a mean above the range is moved onto it
    assert (d[:, 3] == 0.3).all()                                     # no spread: the mean
    free = noisy_draw(np.array([0.98]), 0.05, None, np.random.default_rng(1))   # files without bounds
    assert free.shape == (1,)
    assert max(noisy_draw(np.full(1000, 0.98), 0.05, None, rng)) > 1.0


def test_seed_noise_and_cost_model_from_a_store_with_repeats(noisy_store):
    sb = fit_surrogate(noisy_store, params=SMALL, holdout=0.2, seed=0)
    info = sb.info()["tasks"]["toy"]
    assert info["noise"]["kind"] == "seeds" and info["noise"]["repeated_archs"] == 60
    assert 0.014 < info["noise"]["sigma"] < 0.026          # the true per-seed sigma is 0.02
    nc = info["validation"]["noise_ceiling"]
    assert nc["archs"] >= 5 and -1 <= nc["kendall_seed_vs_seed"] <= 1
    archs = NASNetSpace().sample_many(20, np.random.default_rng(5))
    secs = sb.cost("toy", archs)
    n_sep = np.asarray([sum(o.startswith("sep_conv") for b in a.normal for o in (b.op_a, b.op_b)) for a in archs])
    assert info["has_cost"] and np.corrcoef(secs, n_sep)[0, 1] > 0.8
    draws = sb.predict("toy", archs, seed=0) - sb.predict("toy", archs)
    assert 0.005 < draws.std() < 0.05


def test_errors(fitted, transnas, tmp_path):
    with pytest.raises(SurrogateError, match="task 'nope' is not in this surrogate"):
        fitted.predict("nope", fitted.space.sample_many(2, np.random.default_rng(0)))
    with pytest.raises(ValueError, match="unknown surrogate model 'xgb'"):
        fit_surrogate(transnas, ["jigsaw"], model="xgb")
    with pytest.raises(SurrogateError, match=r"tasks \['nope'\] are not in"):
        fit_surrogate(transnas, ["nope"])
    with pytest.raises(SurrogateError, match="not a surrogate benchmark"):
        SurrogateBenchmark.load(transnas)
    p = fitted.save(tmp_path / "v.surr")
    with h5py.File(p, "a") as f:
        f.attrs["version"] = 99
    with pytest.raises(SurrogateError, match="newer nasbench_xfer"):
        SurrogateBenchmark.load(p)
    with pytest.raises(SurrogateError, match="exactly one of archs and tokens"):
        fitted.predict("jigsaw")
    # an architecture of another space, and its token rows
    from nasbench_xfer.space import NASNetSpace
    nasnet = NASNetSpace().sample_many(1, np.random.default_rng(0))
    with pytest.raises(SurrogateError, match="transnas_micro: expected an EdgeCellArch, got NASNetArch"):
        fitted.predict("jigsaw", nasnet)
    with pytest.raises(SurrogateError, match=r"token rows of shape \(N, 6\) for space transnas_micro"):
        fitted.predict("jigsaw", tokens=np.zeros((2, 40), dtype=int))
    # a file cut in half (an interrupted copy)
    whole = fitted.save(tmp_path / "whole.surr")
    data = whole.read_bytes()
    (tmp_path / "half.surr").write_bytes(data[: len(data) // 2])
    with pytest.raises(SurrogateError, match="half.surr is not a surrogate benchmark .*truncated file"):
        SurrogateBenchmark.load(tmp_path / "half.surr")


def test_cli_fit_info_query(transnas, tmp_path):
    out = tmp_path / "c.surr"
    r = CliRunner().invoke(cli, ["surrogate", "fit", "-s", str(transnas), "-t", "class_object", "-o", str(out),
                                 "--param", "members=1", "--param", "n_estimators=30"])
    assert r.exit_code == 0, r.output
    assert "held-out spearman" in r.output and out.exists()
    r = CliRunner().invoke(cli, ["surrogate", "info", str(out)])
    assert r.exit_code == 0 and "class_object" in r.output and "kendall" in r.output, r.output
    assert "file format version 2, written by nasbench_xfer" in r.output and "ceiling" in r.output
    with Store.open(transnas) as st:
        spec = st.space.to_string(st.archs([5])[0])
    r = CliRunner().invoke(cli, ["surrogate", "query", str(out), "-t", "class_object", "-a", spec])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["arch"] == spec
    r = CliRunner().invoke(cli, ["surrogate", "query", str(out), "-t", "class_object", "-a", "bogus"])
    assert r.exit_code == 1 and "Error:" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(cli, ["surrogate", "fit", "-s", str(transnas), "-o", str(out), "--param", "oops"])
    assert r.exit_code != 0 and "KEY=VALUE" in r.output
    fit = ["surrogate", "fit", "-s", str(transnas), "-t", "class_object"]
    for args, message in (
            (["-o", str(transnas), "--overwrite"], "is the store itself"),
            (["--holdout", "0.999", "-o", str(tmp_path / "h.surr")], "leaves 4 of its 4096 evaluated architectures"),
            (["--param", "members=2.5", "-o", str(tmp_path / "h.surr")], "members must be a whole number >= 1"),
            (["--param", "learning_rate=-1", "-o", str(tmp_path / "h.surr")],
             "fitting 'lgb' with parameters {'learning_rate': -1} failed: LightGBMError"),
            (["-t", ",", "-o", str(tmp_path / "h.surr")], "--tasks ',' names no task")):
        r = CliRunner().invoke(cli, fit + args)
        assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output, (args, r.output)
    r = CliRunner().invoke(cli, ["surrogate", "query", str(out), "-t", "class_object", "-a", spec, "--seed", "-1"])
    assert r.exit_code == 1 and "seed must be a non-negative integer" in r.output
    with Store.open(transnas) as st:  # the store was not touched
        assert st.validate() == []


def test_surrogate_oracle_default_reference_is_the_whole_small_space(fitted):
    """The README's snippet: on TransNAS micro (4,096 architectures) the default reference is the
    whole space, not 10,000 samples (which cannot be drawn from it)."""
    from nasbench_xfer.surrogate.oracle import SurrogateOracle

    oracle = SurrogateOracle(fitted, "jigsaw", budget=100, seed=0)
    assert oracle.reference == "4096 architectures (the whole space)"
    assert len(oracle.scores()) == 4096


def test_surrogate_oracle_answers_any_architecture_reproducibly(fitted):
    from nasbench_xfer.oracle import BudgetExhausted, OracleError
    from nasbench_xfer.surrogate.oracle import SurrogateOracle
    space = fitted.space
    archs = space.sample_many(4, np.random.default_rng(11))
    o1 = SurrogateOracle(fitted, "jigsaw", budget=3, seed=5, reference_size=500)
    o2 = SurrogateOracle(fitted, "jigsaw", budget=3, seed=5, reference_size=500)
    s1 = [o1.evaluate(a) for a in archs[:3]]
    assert s1 == [o2.evaluate(a) for a in archs[:3]] and o1.evaluate(archs[0]) == s1[0]
    assert o1.used == 3 and not o1.restricted
    with pytest.raises(BudgetExhausted):
        o1.evaluate(archs[3])
    o3 = SurrogateOracle(fitted, "jigsaw", seed=6, reference_size=500)
    assert [o3.evaluate(a) for a in archs[:3]] != s1            # another search seed, other noise
    mean = SurrogateOracle(fitted, "jigsaw", noisy=False, reference_size=500, whole_space_up_to=0)
    np.testing.assert_allclose([mean.evaluate(a) for a in archs], fitted.predict("jigsaw", archs))
    assert mean.best_score() >= max(mean.scores()) - 1e-12 and "500 architectures" in mean.reference
    frame = o1.trajectory_frame()
    assert list(frame["step"]) == [1, 2, 3] and frame["best_score"].is_monotonic_increasing
    with pytest.raises(OracleError, match="not in the surrogate"):
        SurrogateOracle(fitted, "nope")


def test_large_token_batches_of_an_enumerable_space_use_the_whole_space_table(fitted):
    space = fitted.space
    rows = np.asarray([space.encode(a) for a in space.sample_many(3000, np.random.default_rng(2))])
    direct = fitted._task("jigsaw")["model"].predict(fitted.features.token_features(rows))[0]
    via_table = fitted.predict("jigsaw", tokens=rows)          # 3000 >= DENSE_MIN_BATCH: the table path
    np.testing.assert_allclose(via_table, direct, rtol=1e-12)
    assert "jigsaw" in fitted._dense and len(fitted._dense["jigsaw"][0]) == space.dense_size
    np.testing.assert_allclose(fitted.predict("jigsaw", tokens=rows[:5]), direct[:5], rtol=1e-12)
    with pytest.raises(SurrogateError, match="token ids must lie"):
        fitted.predict("jigsaw", tokens=np.full((3000, 6), 9))


def test_whole_space_table_of_a_space_with_equivalent_specs(tmp_path):
    """NAS-Bench-Graph's space has many raw specs per network: the table is indexed by the
    canonical form's dense index, so a batch of raw specs gets the answers of their canonical
    forms (what a query by architecture object gives), and canonical tokens the model's own."""
    space = GraphSpace()
    rng = np.random.default_rng(0)
    archs = space.sample_many(200, rng)
    path = tmp_path / "g.h5"
    with Store.create(path, space) as st:
        st.add_task("toy", dataset="toy", num_classes=2)
        st.append("toy", [dict(arch=a, seed=0, val_metric=float(rng.normal()), test_metric=np.nan, status="ok")
                          for a in archs])
    surr = fit_surrogate(path, ["toy"], params=SMALL, holdout=0.2, seed=0)
    raw = [space.sample(rng) for _ in range(surr.DENSE_MIN_BATCH + 10)]
    canon = np.asarray([space.encode(space.canonical(a)) for a in raw])
    direct = surr._task("toy")["model"].predict(surr.features.token_features(canon))[0]
    np.testing.assert_allclose(surr.predict("toy", tokens=canon), direct, rtol=1e-12)
    assert "toy" in surr._dense and len(surr._dense["toy"][0]) == space.dense_size
    raw_tokens = np.asarray([space.encode(a) for a in raw])
    assert (raw_tokens != canon).any()  # the batch does hold non-canonical specs
    np.testing.assert_allclose(surr.predict("toy", tokens=raw_tokens), surr.predict("toy", raw[:50]).tolist()
                               + direct[50:].tolist(), rtol=1e-12)


def test_compare_runs_on_a_surrogate_file_like_on_a_store(transnas, tmp_path):
    """`compare --store SURR`: the source knowledge comes from the surrogate's reference table,
    the target is answered anywhere in the space (noisy, seeded), the results resume and the
    summary, tests and plot are written as for a store."""
    from nasbench_xfer.evaluate.search import SearchSpec, compare, run_search
    from nasbench_xfer.surrogate.view import open_benchmark

    path = tmp_path / "two.surr.h5"
    fit_surrogate(transnas, ["jigsaw", "class_object"], params=SMALL, holdout=0.2, seed=0).save(path)
    with open_benchmark(path) as view:
        assert view.tasks == ["class_object", "jigsaw"] and view.num_archs == 4096   # the whole micro space
        assert "the whole space" in view.task_info("jigsaw")["surrogate"]["reference"]
        table = view.score_table("jigsaw")
        np.testing.assert_array_equal(table, view.score_table("jigsaw"))    # one fixed noisy draw
        assert view.task_info("jigsaw")["metric"] and view.fingerprint() == open_benchmark(path).fingerprint()
        with pytest.raises(SurrogateError, match="'nope' is not in the surrogate"):
            view.task_info("nope")
    spec = SearchSpec(store=str(path), target="jigsaw", sources=["class_object"],
                      optimizers=["random", "best-on-source", "best-on-source-oracle", "xfernas"], budget=6,
                      seeds=[0, 1], source_size=50,
                      options={"xfernas": {"epochs": 3, "min_steps": 20, "refit_every": 3, "n_screen": 200}})
    one = run_search(spec, "random", 0)
    assert len(one) == 6 and one["hash"].nunique() == 6
    assert run_search(spec, "random", 0)["val_metric"].tolist() == one["val_metric"].tolist()  # seeded draws
    assert run_search(spec, "random", 1)["hash"].tolist() != one["hash"].tolist()
    res = compare(spec, tmp_path / "cmp", jobs=1, progress=False)
    traj = res["trajectories"]
    assert set(traj["optimizer"]) == set(spec.optimizers) and np.isfinite(traj["regret"]).all()
    # regret scores the incumbent (best draw so far) by its mean, never by its draw: over the
    # whole space it is never negative, and it is the best mean minus the incumbent's mean
    with open_benchmark(path) as view:
        means = dict(zip(traj["hash"], view.surrogate.predict(
            "jigsaw", [view.space.from_string(t) for t in traj["spec"]])))
        best = view.surrogate.predict("jigsaw", view.space.distinct_archs()).max()
    for _, run in traj.groupby(["optimizer", "seed"]):
        run = run.sort_values("step")
        incumbent = run["hash"].to_numpy()[[int(np.argmax(run["score"].to_numpy()[:i + 1])) for i in range(len(run))]]
        np.testing.assert_allclose(run["regret"], best - np.array([means[h] for h in incumbent]), atol=1e-9)
    assert (traj["regret"] >= 0).all() and (traj["score"] != traj["mean_score"]).any()
    # run files written before the means were recorded get the same regret, derived on resume
    for f in (tmp_path / "cmp" / "runs").glob("*.csv"):
        pd.read_csv(f).drop(columns=["mean_metric", "mean_score", "incumbent_mean_score"]).to_csv(f, index=False)
    np.testing.assert_allclose(compare(spec, tmp_path / "cmp", jobs=1, progress=False)["trajectories"]["regret"],
                               traj["regret"])
    assert (tmp_path / "cmp" / "best_so_far.png").exists()
    # the surrogate file is the run's data identity: a changed file is refused on resume
    spec_json = json.loads((tmp_path / "cmp" / "spec.json").read_text())
    assert spec_json["data"] == open_benchmark(path).fingerprint()
    fit_surrogate(transnas, ["jigsaw", "class_object"], params=SMALL, holdout=0.2, seed=1).save(path, overwrite=True)
    from nasbench_xfer.optimizer import OptimizerError

    with pytest.raises(OptimizerError, match="holds runs on other data"):
        compare(spec, tmp_path / "cmp", jobs=1, progress=False)
    # the command line takes the surrogate file as --store
    res = CliRunner().invoke(cli, ["compare", "-s", str(path), "-t", "jigsaw", "-O", "random", "--budget", "3",
                                   "--seeds", "1", "-o", str(tmp_path / "cli"), "-j", "1"])
    assert res.exit_code == 0, res.output
    text = (tmp_path / "cli" / "summary.md").read_text()   # one seed: no "± nan"; noisy answers said
    assert "nan" not in text and "val@b is the best draw so far" in text
    res = CliRunner().invoke(cli, ["compare", "-s", str(path), "-t", "nope", "-O", "random", "--budget", "3",
                                   "-o", str(tmp_path / "cli2")])
    assert res.exit_code != 0 and "target task 'nope' is not in" in res.output
    # and so does the ablation (its held-out table is the surrogate's reference table)
    from nasbench_xfer.evaluate.ablation import AblationSpec, run_ablation

    abl = run_ablation(AblationSpec(store=str(path), target="jigsaw", sources=["class_object"], source_sizes=[0],
                                    target_sizes=[20, 60], splits=2, holdout=100, predictor="ridge"),
                       tmp_path / "abl.jsonl", progress=False)
    assert len(abl) == 4 and (abl[abl.target_size == 60]["spearman"] > 0.3).all()
    res = CliRunner().invoke(cli, ["ablation", "-s", str(path), "-t", "jigsaw", "--predictor", "ridge",
                                   "--source-sizes", "0", "--target-sizes", "20", "--splits", "2",
                                   "--holdout", "100", "-o", str(tmp_path / "abl-cli"), "-j", "1"])
    assert res.exit_code == 0, res.output


# ---------------------------------------------------------------- multi-task kinds
TINY_XFER = {"members": 2, "max_steps": 150, "device": "cpu"}


@pytest.fixture(scope="module")
def multitask(transnas):
    """The transfer predictor as a multi-task surrogate, fitted on 20% of two real tasks."""
    return fit_surrogate(transnas, ["jigsaw", "class_object"], model="xfer", params=TINY_XFER,
                         holdout=0.8, seed=0)


def test_xfer_kind_answers_every_task_from_one_model_and_round_trips(multitask, tmp_path):
    info = multitask.info()
    assert info["multitask"] and info["model"] == "xfer" and info["model_params"]["members"] == 2
    for task in ("jigsaw", "class_object"):
        v = multitask.validation(task)
        assert v["fitted_on"] == 819 and v["held_out"] == v["n"] == 4096 - 819
        assert v["spearman"] > 0.3      # a 150-step fit on 819 archs per task; measured about 0.6
    space = multitask.space
    archs = space.sample_many(40, np.random.default_rng(2))
    tokens = multitask.features.arch_tokens(archs)
    # one shared model: its members' mean in each task's units, spread = their std
    members = multitask.shared_model.member_predictions("jigsaw", tokens)
    assert members.shape == (2, 40)
    np.testing.assert_allclose(multitask.predict("jigsaw", archs), members.mean(axis=0))
    assert not np.allclose(multitask.predict("jigsaw", archs), multitask.predict("class_object", archs))
    path = multitask.save(tmp_path / "x.surr")
    with h5py.File(path) as f:
        assert int(f.attrs["version"]) == 2 and "model" in f and "model" not in f["tasks/jigsaw"]
    back = SurrogateBenchmark.load(path)
    np.testing.assert_array_equal(back.predict("jigsaw", archs), multitask.predict("jigsaw", archs))
    draw = back.predict("class_object", archs, seed=1)
    assert np.array_equal(draw, multitask.predict("class_object", archs, seed=1))
    assert not np.array_equal(draw, back.predict("class_object", archs))
    with pytest.raises(SurrogateError, match="task 'normal' is not in this surrogate"):
        back.predict("normal", archs)
    # the held-out architectures are recorded: the validation figures are recomputable from them
    held = back.held_out("class_object")
    np.testing.assert_array_equal(held, multitask.held_out("class_object"))
    assert len(held) == len(np.unique(held)) == 4096 - 819


def test_validation_figures_recompute_from_the_recorded_held_out_architectures(fitted, transnas):
    from nasbench_xfer.surrogate import validation_figures
    held = fitted.held_out("jigsaw")
    with Store.open(transnas) as st:
        archs = st.archs(held)
        truth = st.lookup("jigsaw", archs)
    again = validation_figures(truth, fitted.predict("jigsaw", archs))
    for k in ("n", "spearman", "kendall", "r2", "kendall_top10"):
        assert again[k] == pytest.approx(fitted.validation("jigsaw")[k]), k
    # a lower-is-better metric (error = -accuracy): the same figures, its best 10% the lowest
    err = validation_figures(-truth, -fitted.predict("jigsaw", archs), higher_is_better=False)
    assert err["kendall_top10"] == pytest.approx(again["kendall_top10"])
    assert err["spearman"] == pytest.approx(again["spearman"])


def test_xfer_kind_orients_a_lower_is_better_task(tmp_path):
    """A loss task and an accuracy task of the same architectures share the universal network:
    the loss is turned to higher-is-better for the fit and back for the answer."""
    space = NASNetSpace()
    rng = np.random.default_rng(0)
    archs = space.sample_many(120, rng)
    score = np.asarray([sum(b.op_a.startswith("sep_conv") for b in a.normal) for a in archs], dtype=float)
    path = tmp_path / "two.h5"
    with Store.create(path, space) as st:
        st.add_task("acc", dataset="toy", num_classes=10)
        st.add_task("loss", dataset="toy", num_classes=10, metric="loss", higher_is_better=False)
        st.append("acc", [dict(arch=a, seed=0, val_metric=0.5 + 0.05 * s, status="ok") for a, s in zip(archs, score)])
        st.append("loss", [dict(arch=a, seed=0, val_metric=2.0 - 0.1 * s, status="ok") for a, s in zip(archs, score)])
    sb = fit_surrogate(path, model="xfer", params={"members": 1, "max_steps": 400, "device": "cpu"},
                       holdout=0.25, seed=0)
    assert sb.shared_model.sign == {"acc": 1.0, "loss": -1.0}
    from scipy.stats import spearmanr
    test = space.sample_many(60, np.random.default_rng(9))
    s = np.asarray([sum(b.op_a.startswith("sep_conv") for b in a.normal) for a in test], dtype=float)
    acc, loss = sb.predict("acc", test), sb.predict("loss", test)
    assert spearmanr(acc, s)[0] > 0.2 and spearmanr(loss, s)[0] < -0.2   # measured 0.30 / -0.30
    assert spearmanr(acc, loss)[0] < -0.8       # one shared ranking, turned back for the loss
    assert 1.0 < np.median(sb.predict("loss", test)) < 2.0   # in the loss's own units


def test_ensemble_kind_averages_trees_and_transfer_networks(transnas, tmp_path):
    sb = fit_surrogate(transnas, ["jigsaw", "class_object"], model="ensemble",
                       params={"lgb": {"members": 2, "n_estimators": 30}, "xfer": {"members": 1, "max_steps": 100,
                                                                                   "device": "cpu"}},
                       holdout=0.9, seed=0)
    m = sb.shared_model
    archs = sb.space.sample_many(30, np.random.default_rng(4))
    tokens = sb.features.arch_tokens(archs)
    trees = m.trees["class_object"].member_predictions(sb.features.token_features(tokens))
    nets = m.xfer.member_predictions("class_object", tokens)
    np.testing.assert_allclose(sb.predict("class_object", archs), 0.5 * (trees.mean(0) + nets.mean(0)))
    _, spread = m.predict_task("class_object", tokens)
    np.testing.assert_allclose(spread, np.concatenate([trees, nets]).std(axis=0))
    back = SurrogateBenchmark.load(sb.save(tmp_path / "e.surr"))
    np.testing.assert_allclose(back.predict("class_object", archs), sb.predict("class_object", archs))
    assert back.info()["model"] == "ensemble" and back.validation("jigsaw")["fitted_on"] == 410


def test_multitask_kind_errors(transnas, fitted, tmp_path):
    with pytest.raises(ValueError, match="unknown ensemble parameters"):
        fit_surrogate(transnas, ["jigsaw"], model="ensemble", params={"members": 3})
    with pytest.raises(ValueError, match="ensemble parameter lgb must be a dict"):
        fit_surrogate(transnas, ["jigsaw"], model="ensemble", params={"lgb": 3})
    with pytest.raises(ValueError, match=r"unknown xfer parameters \['n_estimators'\]"):
        fit_surrogate(transnas, ["jigsaw"], model="xfer", params={"n_estimators": 3})
    r = CliRunner().invoke(cli, ["surrogate", "fit", "-s", str(transnas), "-t", "jigsaw", "-m", "ensemble",
                                 "--param", "lgb=4", "-o", str(tmp_path / "bad.surr")])
    assert r.exit_code == 1 and "must be a dict" in r.output and not (tmp_path / "bad.surr").exists()
    # a version-1 file (per-task kinds only, before multi-task kinds existed) still loads
    p = fitted.save(tmp_path / "v1.surr")
    with h5py.File(p, "a") as f:
        f.attrs["version"] = 1
    assert SurrogateBenchmark.load(p).tasks == ["jigsaw"]
    # a damaged multi-task model is reported as such
    sb = fit_surrogate(transnas, ["jigsaw"], model="xfer", params={"members": 1, "max_steps": 20, "device": "cpu"},
                       holdout=0.5, seed=0)
    p = sb.save(tmp_path / "broken.surr")
    with h5py.File(p, "a") as f:
        del f["model"]
        f.create_dataset("model", data=np.frombuffer(b"not a model", dtype=np.uint8))
    with pytest.raises(SurrogateError, match="is damaged"):
        SurrogateBenchmark.load(p)


def test_cli_fits_a_multitask_surrogate_and_compare_reads_it(transnas, tmp_path):
    out = tmp_path / "m.surr"
    r = CliRunner().invoke(cli, ["surrogate", "fit", "-s", str(transnas), "-m", "ensemble", "--holdout", "0.9",
                                 "--param", 'xfer={"members": 1, "max_steps": 30, "device": "cpu"}',
                                 "--param", 'lgb={"members": 1, "n_estimators": 20}', "-o", str(out)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["surrogate", "info", str(out), "--json"])
    info = json.loads(r.output)
    assert info["model"] == "ensemble" and info["multitask"] and sorted(info["tasks"]) == ["class_object", "jigsaw"]
    assert info["model_params"]["xfer"]["max_steps"] == 30
    # tapas screens 5,000 candidates: on a surrogate of the 4,096-architecture space that is the whole space
    r = CliRunner().invoke(cli, ["compare", "-s", str(out), "-t", "jigsaw", "-O", "random,tapas", "--budget", "5",
                                 "--seeds", "1", "--source-size", "10", "-o", str(tmp_path / "cmp")])
    assert r.exit_code == 0, r.output
    import pandas as pd
    assert sorted(pd.read_csv(tmp_path / "cmp" / "summary.csv")["optimizer"]) == ["random", "tapas"]


def test_candidate_pool_is_the_whole_space_where_the_space_is_smaller():
    space = GraphSpace()
    rng = np.random.default_rng(0)
    pool = space.candidate_pool(30_000, rng)
    assert len(pool) == len({space.hash(a) for a in pool}) == space.size == 26206
    most = space.candidate_pool(20_000, rng)      # drawn from the enumeration: distinct, no retries
    assert len(most) == len({space.hash(a) for a in most}) == 20_000
    few = space.candidate_pool(50, rng)
    assert len(few) == len({space.hash(a) for a in few}) == 50
