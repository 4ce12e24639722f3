"""The scikit-learn view of the predictors and the predictor evaluator, on a small synthetic table."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from nasbench_xfer.evaluate.predictors import evaluate_predictor, from_store
from nasbench_xfer.predictor.estimator import PredictorRegressor
from nasbench_xfer.space import OPS, NASNetSpace
from nasbench_xfer.store import Store

OP_VALUE = np.linspace(-1, 1, len(OPS))


def _metric(arch) -> float:
    return float(sum(OP_VALUE[OPS.index(b.op_a)] + OP_VALUE[OPS.index(b.op_b)] for b in arch.normal))


@pytest.fixture(scope="module")
def data():
    space = NASNetSpace()
    archs = space.sample_many(600, np.random.default_rng(3))
    return space, archs, np.array([_metric(a) for a in archs])


def test_sklearn_api_clone_params_and_units(data):
    space, archs, y = data
    est = PredictorRegressor("ridge", space=space, task="cifar", seed=1)
    assert est.get_params()["predictor"] == "ridge"
    twin = clone(est).set_params(seed=2)
    assert twin.seed == 2 and est.seed == 1
    with pytest.raises(NotFittedError):
        est.predict(archs[:3])
    est.fit(archs[:500], y[:500])
    pred = est.predict(archs[500:])
    assert pred.shape == (100,) and np.corrcoef(pred, y[500:])[0, 1] > 0.9   # a linear metric of the ops
    assert est.score(archs[500:], y[500:]) > 0.8                             # R^2, in y's units
    np.testing.assert_allclose(est.query(archs[500:]), pred)
    # spec strings are architectures too
    np.testing.assert_allclose(est.predict([space.to_string(a) for a in archs[500:]]), pred)
    # a loss: fitted on -y, predictions back in the loss's units
    loss = PredictorRegressor("ridge", space=space, task="cifar", seed=1, higher_is_better=False)
    np.testing.assert_allclose(loss.fit(archs[:500], -y[:500]).predict(archs[500:]), -pred, rtol=1e-6, atol=1e-8)


def test_transfer_predictor_through_the_sklearn_view(data):
    space, archs, y = data
    est = PredictorRegressor("xfernas", space="nasnet", task="target", seed=0,
                             sources={"src": (archs[40:140], y[40:140])},  # 100 source evaluations
                             options={"epochs": 5, "min_steps": 60, "device": "cpu"})
    est.fit(archs[:10], y[:10])
    pred = est.predict(archs[140:160])
    assert pred.shape == (20,) and np.isfinite(pred).all()
    # predictions are in the target's units: centred near the 10 training values' mean
    assert abs(pred.mean() - y[:10].mean()) < 3 * y[:10].std()


@pytest.mark.parametrize("call, message", [
    (lambda e, a, y: e.fit(a[:5], y[:4]), "5 architectures but 4 values"),
    (lambda e, a, y: e.fit(a[:5], np.r_[y[:4], np.nan]), "NaN or infinite"),
    (lambda e, a, y: e.fit(["not a spec"] + a[1:5], y[:5]), r"X\[0\] is not a nasnet spec string"),
    (lambda e, a, y: e.fit(a[:5], y[:10].reshape(5, 2)), "y must be 1-D"),
    (lambda e, a, y: e.set_params(sources={"t": (a[:3], y[:3])}).fit(a[:5], y[:5]), "own task 't'"),
])
def test_bad_input_is_named(data, call, message):
    _, archs, y = data
    with pytest.raises(ValueError, match=message):
        call(PredictorRegressor("ridge", task="t"), list(archs), y)


def test_evaluator_every_metric_per_train_size(data, tmp_path):
    space, archs, y = data
    path = tmp_path / "s.h5"
    with Store.create(path, space) as st:
        st.add_task("cifar", dataset="cifar")
        st.append("cifar", [dict(arch=a, val_metric=v) for a, v in zip(archs, y)])
    with Store.open(path) as st:
        X, yy, hib = from_store(st, "cifar")
    assert len(X) == 600 and hib
    df = evaluate_predictor(PredictorRegressor("ridge", space=space, task="cifar"), X, yy,
                            train_sizes=[10, 400], test_size=100, seeds=[0, 1])
    assert list(df["train_size"]) == [10, 400, 10, 400] and (df["test_size"] == 100).all()
    for col in ("pearson", "spearman", "kendall", "precision@5", "precision@10", "fit_seconds"):
        assert col in df.columns
    big = df[df.train_size == 400]
    assert (big["spearman"] > 0.9).all() and (big["kendall"] > 0.7).all()
    assert (big["spearman"].to_numpy() >= df[df.train_size == 10]["spearman"].to_numpy() - 0.05).all()
    with pytest.raises(ValueError, match="cannot hold a test set of 590"):
        evaluate_predictor(PredictorRegressor("ridge", space=space, task="cifar"), X, yy, [20], test_size=590)
