"""`nasbench-xfer search`: optimizers drive the harness; every training lands in the store; a
killed search rerun with the same arguments continues without training anything twice."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import nasbench_xfer.datasets
from nasbench_xfer.cli.main import cli
from nasbench_xfer.evaluate.live_search import LiveSearchSpec, parse_sources, run_live_search
from nasbench_xfer.harness.protocols import get_protocol, register_protocol
from nasbench_xfer.optimizer import OptimizerError
from nasbench_xfer.space import OPS, NASNetSpace
from nasbench_xfer.store import Store, StoreError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REPO = Path(__file__).resolve().parents[1]
TINY = register_protocol(get_protocol("smoke").replace(name="smoke-search", train_images=128, val_images=64,
                                                       test_images=64, eval_batch_size=64))


@pytest.fixture(scope="module")
def task():
    return nasbench_xfer.datasets.load_task("quickdraw", SHARED, download=False, num_classes=4)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Two source tasks on 60 NASNet architectures: sep convs good, pooling bad."""
    space = NASNetSpace()
    archs = space.sample_many(60, np.random.default_rng(3))
    path = tmp_path_factory.mktemp("src") / "src.h5"

    def value(a, w):
        ops = [b.op_a for b in a.normal] + [b.op_b for b in a.normal]
        return 0.5 + w * sum(o.startswith("sep_conv") for o in ops) - 0.02 * sum("pool" in o for o in ops)

    with Store.create(path, space) as st:
        for t, w in (("src_a", 0.03), ("src_b", 0.025)):
            st.add_task(t, dataset=t, num_classes=10)
            st.append(t, [dict(arch=a, val_metric=value(a, w), test_metric=value(a, w)) for a in archs])
    return path


def spec(tmp_path, sources, **kw) -> LiveSearchSpec:
    base = dict(dataset="quickdraw", protocol=TINY.name, optimizer="random", budget=3,
                store=str(tmp_path / "out.h5"), sources_store=str(sources), task="qd", seed=0, parallel=1)
    base.update(kw)
    return LiveSearchSpec(**base)


def test_search_trains_records_and_resumes(task, sources, tmp_path):
    s = spec(tmp_path, sources, budget=2)
    first = run_live_search(s, tmp_path / "run", task_data=task, progress=False)
    assert (first["evaluations"], first["trained_now"], first["from_store"]) == (2, 2, 0)
    with Store.open(s.store) as st:
        ev = st.evaluations("qd", spec=True)
    assert len(ev) == 2 and set(ev["protocol"]) == {TINY.name} and (ev["train_seconds"] > 0).all()
    traj = (tmp_path / "run" / "trajectory.csv").read_text()
    assert "train_seconds_cum" in traj and "from_store" in traj
    best = json.loads((tmp_path / "run" / "best_arch.json").read_text())
    assert set(best) == {"conv_dag", "reduc_dag"}  # the appendix-C JSON
    # a larger budget continues: the two trained ones come from the store, one more is trained
    again = run_live_search(spec(tmp_path, sources, budget=3), tmp_path / "run", task_data=task, progress=False)
    assert (again["evaluations"], again["trained_now"], again["from_store"]) == (3, 1, 2)
    assert (tmp_path / "run" / "best_so_far.png").exists()
    with pytest.raises(OptimizerError, match="holds results of another search"):
        run_live_search(spec(tmp_path, sources, optimizer="nao"), tmp_path / "run", task_data=task, progress=False)


def test_xfernas_warm_start_uses_the_sources(task, sources, tmp_path):
    s = spec(tmp_path, sources, optimizer="xfernas", budget=2, parallel=2,
             options={"epochs": 2, "min_steps": 20, "refit_every": 10})
    out = run_live_search(s, tmp_path / "x", task_data=task, progress=False)
    assert out["evaluations"] == 2
    import pandas as pd

    origins = set(pd.read_csv(tmp_path / "x" / "trajectory.csv")["origin"])
    assert origins and not origins & {"", "random"}, origins  # proposals from the source-fitted model


def test_bad_input_is_named(task, sources, tmp_path):
    with pytest.raises(OptimizerError, match="oracle reference line"):
        run_live_search(spec(tmp_path, sources, optimizer="best-on-source-oracle"), tmp_path / "o",
                        task_data=task, progress=False)
    with pytest.raises(OptimizerError, match="also a source"):
        run_live_search(spec(tmp_path, sources, task="src_a"), tmp_path / "o2", task_data=task, progress=False)
    assert parse_sources(f"{sources}:src_a, src_b") == (str(sources), ["src_a", "src_b"])
    assert parse_sources(str(sources)) == (str(sources), [])
    r = CliRunner().invoke(cli, ["search", "-d", "quickdraw", "--data-root", str(SHARED), "-p", "smoke",
                                 "-O", "nope", "-s", str(tmp_path / "s.h5"), "-o", str(tmp_path / "c"),
                                 "--device", "cpu"])
    assert r.exit_code == 1 and "unknown optimizer 'nope'" in r.output, r.output
    assert len(OPS) == 19


def test_killed_search_continues_without_training_twice(sources, tmp_path):
    """SIGKILL a CLI search once its first training is stored; the rerun finishes the budget, and the
    store holds each (architecture, seed) once."""
    store, out = tmp_path / "k.h5", tmp_path / "k"
    cmd = [sys.executable, "-m", "nasbench_xfer", "search", "-d", "quickdraw", "--data-root", str(SHARED),
           "-t", "qd", "-p", "smoke", "-O", "random", "--sources", str(sources), "--budget", "3",
           "-s", str(store), "-o", str(out), "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if store.exists():
                try:
                    with Store.open(store) as st:
                        if "qd" in st.tasks and st.num_evaluations("qd") >= 1:
                            break
                except StoreError:  # caught while the writer holds the new file: look again
                    pass
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.communicate()
    with Store.open(store) as st:
        done = st.num_evaluations("qd")
    assert 1 <= done <= 3
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["evaluations"] == 3 and summary["from_store"] == done and summary["trained_now"] == 3 - done
    with Store.open(store) as st:
        assert st.validate() == []
        ev = st.evaluations("qd")
    assert len(ev) == 3 and not ev.duplicated(["hash", "seed"]).any()
