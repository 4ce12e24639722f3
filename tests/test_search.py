"""Optimizer protocol, registry, tabular oracle, baselines and `compare` on a small synthetic store."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from nasbench_xfer.cli.main import cli
from nasbench_xfer.evaluate.search import SearchSpec, compare, regrets_at, run_search
from nasbench_xfer.optimizer import OptimizerError, get_optimizer_class, list_optimizers
from nasbench_xfer.oracle import BudgetExhausted, OutOfPoolError, TabularOracle
from nasbench_xfer.space import OPS, NASNetSpace
from nasbench_xfer.store import Store

OP_VALUE = np.linspace(-1, 1, len(OPS))


def score(arch, task_shift: float) -> float:
    v = sum(OP_VALUE[OPS.index(b.op_a)] + OP_VALUE[OPS.index(b.op_b)] for b in arch.normal)
    return float(v + task_shift * sum(b.input_a for b in arch.normal))


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("search") / "synthetic.h5"
    space = NASNetSpace()
    archs = space.sample_many(150, np.random.default_rng(0))
    with Store.create(path, space) as st:
        for task, shift, offset in (("target", 0.1, 0.0), ("near", 0.12, 0.05), ("far", -0.5, 3.0)):
            st.add_task(task, dataset=task)
            # "far" only holds part of the pool: the probe must be shared by all
            sub = archs if task != "far" else archs[::2]
            st.append(task, [dict(arch=a, val_metric=score(a, shift) + offset,
                                  test_metric=score(a, shift) + offset - 0.01,
                                  params=float(1e6 + 1000 * i)) for i, a in enumerate(sub)])
    return path


def spec(path, **kw) -> SearchSpec:
    base = dict(store=str(path), target="target", sources=["near", "far"], optimizers=["random"],
                budget=12, seeds=[0, 1], source_size=None)
    base.update(kw)
    return SearchSpec(**base)


def test_registry_lists_builtins_and_rejects_unknown():
    assert {"random", "best-on-source", "tapas", "nao", "xfernas"} <= set(list_optimizers())
    with pytest.raises(OptimizerError, match="unknown optimizer 'bogus'; known: .*random"):
        get_optimizer_class("bogus")
    with pytest.raises(OptimizerError, match="cannot load optimizer 'no.such.module:X'"):
        get_optimizer_class("no.such.module:X")


def test_tabular_oracle_budget_pool_and_trajectory(store_path):
    with Store.open(store_path) as st:
        oracle = TabularOracle(st, "target", budget=3)
        assert oracle.restricted and len(oracle.candidates) == 150
        a, b, c, d = oracle.candidates[:4]
        va = oracle.evaluate(a)
        assert oracle.evaluate(a) == va and oracle.used == 1  # a repeat costs nothing
        oracle.evaluate(b), oracle.evaluate(c)
        with pytest.raises(BudgetExhausted):
            oracle.evaluate(d)
        t = oracle.trajectory_frame()
        assert t["step"].tolist() == [1, 2, 3]
        assert (np.diff(t["best_val"]) >= 0).all()
        outsider = NASNetSpace().sample(np.random.default_rng(12345))
        with pytest.raises(OutOfPoolError, match="not among the 150 architectures evaluated on 'target'"):
            TabularOracle(st, "target").evaluate(outsider)


def test_random_search_is_reproducible_and_never_repeats(store_path):
    a = run_search(spec(store_path), "random", 0)
    b = run_search(spec(store_path), "random", 0)
    c = run_search(spec(store_path), "random", 1)
    assert a["hash"].tolist() == b["hash"].tolist()
    assert a["hash"].tolist() != c["hash"].tolist()
    assert a["hash"].nunique() == 12
    assert (a["regret"] >= 0).all() and a["top_fraction"].between(0, 1).all()


def test_best_on_source_picks_the_closest_probe_task(store_path):
    traj = run_search(spec(store_path), "best-on-source", 0)
    assert len(traj) == 12
    # "near" is close to the target, so its best architectures are evaluated and are good
    assert traj["top_fraction"].iloc[-1] <= 0.05


def test_probes_compare_tasks_by_rank_not_units(tmp_path):
    """A source in other units (x100, shifted) that orders like the target is chosen over one
    whose raw values happen to be close to the target's but whose order is reversed."""
    from nasbench_xfer.baselines.best_on_source import BestOnSource
    from nasbench_xfer.baselines.probe import choose_probes, rank_agreement
    from nasbench_xfer.optimizer import SearchContext, TaskData

    space = NASNetSpace()
    archs = space.sample_many(40, np.random.default_rng(5))
    base = np.array([score(a, 0.1) for a in archs])
    path = tmp_path / "units.h5"
    with Store.create(path, space) as st:
        for task, vals in (("target", base), ("percent", 100 * base + 50),
                           ("close_raw", -base + 0.01)):
            st.add_task(task, dataset=task)
            st.append(task, [dict(arch=a, val_metric=float(v)) for a, v in zip(archs, vals)])
    with Store.open(path) as st:
        probes, table = choose_probes(st, "target", ["percent", "close_raw"], k=6)
        assert len(probes) == 6 and set(table) == {"percent", "close_raw"}
        ids = st.arch_ids(probes)
        # evenly spread over the sources' consensus order, never two the same
        assert len(set(ids.tolist())) == 6
        with pytest.raises(ValueError, match="integer >= 2"):
            choose_probes(st, "target", ["percent"], k=1)
    by_hash = {space.hash(a): v for a, v in zip(archs, base)}
    target_scores = [float(by_hash[space.hash(p)]) for p in probes]
    agree = rank_agreement(target_scores, table)
    assert agree["percent"] == pytest.approx((1.0, 1.0))
    assert agree["close_raw"] == pytest.approx((-1.0, -1.0))
    with pytest.raises(ValueError, match="5 probe scores but the target has 6"):
        rank_agreement(target_scores, {"x": [1, 2, 3, 4, 5]})
    # and the optimizer, driven by hand: probes first, then the agreeing source's best
    srcs = {t: TaskData(list(archs), v) for t, v in (("percent", 100 * base + 50),
                                                       ("close_raw", -base + 0.01))}
    ctx = SearchContext(space=space, target="target", sources=srcs, budget=10,
                        rng=np.random.default_rng(0), candidates=archs, restricted=True,
                        probes=probes, probe_table=table)
    opt = BestOnSource(n_probes=6)
    opt.setup(ctx)
    first = opt.ask(10)
    assert [space.hash(a) for a in first] == [space.hash(a) for a in probes]
    opt.tell(first, target_scores)
    nxt = opt.ask(1)
    assert opt.chosen == "percent"
    best_new = max((a for a in archs if space.hash(a) not in {space.hash(p) for p in probes}),
                   key=lambda a: by_hash[space.hash(a)])
    assert space.hash(nxt[0]) == space.hash(best_new)
    with pytest.raises(OptimizerError, match="n_probes must be an integer >= 2"):
        BestOnSource(n_probes=1)


