"""Executors (``--executor local|ray|slurm``): one interface, results back to the driver, a failed
job reported while the others finish, and the same numbers whichever backend ran the jobs."""
from __future__ import annotations

import json
import operator
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from nasbench_xfer.cli.main import cli
from nasbench_xfer.evaluate.ablation import AblationSpec, run_ablation
from nasbench_xfer.evaluate.runs import JobsFailed
from nasbench_xfer.evaluate.search import SearchSpec, compare
from nasbench_xfer.executors import (
    EXECUTORS,
    ExecutorError,
    JobError,
    LocalExecutor,
    check_reachable,
    make_executor,
    parse_minutes,
)
from nasbench_xfer.space import OPS, NASNetSpace
from nasbench_xfer.store import Store

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
DIVISIONS = [(1, 2), (1, 0), (3, 4)]


def _score(arch, shift: float) -> float:
    v = np.linspace(-1, 1, len(OPS))
    return float(sum(v[OPS.index(b.op_a)] + v[OPS.index(b.op_b)] for b in arch.normal)
                 + shift * sum(b.input_a for b in arch.normal))


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("exec") / "synthetic.h5"
    space = NASNetSpace()
    archs = space.sample_many(120, np.random.default_rng(0))
    with Store.create(path, space) as st:
        for task, shift in (("target", 0.1), ("near", 0.12), ("far", -0.5)):
            st.add_task(task, dataset=task)
            st.append(task, [dict(arch=a, val_metric=_score(a, shift), test_metric=_score(a, shift) - 0.01)
                             for a in archs])
    return path


def _search_spec(path) -> SearchSpec:
    return SearchSpec(store=str(path), target="target", sources=["near", "far"], optimizers=["random", "tapas"],
                      budget=10, seeds=[0, 1], source_size=None)


def _ablation_spec(path) -> AblationSpec:
    return AblationSpec(store=str(path), target="target", sources=["near", "far"], source_sizes=[0, 20],
                        target_sizes=[0, 10], splits=2, holdout=30, predictor="ridge")


def _sorted(runs: pd.DataFrame) -> pd.DataFrame:
    return runs.drop(columns="fit_seconds").sort_values(["source_size", "target_size", "split"]).reset_index(drop=True)


def _assert_division_results(results: dict) -> None:
    assert results[(1, 2)] == 0.5 and results[(3, 4)] == 0.75
    assert isinstance(results[(1, 0)], JobError) and "ZeroDivisionError" in str(results[(1, 0)])


# ----------------------------------------------------------------------- registry, bad input
def test_registry_and_unknown_executor(store_path, tmp_path):
    assert EXECUTORS.list() == ["local", "ray", "slurm"]
    with pytest.raises(ExecutorError, match="unknown executor 'x'; known: local, ray, slurm"):
        make_executor("x")
    with pytest.raises(ExecutorError, match="has no option 'gpus'; its options: workers"):
        make_executor("local", gpus=1)
    res = CliRunner().invoke(cli, ["list", "executors"])
    assert res.exit_code == 0 and "ray" in res.output and "slurm" in res.output
    out = tmp_path / "cmp"
    res = CliRunner().invoke(cli, ["compare", "-s", str(store_path), "-t", "target", "-O", "random", "--seeds", "1",
                                   "--budget", "5", "-o", str(out), "--executor", "x"])
    assert res.exit_code != 0 and "unknown executor 'x'; known: local, ray, slurm" in res.output
    res = CliRunner().invoke(cli, ["compare", "-s", str(store_path), "-t", "target", "-O", "random", "--seeds", "1",
                                   "--budget", "5", "-o", str(out), "--ray-address", "localhost:6379"])
    assert res.exit_code != 0 and "--ray-address is an option of --executor ray (this run uses local)" in res.output
    assert not out.exists()


