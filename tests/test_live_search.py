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
    # a smaller budget reports the first evaluations and forgets none: the full budget again
    # trains nothing and finds the same best
    best3 = (tmp_path / "run" / "best_arch.json").read_text()
    small = run_live_search(spec(tmp_path, sources, budget=1), tmp_path / "run", task_data=task, progress=False)
    assert (small["evaluations"], small["trained_now"]) == (1, 0)
    assert len((tmp_path / "run" / "evaluations.jsonl").read_text().splitlines()) == 3  # history kept
    full = run_live_search(spec(tmp_path, sources, budget=3), tmp_path / "run", task_data=task, progress=False)
    assert (full["evaluations"], full["trained_now"], full["from_store"]) == (3, 0, 3)
    assert (tmp_path / "run" / "best_arch.json").read_text() == best3
    with pytest.raises(OptimizerError, match="holds results of another search"):
        run_live_search(spec(tmp_path, sources, optimizer="nao"), tmp_path / "run", task_data=task, progress=False)


def test_a_search_whose_every_training_fails_reports_no_best(task, sources, tmp_path, monkeypatch):
    """Failed trainings are stored (status 'failed'), but a search with no success names no
    "best" architecture: RunError, and the CLI exits non-zero."""
    import nasbench_xfer.harness.train as train
    from nasbench_xfer.harness.runner import RunError

    def broken(*args, **kwargs):
        raise RuntimeError("boom: this network cannot be built")

    monkeypatch.setattr(train, "_build_counted", broken)
    s = spec(tmp_path, sources, budget=2)
    with pytest.raises(RunError, match="none of the search's 2 evaluations succeeded"):
        run_live_search(s, tmp_path / "run", task_data=task, progress=False)
    assert not (tmp_path / "run" / "best_arch.json").exists()
    with Store.open(s.store) as st:
        ev = st.evaluations("qd")
    assert len(ev) == 2 and all(x.startswith("failed: ") and "boom" in x for x in ev["status"])


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
    # a results store of another space is refused before the output folder is claimed
    nb = tmp_path / "nb201.h5"
    from nasbench_xfer.space import get_space
    Store.create(nb, get_space("nb201", {})).close()
    with pytest.raises(OptimizerError, match="holds space"):
        run_live_search(spec(tmp_path, sources, store=str(nb)), tmp_path / "o3", task_data=task, progress=False)
    assert not (tmp_path / "o3" / "spec.json").exists()
    out = run_live_search(spec(tmp_path, sources, budget=1), tmp_path / "o3", task_data=task, progress=False)
    assert out["evaluations"] == 1
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OptimizerError, match="cannot create the output folder"):
        run_live_search(spec(tmp_path, sources), tmp_path / "afile" / "o", task_data=task, progress=False)


@pytest.fixture(scope="module")
def trained_sources(tmp_path_factory):
    """A source store the harness trains first: 4 NASNet architectures on MNIST and on
    Fashion-MNIST (the tiny protocol: 128 training images)."""
    from nasbench_xfer.harness.runner import run

    path = tmp_path_factory.mktemp("trained") / "sources.h5"
    archs = NASNetSpace().sample_many(4, np.random.default_rng(11))
    for name in ("mnist", "fashion_mnist"):
        data = nasbench_xfer.datasets.load_task(name, SHARED, download=False)
        summary = run(path, name, archs, TINY, task_data=data)
        assert summary["ok"] == 4, summary
    return path