def test_best_on_source_oracle_uses_the_most_rank_correlated_source(store_path):
    from nasbench_xfer.baselines.probe import full_table_similarity

    with Store.open(store_path) as st:
        sim = full_table_similarity(st, "target", ["near", "far"])
    assert sim["near"] > 0.95 and sim["near"] > sim["far"]
    traj = run_search(spec(store_path), "best-on-source-oracle", 0)
    src = run_search(spec(store_path), "best-on-source", 0)
    # no probes: the oracle starts with "near"'s best, which the search reaches only after its probes
    assert traj["regret"].iloc[0] <= src["regret"].iloc[0]
    assert traj["top_fraction"].iloc[-1] <= 0.05
    assert "oracle" in get_optimizer_class("best-on-source-oracle").name


def test_tapas_uses_source_data_only_and_beats_random(store_path):
    tapas = run_search(spec(store_path), "tapas", 0)
    rand = run_search(spec(store_path), "random", 0)
    assert tapas["best_val"].iloc[-1] > rand["best_val"].iloc[-1]


def test_compare_writes_resumes_and_summarises(store_path, tmp_path):
    s = spec(store_path, optimizers=["random", "best-on-source", "tapas"])
    out = tmp_path / "cmp"
    res = compare(s, out, jobs=1, progress=False)
    assert (out / "trajectories.csv").exists() and (out / "best_so_far.png").exists()
    assert (out / "best_so_far.pdf").exists() and (out / "summary.md").exists()
    summary = res["summary"]
    assert set(summary["optimizer"]) == {"random", "best-on-source", "tapas"}
    assert {"val@10_mean", "test@12_std", "regret@12_mean", "evals_to_top5%_median"} <= set(summary.columns)
    # resume: delete one run, rerun; the others are not recomputed (their files stay untouched)
    kept = out / "runs" / "random__seed0.csv"
    mtime = kept.stat().st_mtime_ns
    (out / "runs" / "tapas__seed1.csv").unlink()
    res2 = compare(s, out, jobs=1, progress=False)
    assert kept.stat().st_mtime_ns == mtime
    timing = ["optimizer_seconds", "optimizer_seconds_cum", "sim_seconds"]  # measured: differ by run
    pd.testing.assert_frame_equal(res["trajectories"].drop(columns=timing), res2["trajectories"].drop(columns=timing))
    with pytest.raises(OptimizerError, match="holds results of another comparison"):
        compare(spec(store_path, budget=5), out, progress=False)
    # the summary's std is the sample std over seeds (ddof=1)
    at10 = regrets_at(res2["trajectories"], 10).groupby("optimizer")["regret"].std(ddof=1)
    row = res2["summary"].set_index("optimizer")["regret@10_std"]
    np.testing.assert_allclose(row[at10.index], at10)
    # replot: summaries and figures again from spec.json and the trajectories alone (no run file needed)
    import shutil
    shutil.rmtree(out / "runs")
    written = {f: (out / f).read_text() for f in ("summary.md", "summary.csv", "paired_tests.csv")}
    for f in ("best_so_far.png", "best_so_far.pdf", "regret_by_time.png", *written):
        (out / f).unlink()
    r = CliRunner().invoke(cli, ["replot", str(out)])
    assert r.exit_code == 0, r.output
    assert "best_so_far.png, regret_by_time.png" in r.output
    assert (out / "best_so_far.pdf").exists() and (out / "regret_by_time.png").exists()
    assert {f: (out / f).read_text() for f in written} == written
    pdf = (out / "best_so_far.pdf").read_bytes()          # no creation date: drawn again, the same file
    assert CliRunner().invoke(cli, ["replot", str(out)]).exit_code == 0
    assert (out / "best_so_far.pdf").read_bytes() == pdf
    assert not (out / "runs").exists()
    r = CliRunner().invoke(cli, ["replot", str(tmp_path)])
    assert r.exit_code == 1 and "is not a compare output folder: it has no spec.json" in r.output