def test_unreachable_ray_address_fails_before_anything_runs(store_path, tmp_path):
    with pytest.raises(ExecutorError, match="not HOST:PORT"):
        check_reachable("nohost", 1)
    with pytest.raises(ExecutorError, match="cannot reach the Ray cluster at 127.0.0.1:9"):
        check_reachable("127.0.0.1:9", 1)  # the discard port: nothing listens there
    pytest.importorskip("ray")
    out = tmp_path / "cmp"
    res = CliRunner().invoke(cli, ["compare", "-s", str(store_path), "-t", "target", "-O", "random", "--seeds", "1",
                                   "--budget", "5", "-o", str(out), "--executor", "ray",
                                   "--ray-address", "127.0.0.1:9"])
    assert res.exit_code != 0 and "cannot reach the Ray cluster at 127.0.0.1:9" in res.output, res.output
    assert not out.exists()
    bogus = ["--executor", "ray", "--ray-address", "127.0.0.1:9"]
    res = CliRunner().invoke(cli, ["train", str(tmp_path / "t.h5"), "-d", "quickdraw", "--data", str(SHARED),
                                   "-p", "smoke", "-a", "xfernasnet", *bogus])
    assert res.exit_code != 0 and "cannot reach the Ray cluster" in res.output, res.output
    res = CliRunner().invoke(cli, ["search", "-d", "quickdraw", "--data-root", str(SHARED), "-p", "smoke",
                                   "-O", "random", "-s", str(tmp_path / "s.h5"), "-o", str(tmp_path / "s"), *bogus])
    assert res.exit_code != 0 and "cannot reach the Ray cluster" in res.output, res.output
    assert not (tmp_path / "t.h5").exists() and not (tmp_path / "s.h5").exists() and not (tmp_path / "s").exists()


def test_slurm_options_are_checked():
    assert parse_minutes("90") == 90 and parse_minutes("01:30:00") == 90 and parse_minutes("1-00:00:00") == 1440
    with pytest.raises(ExecutorError, match="not MINUTES, HH:MM:SS"):
        parse_minutes("soon")
    pytest.importorskip("submitit")
    if shutil.which("sbatch") is None:
        with pytest.raises(ExecutorError, match="sbatch not found"):
            make_executor("slurm")
    with pytest.raises(ExecutorError, match="cluster must be slurm or local"):
        make_executor("slurm", cluster="pbs")


def test_missing_backend_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(ExecutorError, match=r"the ray executor needs ray.*pip install 'nasbench_xfer\[ray\]'"):
        make_executor("ray")
    with pytest.raises(ExecutorError, match=r"pip install 'nasbench_xfer\[slurm\]'"):
        make_executor("slurm", cluster="local")


# ------------------------------------------------------------------------------------ local
@pytest.mark.parametrize("workers", [1, 2])
def test_local_executor_reports_a_failed_job_while_the_others_finish(workers):
    with LocalExecutor(workers) as ex:
        _assert_division_results(dict(ex.map_unordered(operator.truediv, DIVISIONS)))
        assert ex.submit(operator.add, 2, 3).result() == 5


def _divide_or_die(a, b):
    if b < 0:
        os._exit(3)  # the worker process dies
    return a / b


def test_local_pool_reports_a_dead_worker_while_the_others_finish():
    jobs = [*DIVISIONS, (5, -1), (6, 3), (7, 7)]
    with LocalExecutor(2) as ex:
        got = dict(ex.map_unordered(_divide_or_die, jobs))
    assert sorted(got) == sorted(jobs)
    _assert_division_results(got)
    assert got[(6, 3)] == 2 and got[(7, 7)] == 1
    assert isinstance(got[(5, -1)], JobError) and str(got[(5, -1)]).startswith("worker process died")


def test_compare_keeps_finished_runs_when_one_fails_and_resumes(store_path, tmp_path, monkeypatch):
    import nasbench_xfer.evaluate.search as search

    real = search.run_search

    def flaky(spec, optimizer, seed):
        if optimizer == "tapas" and seed == 1:
            raise RuntimeError("node lost")
        return real(spec, optimizer, seed)

    monkeypatch.setattr(search, "run_search", flaky)
    out = tmp_path / "cmp"
    with pytest.raises(JobsFailed, match=r"1 job\(s\) failed \(tapas seed 1: RuntimeError: node lost\)"):
        compare(_search_spec(store_path), out, progress=False, executor=LocalExecutor(1))
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["random__seed0.csv", "random__seed1.csv",
                                                                 "tapas__seed0.csv"]
    monkeypatch.setattr(search, "run_search", real)
    kept = (out / "runs" / "random__seed0.csv").stat().st_mtime_ns
    res = compare(_search_spec(store_path), out, progress=False)
    assert (out / "runs" / "random__seed0.csv").stat().st_mtime_ns == kept
    assert len(res["trajectories"].groupby(["optimizer", "seed"])) == 4


