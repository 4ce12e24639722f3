"""The live oracle: a search's evaluations are trainings appended to a store; nothing finished
is trained twice, so a rerun continues from the store."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import nasbench_xfer.datasets
from nasbench_xfer.harness.protocols import get_protocol
from nasbench_xfer.oracle import BudgetExhausted, LiveOracle
from nasbench_xfer.space.nasnet import NASNetSpace
from nasbench_xfer.store import Store

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TINY = get_protocol("smoke").replace(name="smoke-live", train_images=128, val_images=64, test_images=64,
                                     eval_batch_size=64)


@pytest.fixture(scope="module")
def task():
    return nasbench_xfer.datasets.load_task("quickdraw", SHARED, download=False, num_classes=4)


def test_live_oracle_trains_stores_and_resumes(task, tmp_path):
    store = tmp_path / "live.h5"
    archs = NASNetSpace().sample_many(3, np.random.default_rng(8))
    o = LiveOracle(store, "qd", task, TINY, seed=0, budget=3, concurrent=2)
    scores = o.evaluate_many(archs[:2])
    assert len(scores) == 2 and all(0 <= s <= 1 for s in scores)
    assert o.evaluate(archs[0]) == scores[0] and o.used == 2              # asked again: no cost
    with Store.open(store) as st:
        ev = st.evaluations("qd")
    assert len(ev) == 2 and set(ev["protocol"]) == {"smoke-live"} and (ev["train_seconds"] > 0).all()
    traj = o.trajectory_frame()
    assert list(traj["from_store"]) == [False, False] and (traj["train_seconds"] > 0).all()
    with pytest.raises(BudgetExhausted):
        o.evaluate_many(archs + NASNetSpace().sample_many(1, np.random.default_rng(99)))
    # a new search (a rerun after a crash) gets the stored ones from the store, trains the third only
    o2 = LiveOracle(store, "qd", task, TINY, seed=0, budget=3)
    s2 = o2.evaluate_many(archs)
    assert s2[:2] == scores and list(o2.trajectory_frame()["from_store"]) == [True, True, False]
    with Store.open(store) as st:
        assert len(st.evaluations("qd")) == 3
    # another training seed is another evaluation
    o3 = LiveOracle(store, "qd", task, TINY, seed=1, budget=1)
    o3.evaluate(archs[0])
    with Store.open(store) as st:
        assert sorted(st.evaluations("qd")["seed"]) == [0, 0, 0, 1]