def test_killed_xfernas_search_continues_without_training_twice(trained_sources, tmp_path):
    """A live XferNAS search on QuickDraw with source knowledge from a store trained first, two
    trainings in flight: SIGKILL it once its first training is stored; the rerun finishes the
    budget, every evaluation is in the store once, and the trajectory is the store's."""
    store, out = tmp_path / "k.h5", tmp_path / "k"
    cmd = [sys.executable, "-m", "nasbench_xfer", "search", "-d", "quickdraw", "--data-root", str(SHARED),
           "-t", "qd", "-p", "smoke", "-O", "xfernas", "--sources", str(trained_sources), "--budget", "4",
           "--parallel", "2", "-s", str(store), "-o", str(out), "--device", "cpu",
           "--option", "epochs=2", "--option", "min_steps=20", "--option", "refit_every=2"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = tmp_path / "first.log"  # a file, not a pipe: a pipe nobody reads stalls the search once full
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"), text=True)
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
        proc.wait()
    with Store.open(store) as st:
        done = st.num_evaluations("qd")
    assert 1 <= done <= 4, f"exit {proc.returncode}: {log.read_text()[-3000:]}"
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["evaluations"] == 4 and summary["from_store"] == done and summary["trained_now"] == 4 - done
    with Store.open(store) as st:
        assert st.validate() == []
        ev = st.evaluations("qd")
    assert len(ev) == 4 and not ev.duplicated(["hash", "seed"]).any()
    import pandas as pd

    traj = pd.read_csv(out / "trajectory.csv")
    assert sorted(traj["hash"]) == sorted(ev["hash"])
    assert traj["val_metric"].tolist() == [float(ev.set_index("hash").loc[h, "val_metric"]) for h in traj["hash"]]
    assert not set(traj["origin"]) & {"", "random"}  # every proposal from the source-fitted models


class Recorder:
    """Random search that logs every ask and tell, and what was in flight at each ask."""

    name = "recorder"
    log: list = []

    def setup(self, ctx):
        from nasbench_xfer.baselines.random_search import RandomSearch

        self._inner = RandomSearch()
        self._inner.setup(ctx)
        self.pending = self._inner.pending  # the runner fills it: the inner optimizer skips those
        self.origins = self._inner.origins
        Recorder.log = []

    def ask(self, n):
        out = self._inner.ask(n)
        Recorder.log.append(("ask", n, len(self.pending)))
        return out

    def tell(self, archs, results):
        Recorder.log.append(("tell", len(archs)))
        self._inner.tell(archs, results)


def test_parallel_search_asks_when_a_slot_frees_and_tells_as_each_ends(task, sources, tmp_path, monkeypatch):
    """--parallel 2, budget 4: two asks fill the slots, then every result is told alone and a
    new architecture is asked for while the other one is still training; a rerun with a larger
    budget tells the journal's four again, in order, and trains only the rest.

    On CPU, trainings under one protocol take the same number of steps and end in the same
    round, so the slots here hand back one ended training per wait (as trainings of different
    lengths, or on a cluster, would end)."""
    from nasbench_xfer.harness.slots import DeviceSlots
    from nasbench_xfer.oracle import LiveOracle

    class OneAtATime(DeviceSlots):
        held: list = []

        def wait(self):
            if not self.held:
                self.held = super().wait()
            return [self.held.pop(0)]

    real = LiveOracle.slots
    monkeypatch.setattr(LiveOracle, "slots", lambda self: (real(self), OneAtATime(
        self.task_data, self.protocol, self.device, self.flags))[1])
    s = spec(tmp_path, sources, optimizer=f"{__name__}:Recorder", budget=4, parallel=2)
    out = run_live_search(s, tmp_path / "p", task_data=task, progress=False)
    assert (out["evaluations"], out["trained_now"]) == (4, 4)
    assert Recorder.log == [("ask", 1, 0), ("ask", 1, 1), ("tell", 1), ("ask", 1, 1), ("tell", 1),
                            ("ask", 1, 1), ("tell", 1), ("tell", 1)]
    journal = [json.loads(line) for line in (tmp_path / "p" / "evaluations.jsonl").read_text().splitlines()]
    assert [e["event"] for e in journal] == ["start", "start", "tell", "start", "tell", "start", "tell", "tell"]
    journal = [e for e in journal if e["event"] == "tell"]
    import pandas as pd

    traj = pd.read_csv(tmp_path / "p" / "trajectory.csv")
    assert [e["hash"] for e in journal] == list(traj["hash"]) and set(traj["origin"]) == {"random"}
    with Store.open(s.store) as st:
        assert st.num_evaluations("qd") == 4
    more = run_live_search(spec(tmp_path, sources, optimizer=f"{__name__}:Recorder", budget=5, parallel=2),
                           tmp_path / "p", task_data=task, progress=False)
    assert (more["evaluations"], more["trained_now"], more["from_store"]) == (5, 1, 4)
    assert Recorder.log[:4] == [("tell", 1)] * 4  # the resume: the journal, told in order, before any ask
    again = pd.read_csv(tmp_path / "p" / "trajectory.csv")
    assert list(again["hash"][:4]) == list(traj["hash"]) and list(again["origin"]) == ["random"] * 5


def test_in_flight_architectures_are_not_proposed_again(sources):
    """Optimizer.pending: is_new and take_new skip what is training (asynchronous batches)."""
    from nasbench_xfer.baselines.tapas import TapasLike
    from nasbench_xfer.optimizer import SearchContext, TaskData

    space = NASNetSpace()
    probes = space.sample_many(3, np.random.default_rng(1))
    ctx = SearchContext(space=space, target="t", sources={"s": TaskData(probes, np.array([1.0, 2.0, 3.0]))},
                        budget=5, rng=np.random.default_rng(0), probes=probes,
                        probe_table={"s": np.array([1.0, 2.0, 3.0])})
    opt = TapasLike()
    opt.setup(ctx)
    first = opt.ask(1)
    opt.pending[space.hash(first[0])] = first[0]
    second = opt.ask(1)
    assert space.hash(second[0]) != space.hash(first[0]) and second[0] in probes
    assert not opt.is_new(first[0]) and opt.take_new([first[0], second[0]], 2) == [second[0]]


def test_bad_input_fails_before_anything_trains(task, sources, tmp_path):
    """Each refused with a message naming the problem, and no store is written."""
    out_store = tmp_path / "never.h5"

    def fails(args, *expected):
        r = CliRunner().invoke(cli, ["search", "-t", "qd", "-p", "smoke", "--budget", "2", "-s", str(out_store),
                                     "-o", str(tmp_path / "o"), "--device", "cpu", *args])
        assert r.exit_code == 1, r.output
        for e in expected:
            assert e in r.output, r.output
        assert not out_store.exists()

    qd = ["-d", "quickdraw", "--data-root", str(SHARED)]
    fails(["-d", "nosuchdata", "--data-root", str(SHARED)], "nosuchdata")
    fails([*qd, "-t", "a/b"], "invalid task name 'a/b'")
    fails(["-d", "mnist", "--data-root", str(tmp_path / "nowhere")], str(tmp_path / "nowhere"))
    # a protocol whose B differs from the source store's architectures (B=5)
    register_protocol(get_protocol("smoke").replace(name="smoke-b3", num_blocks=3))
    r = CliRunner().invoke(cli, ["search", *qd, "-t", "qd", "-p", "smoke-b3", "--sources", str(sources),
                                 "-s", str(out_store), "-o", str(tmp_path / "o"), "--device", "cpu"])
    assert r.exit_code == 1 and "B=3" in r.output and str(sources) in r.output, r.output
    # a source store of another search space
    from nasbench_xfer.space import get_space

    edge = tmp_path / "edge.h5"
    with Store.create(edge, get_space("nb201")) as st:
        st.add_task("e", dataset="e", num_classes=10)
    fails([*qd, "--sources", str(edge)], str(edge), "NB201", "NASNet-space")
    assert not (tmp_path / "o" / "spec.json").exists()  # a refused search does not claim its folder