# -------------------------------------------------------------------------------------- ray
@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}})
    yield ray
    ray.shutdown()


def test_ray_reports_a_failed_job_while_the_others_finish(ray_cluster):
    with make_executor("ray") as ex:
        _assert_division_results(dict(ex.map_unordered(operator.truediv, DIVISIONS)))
        assert ex.submit(operator.add, 2, 3).result() == 5
        assert ex.put([1, 2]) is not None
        # a worker that dies: its job is reported, the others finish
        got = dict(ex.map_unordered(os._exit, [(3,)]))
        assert isinstance(got[(3,)], JobError) and str(got[(3,)]).startswith("WorkerCrashedError: The worker died")
        _assert_division_results(dict(ex.map_unordered(operator.truediv, DIVISIONS)))
    assert ray_cluster.is_initialized()  # joined, not started: close leaves the cluster up


def test_ray_compare_equals_local(ray_cluster, store_path, tmp_path):
    local = compare(_search_spec(store_path), tmp_path / "local", jobs=1, progress=False)
    out = tmp_path / "ray"
    res = CliRunner().invoke(cli, ["compare", "-s", str(store_path), "-t", "target", "--sources", "near,far",
                                   "-O", "random,tapas", "--budget", "10", "--seeds", "2", "--source-size", "0",
                                   "-o", str(out), "--executor", "ray"])
    assert res.exit_code == 0, res.output
    remote = pd.read_csv(out / "trajectories.csv")
    mine = pd.read_csv(tmp_path / "local" / "trajectories.csv")
    assert len(remote) == len(local["trajectories"]) == 40
    np.testing.assert_array_equal(remote["regret"].to_numpy(), mine["regret"].to_numpy())
    timing = ["optimizer_seconds", "optimizer_seconds_cum", "sim_seconds"]  # measured where each search ran
    pd.testing.assert_frame_equal(remote.drop(columns=timing), mine.drop(columns=timing))


def test_ray_ablation_equals_local(ray_cluster, store_path, tmp_path):
    local = run_ablation(_ablation_spec(store_path), tmp_path / "local.jsonl", jobs=1, progress=False)
    with make_executor("ray") as ex:
        remote = run_ablation(_ablation_spec(store_path), tmp_path / "ray.jsonl", executor=ex, progress=False)
    assert len(remote) == 8
    pd.testing.assert_frame_equal(_sorted(local), _sorted(remote))
    lines = (tmp_path / "ray.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["spec"]["predictor"] == "ridge" and len(lines) == 9


# ------------------------------------------------------------------------ slurm (submitit, local)
def test_submitit_reports_a_failed_job_while_the_others_finish(tmp_path):
    pytest.importorskip("submitit")
    with make_executor("slurm", cluster="local", folder=tmp_path / "logs", poll_seconds=0.2) as ex:
        _assert_division_results(dict(ex.map_unordered(operator.truediv, DIVISIONS)))


def test_submitit_train_equals_local_and_resumes(tmp_path):
    pytest.importorskip("submitit")
    common = ["-d", "quickdraw", "--data", str(SHARED), "-p", "smoke", "-a", "xfernasnet", "--seeds", "3",
              "--num-classes", "4"]
    res = CliRunner().invoke(cli, ["train", str(tmp_path / "local.h5"), *common, "--device", "cpu"])
    assert res.exit_code == 0, res.output
    slurm = ["--executor", "slurm", "--slurm-folder", str(tmp_path / "logs"), "--slurm-time", "00:10:00",
             "--executor-option", "cluster=local", "--executor-option", "poll_seconds=0.2"]
    res = CliRunner().invoke(cli, ["train", str(tmp_path / "slurm.h5"), *common, *slurm])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert (summary["trained"], summary["ok"]) == (1, 1)
    with Store.open(tmp_path / "local.h5") as a, Store.open(tmp_path / "slurm.h5") as b:
        ea = a.evaluations("quickdraw").sort_values("hash").reset_index(drop=True)
        eb = b.evaluations("quickdraw").sort_values("hash").reset_index(drop=True)
    assert list(ea["hash"]) == list(eb["hash"]) and (eb["status"] == "ok").all()
    np.testing.assert_array_equal(ea["val_metric"].to_numpy(), eb["val_metric"].to_numpy())
    res = CliRunner().invoke(cli, ["train", str(tmp_path / "slurm.h5"), *common, *slurm])  # resume: nothing left
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.strip().splitlines()[-1])["skipped"] == 1
    assert list((tmp_path / "logs" / "shared").iterdir()) == []  # the shipped task data is removed at the end
    res = CliRunner().invoke(cli, ["train", str(tmp_path / "dry.h5"), *common, *slurm, "--dry-run"])
    assert res.exit_code == 0 and json.loads(res.output.strip().splitlines()[-1])["jobs"] == 1, res.output
    assert not (tmp_path / "dry.h5").exists()
    res = CliRunner().invoke(cli, ["train", str(tmp_path / "slurm.h5"), *common, *slurm, "--devices", "cpu,cpu"])
    assert res.exit_code != 0 and "--devices, --concurrent and --time-limit are for --executor local" in res.output