@pytest.mark.parametrize("args, message", [
    (["-O", "random,nope"], "unknown optimizer 'nope'; known:"),
    (["-t", "cifar"], "target task 'cifar' is not in"),
    (["--sources", "near,mars"], "source task 'mars' is not in"),
    (["--budget", "1000"], "budget 1000 is larger than the 150 architectures"),
    (["-O", "random,random"], "optimizer(s) ['random'] listed twice"),
    (["-O", "xfernas,random,randomm"], "unknown optimizer 'randomm'"),
    (["--option", "randm.foo=1"], "option group 'randm' (--option randm.KEY=VALUE) names no optimizer of this run"),
    (["--option", "random.foo=1"], "optimizer 'random' does not take option(s) ['foo']"),
    (["-O", "xfernas", "--option", "xfernas.hedge=maybe"], "hedge must be true or false, got 'maybe'"),
    (["-O", "xfernas", "--option", "xfernas.refit_every=five"], "refit_every must be an integer >= 1, got 'five'"),
    (["-O", "nao", "--option", "nao.n_init=abc"], "n_init must be an integer >= 0, got 'abc'"),
    (["-O", "nasbench_xfer.baselines.tapas:TapasLike", "--option",
      "nasbench_xfer.baselines.tapas:TapasLike.n_probes=1"], "n_probes must be an integer >= 2, got 1"),
    (["-O", "nasbench_xfer.baselines.tapas:TapasLike", "--option", "tapas.n_probes=1"],
     "n_probes must be an integer >= 2, got 1"),
    (["--sources", ","], "--sources ',' names no task"),
    (["-O", "xfernas", "--option", "xfernas.step_sizes=[]"], "step_sizes must be a non-empty list of numbers > 0"),
    (["-O", "best-on-source", "--option", "best-on-source.source=mars"],
     "best-on-source: source 'mars' is not among the sources (far, near)"),
    (["--executor-option", "workers=abc"], "executor 'local' with options {'workers': 'abc'}"),
])
def test_compare_cli_bad_input(store_path, tmp_path, args, message):
    """Every bad input is found before any search runs: nothing is written."""
    base = ["compare", "-s", str(store_path), "-t", "target", "-O", "random", "--seeds", "1",
            "-o", str(tmp_path / "o"), "-j", "1"]
    # later options override earlier ones
    result = CliRunner().invoke(cli, base + args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()


def test_option_values_parse_as_json_or_python_words_and_groups_may_be_module_paths():
    from nasbench_xfer.cli.params import json_or_str, parse_key_values

    words = ("False", "true", "None", "3", "[1, 2]", "x")
    assert [json_or_str(v) for v in words] == [False, True, None, 3, [1, 2], "x"]
    assert parse_key_values(["xfernas.hedge=False", "a.b:C.n=2"], "--option", dotted=True) == {
        "xfernas": {"hedge": False}, "a.b:C": {"n": 2}}


def test_compare_output_folder_a_bad_option_left_is_usable(store_path, tmp_path):
    """A comparison refused for a bad option leaves nothing behind, and a folder whose spec.json
    has no runs yet takes a new specification; an output path under a file is a clean error."""
    base = ["compare", "-s", str(store_path), "-t", "target", "--seeds", "1", "--budget", "4", "-j", "1"]
    out = tmp_path / "o"
    out.mkdir()
    (out / "spec.json").write_text('{"store": "elsewhere.h5", "target": "x"}')  # no runs beside it
    r = CliRunner().invoke(cli, base + ["-O", "random", "-o", str(out)])
    assert r.exit_code == 0, r.output
    (tmp_path / "afile").write_text("x")
    r = CliRunner().invoke(cli, base + ["-O", "random", "-o", str(tmp_path / "afile" / "sub")])
    assert r.exit_code == 1 and "cannot create the output folder" in r.output and "Traceback" not in r.output
    # the positional STORE overrides a config file's store, as every command-line value does
    cfg = tmp_path / "c.json"
    cfg.write_text('{"store": "missing.h5", "target": "target", "optimizers": ["random"], "budget": 4, "seeds": 1}')
    r = CliRunner().invoke(cli, ["compare", str(store_path), "--config", str(cfg), "-o", str(tmp_path / "p"),
                                 "-j", "1"])
    assert r.exit_code == 0, r.output
    # a resume may run a subset of the optimizers, keeping the others' options (and names)
    sub = tmp_path / "sub"
    two = base + ["-O", "random,best-on-source", "--option", "best-on-source.n_probes=3", "-o", str(sub)]
    assert CliRunner().invoke(cli, two).exit_code == 0
    r = CliRunner().invoke(cli, [*base[:6], "2", *base[7:], "-O", "random", "--option", "best-on-source.n_probes=3",
                                 "-o", str(sub)])
    assert r.exit_code == 0, r.output
    import json as _json
    assert _json.loads((sub / "spec.json").read_text())["optimizers"] == ["random", "best-on-source"]
    # the same store spelled another way resumes
    import os
    rel = os.path.relpath(store_path)
    r = CliRunner().invoke(cli, ["compare", rel, "-t", "target", "--seeds", "1", "--budget", "4", "-j", "1",
                                 "-O", "random", "-o", str(out)])
    assert r.exit_code == 0, r.output


def test_compare_cli_runs(store_path, tmp_path):
    result = CliRunner().invoke(cli, ["compare", "-s", str(store_path), "-t", "target",
                                      "-O", "random,tapas", "--budget", "10", "--seeds", "2",
                                      "-o", str(tmp_path / "o"), "-j", "1"])
    assert result.exit_code == 0, result.output
    assert "| random |" in result.output and "| tapas |" in result.output


def searched(folder):
    """A comparison's summary without the optimizers' measured seconds (they differ run to run)."""
    return pd.read_csv(folder / "summary.csv").drop(columns=["optimizer_seconds_mean"])


def test_compare_config_file_round_trips_a_spec_and_the_command_line_overrides_it(store_path, tmp_path):
    import json

    first = tmp_path / "first"
    base = ["compare", "-s", str(store_path), "-t", "target", "-O", "random,best-on-source", "--budget", "6",
            "--seeds", "0-0", "--option", "best-on-source.n_probes=3", "-o", str(first), "-j", "1"]
    assert CliRunner().invoke(cli, base).exit_code == 0
    spec_file = first / "spec.json"
    written = json.loads(spec_file.read_text())
    assert written["seeds"] == [0] and written["options"] == {"best-on-source": {"n_probes": 3}}
    assert written["package_version"] and len(written["data"]) == 16
    # the spec as the config of a new run: the same searches, byte for byte
    again = tmp_path / "again"
    r = CliRunner().invoke(cli, ["compare", "--config", str(spec_file), "-o", str(again), "-j", "1"])
    assert r.exit_code == 0, r.output
    assert json.loads((again / "spec.json").read_text()) == written
    pd.testing.assert_frame_equal(searched(again), searched(first))
    # command-line values override the file's; TOML works too
    toml = tmp_path / "exp.toml"
    toml.write_text(f'store = "{store_path}"\ntarget = "target"\noptimizers = ["random"]\nbudget = 6\n'
                    f'seeds = [0, 1]\nsource-size = 50\n')
    r = CliRunner().invoke(cli, ["compare", "--config", str(toml), "--budget", "4", "-o", str(tmp_path / "t"),
                                 "-j", "1"])
    assert r.exit_code == 0, r.output
    got = json.loads((tmp_path / "t" / "spec.json").read_text())
    assert (got["budget"], got["seeds"], got["source_size"]) == (4, [0, 1], 50)
    # source_size null in a spec means all (--source-size 0), not the default 200
    allsrc = dict(got, source_size=None, data=None)
    (tmp_path / "all.json").write_text(json.dumps(allsrc))
    r = CliRunner().invoke(cli, ["compare", "--config", str(tmp_path / "all.json"), "-o", str(tmp_path / "all"),
                                 "-j", "1"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "all" / "spec.json").read_text())["source_size"] is None


@pytest.mark.parametrize("content, message", [
    ('{"store": "x", "budjet": 3}', "unknown key(s) budjet; this command's options are"),
    ('{"store": "x", "batch_size": 4}', "batch_size = 4, but this command can only run with 1"),
    ('[1, 2]', "expected a mapping of option names to values"),
    ('{"store": ', "not a valid config file (JSONDecodeError"),
    ('{"store": "x", "budget": 5.7}', "budget = 5.7: expected a whole number"),
    ('{"store": "x", "budget": true}', "budget = True: expected a whole number"),
    ('{"store": "x", "source_size": 20.9}', "source_size = 20.9: expected a whole number"),
])
def test_compare_config_file_errors_name_the_problem(tmp_path, content, message):
    f = tmp_path / "c.json"
    f.write_text(content)
    r = CliRunner().invoke(cli, ["compare", "--config", str(f)])
    assert r.exit_code != 0 and message in r.output, r.output


def test_compare_config_refuses_a_spec_written_for_other_data(store_path, tmp_path):
    import json

    first = tmp_path / "first"
    assert CliRunner().invoke(cli, ["compare", "-s", str(store_path), "-t", "target", "-O", "random",
                                    "--budget", "5", "--seeds", "1", "-o", str(first), "-j", "1"]).exit_code == 0
    spec = json.loads((first / "spec.json").read_text())
    spec["data"] = "0123456789abcdef"
    (tmp_path / "old.json").write_text(json.dumps(spec))
    r = CliRunner().invoke(cli, ["compare", "--config", str(tmp_path / "old.json"), "-o", str(tmp_path / "n")])
    assert r.exit_code != 0
    assert "the configuration was written for other data" in r.output and "0123456789abcdef" in r.output


def test_ablation_and_search_take_a_config_file(store_path, tmp_path):
    f = tmp_path / "abl.json"
    import json

    f.write_text(json.dumps({"store": str(store_path), "target": "target", "sources": ["near"],
                             "source-sizes": [0, 20], "target-sizes": [0, 10], "splits": 1, "holdout": 30,
                             "predictor": "nao", "option": {"epochs": 3}, "out": str(tmp_path / "abl")}))
    r = CliRunner().invoke(cli, ["ablation", "--config", str(f), "-j", "1"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "abl" / "table.csv").exists()
    bad = tmp_path / "search.json"
    bad.write_text('{"dataset": "cifar10", "epochz": 1}')
    r = CliRunner().invoke(cli, ["search", "--config", str(bad)])
    assert r.exit_code != 0 and "unknown key(s) epochz" in r.output


def test_every_command_takes_the_store_as_argument_or_option(store_path, tmp_path):
    for args in (["info", str(store_path)], ["info", "-s", str(store_path)],
                 ["query", str(store_path), "-t", "target", "--top", "2"],
                 ["query", "--store", str(store_path), "--task", "target", "--top", "2"],
                 ["transferability", str(store_path), "-o", str(tmp_path / "tr")]):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 0, (args, r.output)
    # compare: STORE positional and --task for the target, the same run as -s / -t
    a = CliRunner().invoke(cli, ["compare", str(store_path), "--task", "target", "-O", "random", "--budget", "5",
                                 "--seeds", "1", "-o", str(tmp_path / "a"), "-j", "1"])
    b = CliRunner().invoke(cli, ["compare", "-s", str(store_path), "-t", "target", "-O", "random", "--budget", "5",
                                 "--seeds", "1", "-o", str(tmp_path / "b"), "-j", "1"])
    assert a.exit_code == b.exit_code == 0, a.output + b.output
    pd.testing.assert_frame_equal(searched(tmp_path / "a"), searched(tmp_path / "b"))
    r = CliRunner().invoke(cli, ["info"])
    assert r.exit_code != 0 and "missing the store: give it as the first argument STORE or with -s/--store" in r.output
    r = CliRunner().invoke(cli, ["info", str(store_path), "-s", str(tmp_path / "other.h5")])
    assert r.exit_code != 0 and "two stores given" in r.output


def test_transferability_matrix_and_best_source(store_path, tmp_path):
    from nasbench_xfer.evaluate.transferability import best_sources, rank_correlations

    with Store.open(store_path) as st:
        corr = rank_correlations(st)
    pair = corr[(corr.task_a == "target") & (corr.task_b == "far")].iloc[0]
    assert pair["shared"] == 75
    best = best_sources(corr).set_index("task")
    assert best.loc["target", "best_source"] == "near"
    assert best.loc["target", "spearman"] > 0.95
    result = CliRunner().invoke(cli, ["transferability", "-s", str(store_path), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "best single source per task" in result.output
    assert (tmp_path / "transferability_spearman.png").exists()
    assert (tmp_path / "transferability_kendall.pdf").exists()


def test_xfernas_and_nao_search_through_the_same_loop(store_path):
    fast = {"epochs": 5, "min_steps": 40}
    s = spec(store_path, budget=8, options={"xfernas": {**fast, "refit_every": 4},
                                            "nao": {**fast, "refit_every": 4, "n_init": 4}})
    x = run_search(s, "xfernas", 0)
    n = run_search(s, "nao", 0)
    for traj in (x, n):
        assert len(traj) == 8 and traj["hash"].nunique() == 8
    # reproducible from the seed
    assert run_search(s, "xfernas", 0)["hash"].tolist() == x["hash"].tolist()
    with pytest.raises(OptimizerError, match="xfernas needs source tasks"):
        run_search(spec(store_path, sources=[], budget=3), "xfernas", 0)
    # where every evaluation came from is in the trajectory
    assert x["origin"].iloc[:4].eq("screen-sources").all()     # phase 1: the sources' consensus
    assert set(x["origin"].iloc[4:]) <= {"screen", "ascent", "random"}
    assert n["origin"].iloc[:4].eq("init").all()               # NAO starts at random
    assert set(n["origin"].iloc[4:]) <= {"screen", "ascent", "random"}


def test_nao_proposal_rule_and_cold_refits_stay_available(store_path):
    fast = {"epochs": 5, "min_steps": 40, "refit_every": 4}
    s = spec(store_path, budget=8, options={"xfernas": {**fast, "proposal": "ascent",
                                                        "warm_start": False}})
    x = run_search(s, "xfernas", 0)
    assert len(x) == 8 and x["hash"].nunique() == 8
    # NAO's rule: gradient ascent first, pool screening only to fill a sampled table's batch
    assert set(x["origin"]) <= {"ascent", "screen-sources", "screen", "random"}
    with pytest.raises(OptimizerError, match="proposal must be one of hybrid, ascent"):
        run_search(spec(store_path, options={"xfernas": {"proposal": "greedy"}}), "xfernas", 0)


def test_nao_one_step_rule_without_the_improvement_filter(store_path, monkeypatch):
    """``ascent_filter=False, ascent_steps=1``: every proposal is one step of gradient ascent and
    any new architecture is kept (NAO's published rule); the defaults filter and repeat steps."""
    from nasbench_xfer.predictor.transfer import TransferPredictor

    calls = []
    real = TransferPredictor.propose

    def spy(self, *args, **kwargs):
        calls.append((kwargs["max_steps"], kwargs["require_improvement"]))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(TransferPredictor, "propose", spy)
    fast = {"epochs": 5, "min_steps": 40, "refit_every": 4, "proposal": "ascent"}
    x = run_search(spec(store_path, budget=8, options={"xfernas": {**fast, "ascent_filter": False,
                                                                   "ascent_steps": 1}}), "xfernas", 0)
    assert len(x) == 8 and calls and set(calls) == {(1, False)}
    calls.clear()
    run_search(spec(store_path, budget=8, options={"xfernas": fast}), "xfernas", 0)
    assert set(calls) == {(10, True)}
    for bad, message in (({"ascent_steps": 0}, "ascent_steps must be an integer >= 1"),
                         ({"ascent_filter": "no"}, "ascent_filter must be true or false")):
        with pytest.raises(OptimizerError, match=message):
            run_search(spec(store_path, options={"xfernas": bad}), "xfernas", 0)


def test_rank_scores_fit_the_predictors_on_normal_scores(store_path):
    """``scores="rank"`` (XferNAS's default): every task's scores reach the predictor as normal scores (order kept,
    units gone); the search runs through the same loop and an unknown choice is named."""
    from scipy.stats import norm

    from nasbench_xfer.evaluate.stats import normal_scores

    z = normal_scores(np.array([3.0, -1.0, 10.0, 3.0]))
    assert z == pytest.approx(norm.ppf(np.array([2.0, 0.5, 3.5, 2.0]) / 4))   # ties share their rank
    assert normal_scores(np.array([])).shape == (0,)
    fast = {"epochs": 5, "min_steps": 40, "refit_every": 4}
    s = spec(store_path, budget=8, options={"xfernas": {**fast, "scores": "rank"}})
    seen = []
    from nasbench_xfer.predictor import TransferPredictor
    fit = TransferPredictor.fit

    def spy(self, history, *args, **kwargs):
        seen.append({t: np.asarray(v[1], dtype=float) for t, v in history.items()})
        return fit(self, history, *args, **kwargs)

    TransferPredictor.fit = spy
    try:
        x = run_search(s, "xfernas", 0)
    finally:
        TransferPredictor.fit = fit
    assert len(x) == 8 and x["hash"].nunique() == 8
    assert x["origin"].iloc[:4].eq("screen-sources").all()
    for hist in seen:
        for t, v in hist.items():
            assert normal_scores(v) == pytest.approx(v), t     # normal scores are their own
    assert any(len(h["target"]) == 4 for h in seen)      # the target's evaluations too
    from nasbench_xfer.optimizer import make_optimizer
    assert make_optimizer("xfernas").scores == "rank" and make_optimizer("nao").scores == "raw"  # NAO: the paper's
    with pytest.raises(OptimizerError, match="scores must be one of raw, rank"):
        run_search(spec(store_path, options={"xfernas": {"scores": "z"}}), "xfernas", 0)


def test_xfernas_first_proposals_are_the_sources_consensus(store_path):
    """Phase 1 ranks the whole pool with the universal network: with a source that orders
    like the target, the first evaluations are already near the top of the table."""
    fast = {"epochs": 20, "min_steps": 300, "refit_every": 5}
    s = spec(store_path, budget=5, sources=["near"], options={"xfernas": fast})
    x = run_search(s, "xfernas", 0)
    r = run_search(spec(store_path, budget=5, sources=["near"]), "random", 0)
    assert x["top_fraction"].iloc[-1] < r["top_fraction"].iloc[-1]
    assert x["top_fraction"].iloc[-1] <= 0.1


def test_lower_is_better_targets_are_minimised(tmp_path):
    space = NASNetSpace()
    archs = space.sample_many(60, np.random.default_rng(3))
    path = tmp_path / "loss.h5"
    with Store.create(path, space) as st:
        st.add_task("loss", dataset="d", metric="l2_loss", higher_is_better=False)
        st.add_task("acc", dataset="d")
        st.append("loss", [dict(arch=a, val_metric=-score(a, 0.1), test_metric=-score(a, 0.1))
                           for a in archs])
        st.append("acc", [dict(arch=a, val_metric=score(a, 0.1)) for a in archs])
    s = SearchSpec(store=str(path), target="loss", sources=["acc"], optimizers=["random"],
                   budget=60, seeds=[0], source_size=None)
    traj = run_search(s, "random", 0)
    assert (np.diff(traj["best_val"]) <= 0).all()       # the raw loss only goes down
    assert traj["best_val"].iloc[-1] == pytest.approx(min(-score(a, 0.1) for a in archs))
    assert traj["regret"].iloc[-1] == pytest.approx(0) and traj["top_fraction"].iloc[-1] == 0
    best = run_search(s, "best-on-source", 0)            # the source's best is the target's best
    assert best["regret"].iloc[0] == pytest.approx(0)    # ... and the first probe (consensus best)
    oracle = run_search(s, "best-on-source-oracle", 0)
    assert oracle["regret"].iloc[0] == pytest.approx(0)
    from nasbench_xfer.evaluate.transferability import rank_correlations
    with Store.open(path) as st:
        corr = rank_correlations(st)
    assert corr[(corr.task_a == "loss") & (corr.task_b == "acc")]["spearman"].iloc[0] == pytest.approx(1)


def test_compare_refuses_to_resume_on_changed_data_or_a_torn_spec(store_path, tmp_path):
    """Rerunning a comparison after the store's data changed (a re-import of other data at the
    same path) must not reuse the old runs; a torn spec.json is named, not a traceback."""
    import json
    import shutil

    path = tmp_path / "copy.h5"
    shutil.copy(store_path, path)
    s = spec(path, optimizers=["random"], seeds=[0], budget=5)
    out = tmp_path / "cmp"
    compare(s, out, progress=False)
    recorded = json.loads((out / "spec.json").read_text())["data"]
    assert len(recorded) == 16
    compare(s, out, progress=False)  # same data: resumes (nothing to do)
    with Store.open(path, "a") as st:  # one more evaluation of the target
        st.append("target", [dict(arch=NASNetSpace().sample(np.random.default_rng(99)), val_metric=0.0)])
    with pytest.raises(OptimizerError, match=r"holds runs on other data: the evaluations of target and its "
                                             r"sources in .* changed since \(fingerprint " + recorded):
        compare(s, out, progress=False)
    (out / "spec.json").write_text('{"store": "x", "tar')
    with pytest.raises(OptimizerError, match="spec.json is not valid JSON"):
        compare(s, out, progress=False)


def test_compare_runs_a_damaged_run_file_again(store_path, tmp_path, caplog):
    """A run file cut short, cut inside a row, emptied, garbled or another search's is not taken
    as a finished search: the rerun names it and runs that search again (the same architectures)."""
    import logging

    s = spec(store_path, optimizers=["random"], seeds=[0, 1], budget=5)
    out = tmp_path / "cmp"
    compare(s, out, progress=False)
    run0, run1 = out / "runs" / "random__seed0.csv", out / "runs" / "random__seed1.csv"
    good = run0.read_text()
    archs = pd.read_csv(run0)["hash"].tolist()
    lines = good.splitlines(keepends=True)
    damage = {"cut": ("".join(lines[:3]), "2 of its 5 evaluations"),
              "mid-row": (good[: good.rindex(",random,") + 8], "its last row is cut short"),
              "mid-spec": (good[: len(good) - len(lines[-1]) // 2], "its last row is cut short"),
              "empty": ("", "empty"),
              "blank line": ("\n", "unreadable (EmptyDataError"),
              "garbage": ("x,y\n1,2\n", "no column(s) hash, optimizer, seed, step, val_metric"),
              "other seed": (run1.read_text(), "holds another search than random seed 0")}
    for what, (text, problem) in damage.items():
        run0.write_text(text)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="nasbench_xfer"):
            res = compare(s, out, progress=False)
        assert f"random__seed0.csv is damaged ({problem}" in caplog.text, what
        assert "running random seed 0 again" in caplog.text
        assert pd.read_csv(run0)["hash"].tolist() == archs, what  # the same search again
        assert len(res["trajectories"]) == 10
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nasbench_xfer"):
        compare(s, out, progress=False)  # intact: nothing run again
    assert "damaged" not in caplog.text
    # valid files that must not be taken for damaged ones: a last row with an empty field (no
    # test metric), and the runs of an optimizer given as module:Class (labelled by its name)
    from nasbench_xfer.evaluate.search import run_file_problem

    frame = pd.read_csv(run0)
    frame.loc[frame.index[-1], ["test_metric", "test_at_best"]] = np.nan
    frame.to_csv(run0, index=False)
    assert run_file_problem(run0, "random", 0, 5) is None
    mc = spec(store_path, optimizers=["nasbench_xfer.baselines.random_search:RandomSearch"], seeds=[0], budget=5)
    compare(mc, tmp_path / "mc", progress=False)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nasbench_xfer"):
        compare(mc, tmp_path / "mc", progress=False)
    assert "damaged" not in caplog.text


def test_replot_and_aggregate_name_a_damaged_trajectories_file(store_path, tmp_path):
    s = spec(store_path, optimizers=["random"], seeds=[0], budget=5)
    out = tmp_path / "cmp"
    compare(s, out, progress=False)
    (out / "trajectories.parquet").unlink()
    good = (out / "trajectories.csv").read_text()
    for text, message in ((good + "garbage,,,\n", "column 'seed' has a value that is not a number (first in "
                                                   "data row 6): the file is damaged"),
                          ("", "trajectories.csv cannot be read, damaged? (EmptyDataError")):
        (out / "trajectories.csv").write_text(text)
        for args in (["replot", str(out)], ["aggregate", str(out), "--focus", "random", "-o", str(tmp_path / "g")]):
            r = CliRunner().invoke(cli, args)
            assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output, (args, r.output)


@pytest.mark.parametrize("size", [-1, 0])
def test_compare_rejects_a_non_positive_source_size(store_path, tmp_path, size):
    with pytest.raises(OptimizerError, match=f"source size must be a positive number .* got {size}"):
        compare(spec(store_path, source_size=size), tmp_path / "o", progress=False)
    result = CliRunner().invoke(cli, ["compare", "-s", str(store_path), "-t", "target", "-O", "random",
                                      "--seeds", "1", "--source-size", "-1", "-o", str(tmp_path / "c")])
    assert result.exit_code != 0 and "source size must be a positive number" in result.output


def test_hedge_concordance_and_ranks_known_values():
    from nasbench_xfer.xfernas import _concordant, _unit_ranks

    y = np.array([1.0, 2.0, 3.0, 3.0])
    assert _concordant(np.array([1.0, 2.0, 3.0, 4.0]), y) == 5      # the tied pair of y is skipped
    assert _concordant(np.array([4.0, 3.0, 2.0, 1.0]), y) == 0
    assert _concordant(np.array([1.0, 1.0, 3.0, 0.0]), y) == 2.5    # a tie in the prediction: a half
    np.testing.assert_allclose(_unit_ranks(np.array([5.0, -1.0, 2.0])), [1.0, 0.0, 0.5])


@pytest.fixture(scope="module")
def misleading_store(tmp_path_factory):
    """A target, a source that orders architectures exactly like it, and one that orders them in reverse."""
    path = tmp_path_factory.mktemp("hedge") / "hedge.h5"
    space = NASNetSpace()
    archs = space.sample_many(120, np.random.default_rng(1))
    with Store.create(path, space) as st:
        for task, sign in (("target", 1.0), ("same", 1.0), ("reverse", -1.0)):
            st.add_task(task, dataset=task)
            st.append(task, [dict(arch=a, val_metric=sign * score(a, 0.1)) for a in archs])
    return path


def test_hedge_follows_the_target_only_model_when_the_sources_mislead(misleading_store):
    """Out-of-sample pair orderings decide the weight of the target-only model: near 0 with a
    source that orders like the target, high with one that orders in reverse."""
    import nasbench_xfer.evaluate.search as search_mod
    from nasbench_xfer.optimizer import make_optimizer

    made = []

    def capture(name, **kw):
        made.append(make_optimizer(name, **kw))
        return made[-1]

    fast = {"epochs": 10, "min_steps": 80, "refit_every": 4}
    weights = {}
    for source in ("same", "reverse"):
        s = SearchSpec(store=str(misleading_store), target="target", sources=[source], optimizers=["xfernas"],
                       budget=24, seeds=[0], source_size=None, options={"xfernas": fast})
        orig = search_mod.make_optimizer
        search_mod.make_optimizer = capture
        try:
            traj = run_search(s, "xfernas", 0)
        finally:
            search_mod.make_optimizer = orig
        log = made[-1].hedge_log
        # no weight before two batches were predicted out of sample; one entry per phase-2 refit
        assert [n for n, _, _ in log] == [4, 8, 12, 16, 20] and log[0][1] == log[1][1] == 0.0
        weights[source] = log[-1][1]
        if weights[source] > 0:
            assert "screen-hedged" in set(traj["origin"])
    assert weights["same"] < 0.5 < weights["reverse"]
    # hedge=False is the unhedged search: no target-only model
    s = SearchSpec(store=str(misleading_store), target="target", sources=["reverse"], optimizers=["xfernas"],
                   budget=12, seeds=[0], source_size=None, options={"xfernas": {**fast, "hedge": False}})
    assert "screen-hedged" not in set(run_search(s, "xfernas", 0)["origin"])


def test_heatmap_order_puts_related_tasks_together():
    from nasbench_xfer.evaluate.transferability import cluster_order

    # two blocks {a, c} and {b, d}, interleaved in the input order
    names = ["a", "b", "c", "d"]
    group = {"a": 0, "c": 0, "b": 1, "d": 1}
    mat = pd.DataFrame([[1.0 if x == y else (0.9 if group[x] == group[y] else 0.1) for y in names] for x in names],
                       index=names, columns=names)
    order = cluster_order(mat)
    assert sorted(order) == names
    pos = {t: i for i, t in enumerate(order)}
    assert abs(pos["a"] - pos["c"]) == 1 and abs(pos["b"] - pos["d"]) == 1
    assert cluster_order(mat.loc[["a", "b"], ["a", "b"]]) == ["a", "b"]


def test_compare_progress_counts_evaluations(store_path, tmp_path, capsys):
    """The progress bar counts evaluations (budget per finished search), not whole runs."""
    from nasbench_xfer import logs

    logs.configure(0)
    compare(spec(store_path, optimizers=["random"], budget=5, seeds=[0, 1]), tmp_path / "p", jobs=1, progress=True)
    err = capsys.readouterr().err
    assert "evaluations" in err and "10/10" in err and "eval" in err, err[-500:]


def test_compare_records_time_and_plots_regret_by_time(store_path, tmp_path):
    """Comparisons by time: each evaluation's training seconds come from the table (this one records
    them for the target), the optimizer's own seconds are measured, and their running sums give the
    simulated time of the regret-by-time plot; a table without training times says so."""
    import numpy as np

    from nasbench_xfer.evaluate.search import add_times
    from nasbench_xfer.store import Store

    with Store.open(store_path) as st:
        secs = st.metric_table("target", "train_seconds")
    res = compare(spec(store_path, optimizers=["random", "tapas"]), tmp_path / "t", jobs=1, progress=False)
    traj = res["trajectories"]
    if np.isnan(secs).all():
        assert set(traj["time_basis"]) == {"optimizer only"}
        assert np.allclose(traj["sim_seconds"], traj["optimizer_seconds_cum"])
    else:
        assert set(traj["time_basis"]) == {"training + optimizer"}
        np.testing.assert_allclose(traj["train_seconds"], secs[traj["arch_id"].to_numpy()])
    assert (traj["optimizer_seconds"] >= 0).all() and traj["sim_seconds"].notna().all()
    for _, g in traj.groupby(["optimizer", "seed"]):
        assert g["sim_seconds"].is_monotonic_increasing
        np.testing.assert_allclose(g["sim_seconds"].iloc[-1], g["optimizer_seconds"].sum()
                                   + np.nan_to_num(g["train_seconds"]).sum())
    assert (tmp_path / "t" / "regret_by_time.png").exists()
    assert "optimizer s/search" in (tmp_path / "t" / "summary.md").read_text()
    # run files written before time was recorded: NaN, no time basis, no plot data
    old = add_times(traj.drop(columns=["train_seconds", "optimizer_seconds", "sim_seconds", "time_basis",
                                       "train_seconds_cum", "optimizer_seconds_cum"]))
    assert old["sim_seconds"].isna().all() and set(old["time_basis"]) == {""}
    # a table that records training seconds: they are the evaluations' cost
    timed = traj.assign(train_seconds=2.0)
    t = add_times(timed)
    assert set(t["time_basis"]) == {"training + optimizer"}
    one = t[(t["optimizer"] == "random") & (t["seed"] == 0)]
    np.testing.assert_allclose(one["sim_seconds"], 2.0 * one["step"] + one["optimizer_seconds"].cumsum())


def test_tabular_oracle_counts_a_budget_in_epochs(tmp_path):
    """Multi-fidelity queries: the curve's value after k epochs, each architecture charged only the
    epochs beyond those already paid for it, a budget in epochs that refuses to be overspent, and
    clear errors for an epoch the curves lack or a table without curves."""
    import numpy as np

    from nasbench_xfer.oracle import BudgetExhausted, OracleError, TabularOracle
    from nasbench_xfer.space import NASNetSpace
    from nasbench_xfer.store import Store

    space = NASNetSpace()
    archs = space.sample_many(3, np.random.default_rng(0))
    path = tmp_path / "curves.h5"
    with Store.create(path, space) as st:
        st.add_task("t", dataset="t", num_classes=10)
        st.add_task("flat", dataset="f", num_classes=10)
        st.append("t", [dict(arch=a, seed=s, val_metric=0.5 + i / 10, curve=[0.1 * (i + 1) + s / 100, 0.2 * (i + 1),
                                                                            0.5 + i / 10])
                        for i, a in enumerate(archs) for s in (0, 2)])
        st.append("flat", [dict(arch=a, val_metric=0.5) for a in archs])
    with Store.open(path) as st:
        o = TabularOracle(st, "t", epoch_budget=6)
        assert o.max_epochs() == 3
        assert o.evaluate_at(archs[1], 1) == pytest.approx((0.2 + 0.22) / 2)  # mean over the two seeds
        assert o.evaluate_at(archs[1], 3) == pytest.approx(0.6) and o.epochs_used == 3  # 2 more epochs
        assert o.evaluate_at(archs[1], 2) == pytest.approx(0.4) and o.epochs_used == 3  # already paid
        o.evaluate_at(archs[0], 2)
        with pytest.raises(BudgetExhausted, match="2 more epochs asked with 1 of the budget of 6"):
            o.evaluate_at(archs[2], 2)
        assert o.epochs_used == 5 and [q["epochs_cost"] for q in o.fidelity_trajectory] == [1, 2, 0, 2]
        with pytest.raises(OracleError, match="epoch must be an integer from 1 to 3"):
            o.evaluate_at(archs[0], 4)
        with pytest.raises(OracleError, match="stores no learning curves"):
            TabularOracle(st, "flat").evaluate_at(archs[0], 1)
        with pytest.raises(OracleError, match="epoch_budget must be a positive"):
            TabularOracle(st, "t", epoch_budget=0)


def test_regret_plots_draw_the_mean_over_seeds_with_a_standard_error_band(monkeypatch, tmp_path):
    """The regret figures (seaborn): per optimizer a step line at the mean regret over seeds
    (a finished search keeps its last regret), a band of one standard error of the mean, the
    reference line dashed, n= in the legend; the time variant reads every search off one grid."""
    import numpy as np

    from nasbench_xfer.evaluate import search as S

    rows = []
    for opt, base in (("random", 4.0), ("best-on-source-oracle", 1.0)):
        for seed in range(3):
            steps = 4 if (opt, seed) != ("random", 2) else 3  # one search ended after 3
            for step in range(1, steps + 1):
                rows.append({"optimizer": opt, "seed": seed, "step": step,
                             "regret": max(base - step - 0.5 * seed, 0.0),
                             "sim_seconds": 10.0 * step, "time_basis": "optimizer only"})
    traj = pd.DataFrame(rows)
    figs = []
    monkeypatch.setattr(S, "save_figure", lambda fig, stem: figs.append(fig))
    S.plot_best_so_far(traj, tmp_path / "b", title="t", metric="accuracy (%)")
    ax = figs[0].axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["random (n=3)", "best-on-source-oracle (n=3)"]
    drawn = [ln for ln in ax.get_lines() if len(ln.get_xdata())]  # in the legend's order
    lines = dict(zip(["random (n=3)", "best-on-source-oracle (n=3)"], drawn))
    assert len(drawn) == 2
    x, y = (np.asarray(v, dtype=float) for v in lines["random (n=3)"].get_data())
    # seed 2 stopped at step 3 (regret 0): carried to step 4
    want = pd.DataFrame({s: [max(4.0 - k - 0.5 * s, 0.0) for k in (1, 2, 3, 3 if s == 2 else 4)]
                         for s in range(3)})
    np.testing.assert_allclose(x, [1, 2, 3, 4])
    np.testing.assert_allclose(y, want.mean(axis=1))
    assert lines["random (n=3)"].get_drawstyle() == "steps-post"
    assert lines["best-on-source-oracle (n=3)"].get_linestyle() == "--"
    assert lines["random (n=3)"].get_linestyle() == "-"
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    sem = want.sem(axis=1, ddof=1).to_numpy()
    assert np.isclose(band.max(), (want.mean(axis=1) + sem).max())
    assert "standard error" in ax.get_title() and "accuracy (%)" in ax.get_ylabel()
    assert ax.get_yscale() == "symlog" and ax.get_ylim()[0] == 0
    # by time: each search read off one grid from the time every seed has a result
    long = S.regret_by_time_frame(traj, points=50)
    assert set(long.groupby("optimizer")["seed"].nunique()) == {3}
    first = long[long.optimizer == "random"].groupby("seed")["seconds"].min()
    assert (first >= 10.0).all() and first.nunique() == 1
    end = long[(long.optimizer == "random") & (long.seconds == long.seconds.max())]
    np.testing.assert_allclose(end.sort_values("seed")["regret"], [0.0, 0.0, 0.0])
    S.plot_regret_by_time(traj, tmp_path / "t", title="t", metric="accuracy (%)")
    assert figs[1].axes[0].get_xscale() == "log" and "optimizers' own seconds" in figs[1].axes[0].get_xlabel()


def test_verbose_compare_reports_each_search_and_fit(store_path, tmp_path):
    """``-v``: debug messages name each search's result and each predictor fit; not by default."""
    from nasbench_xfer.logs import configure

    base = ["compare", "-s", str(store_path), "-t", "target", "-O", "random,nao", "--budget", "6",
            "--seeds", "1", "-j", "1", "--option", "nao.epochs=2", "--option", "nao.min_steps=5",
            "--option", "nao.n_init=3", "--option", "nao.refit_every=3"]
    try:
        loud = CliRunner().invoke(cli, ["-v", *base, "-o", str(tmp_path / "v")])
        assert loud.exit_code == 0, loud.output
        assert "random seed 0 on target: 6 evaluations, final regret" in loud.output
        assert "predictor fit:" in loud.output and "Adam steps" in loud.output
        plain = CliRunner().invoke(cli, [*base, "-o", str(tmp_path / "p")])
        assert plain.exit_code == 0 and "predictor fit:" not in plain.output
    finally:
        configure(0)