def test_ray_search_trains_each_batch_as_tasks_and_resumes(ray_cluster, tmp_path):
    import nasbench_xfer.datasets
    from nasbench_xfer.evaluate.live_search import LiveSearchSpec, run_live_search
    from nasbench_xfer.harness.protocols import get_protocol, register_protocol

    tiny = register_protocol(get_protocol("smoke").replace(name="smoke-exec", train_images=128, val_images=64,
                                                           test_images=64, eval_batch_size=64))
    task = nasbench_xfer.datasets.load_task("quickdraw", SHARED, download=False, num_classes=4)
    spec = LiveSearchSpec(dataset="quickdraw", protocol=tiny.name, optimizer="random", budget=2,
                          store=str(tmp_path / "out.h5"), task="qd", seed=0, parallel=2)
    with make_executor("ray") as ex:
        first = run_live_search(spec, tmp_path / "s", device="auto", task_data=task, progress=False, executor=ex)
        assert (first["evaluations"], first["trained_now"]) == (2, 2)
        with Store.open(tmp_path / "out.h5") as st:
            ev = st.evaluations("qd")
            assert len(ev) == 2 and (ev["status"] == "ok").all()
        again = run_live_search(spec, tmp_path / "s", device="auto", task_data=task, progress=False, executor=ex)
    assert (again["trained_now"], again["from_store"]) == (0, 2)
    assert again["best_hash"] == first["best_hash"]


def test_submitit_search_keeps_two_tasks_running_and_resumes(tmp_path):
    """A live search through the SLURM executor (submitit's local cluster): each architecture is a
    task, polled until it ends; a rerun answers everything from the store."""
    pytest.importorskip("submitit")
    import nasbench_xfer.datasets
    from nasbench_xfer.evaluate.live_search import LiveSearchSpec, run_live_search
    from nasbench_xfer.harness.protocols import get_protocol, register_protocol

    tiny = register_protocol(get_protocol("smoke").replace(name="smoke-exec", train_images=128, val_images=64,
                                                           test_images=64, eval_batch_size=64))
    task = nasbench_xfer.datasets.load_task("quickdraw", SHARED, download=False, num_classes=4)
    spec = LiveSearchSpec(dataset="quickdraw", protocol=tiny.name, optimizer="random", budget=3,
                          store=str(tmp_path / "out.h5"), task="qd", seed=0, parallel=2)
    with make_executor("slurm", cluster="local", folder=tmp_path / "logs", poll_seconds=0.2) as ex:
        first = run_live_search(spec, tmp_path / "s", device="auto", task_data=task, progress=False, executor=ex)
        assert (first["evaluations"], first["trained_now"]) == (3, 3)
        again = run_live_search(spec, tmp_path / "s", device="auto", task_data=task, progress=False, executor=ex)
    assert (again["trained_now"], again["from_store"]) == (0, 3) and again["best_hash"] == first["best_hash"]
    with Store.open(tmp_path / "out.h5") as st:
        ev = st.evaluations("qd")
    assert len(ev) == 3 and (ev["status"] == "ok").all() and not ev.duplicated(["hash", "seed"]).any()
