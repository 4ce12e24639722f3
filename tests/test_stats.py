"""Honest statistics (issue 11): paired Wilcoxon, Holm, Kaplan-Meier, and their use in summaries."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nasbench_xfer.evaluate.ablation import target_dip, transfer_effects
from nasbench_xfer.evaluate.search import paired_tests, summarize
from nasbench_xfer.evaluate.stats import holm, kaplan_meier, km_median, paired_wilcoxon


def test_paired_wilcoxon_known_values():
    a = np.arange(1, 11, dtype=float)
    res = paired_wilcoxon(a, np.zeros(10))
    # all ten differences positive: exact two-sided p = 2 / 2**10
    assert res.n == 10 and res.pvalue == pytest.approx(2 / 1024)
    assert res.mean_diff == pytest.approx(5.5) and res.median_diff == pytest.approx(5.5)
    # signs alternate with equal magnitudes ranked symmetrically: no evidence
    d = np.array([1, -1, 2, -2, 3, -3], dtype=float)
    assert paired_wilcoxon(d, np.zeros(6)).pvalue == pytest.approx(1.0)
    # identical samples: p = 1, not an error
    assert paired_wilcoxon([1, 2, 3], [1, 2, 3]).pvalue == 1.0
    # NaN pairs are dropped
    assert paired_wilcoxon([1, np.nan, 3], [0, 0, 0]).n == 2
    with pytest.raises(ValueError, match="equal length"):
        paired_wilcoxon([1, 2], [1, 2, 3])


def test_paired_call_follows_the_signed_rank_direction_not_the_median():
    """21 tiny negative differences and 19 large positive ones: the median is negative, but the
    signed-rank test finds the differences positive (W- = 231 of 820, p ~ 0.016), so focus lost."""
    from nasbench_xfer.evaluate.search import paired_call

    d = np.concatenate([-0.001 * np.arange(1, 22), np.arange(1.0, 20.0)])
    res = paired_wilcoxon(d, np.zeros(len(d)))
    assert res.median_diff < 0 and res.rank_sum == pytest.approx(820 - 2 * 231) and res.pvalue < 0.05
    assert paired_call(res.median_diff, res.mean_diff, res.pvalue, rank_sum=res.rank_sum) == "loss"
    assert paired_call(res.median_diff, res.mean_diff, res.pvalue) == "win"      # the old rule, median only
    assert paired_call(-1.0, -1.0, 0.2, rank_sum=-5.0) == "tie"
    assert paired_call(0.0, 0.0, 0.01, rank_sum=0.0) == "tie"


def test_holm_known_values():
    adj = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adj, [0.03, 0.06, 0.06, 0.02])
    adj = holm([0.5, np.nan, 0.01])
    assert np.isnan(adj[1])
    np.testing.assert_allclose(adj[[0, 2]], [0.5, 0.02])
    assert holm([0.9, 0.8]).max() <= 1.0


def test_kaplan_meier_median_counts_the_censored():
    # 2 of 5 searches got there (at 3 and 5); the other 3 stopped at the budget of 10
    times, events = [3, 5, 10, 10, 10], [True, True, False, False, False]
    t, s = kaplan_meier(times, events)
    np.testing.assert_allclose(t, [3, 5])
    np.testing.assert_allclose(s, [0.8, 0.6])
    assert km_median(times, events) == math.inf      # a median over survivors would say 4
    assert km_median([2, 4, 6, 10, 10], [True, True, True, False, False]) == 6
    # censored before the end: (2: 3/4 left), (4: at risk 2 -> 3/4 * 1/2 = 0.375)
    assert km_median([2, 3, 4, 8], [True, False, True, True]) == 4
    with pytest.raises(ValueError, match="finite"):
        kaplan_meier([1, np.inf], [True, False])


def _traj(regrets: dict[str, list[list[float]]]) -> pd.DataFrame:
    """Trajectories from per-optimizer, per-seed regret sequences (best 10, table of 100)."""
    rows = []
    for opt, per_seed in regrets.items():
        for seed, seq in enumerate(per_seed):
            for step, r in enumerate(np.minimum.accumulate(seq), start=1):
                rows.append({"optimizer": opt, "seed": seed, "step": step, "regret": r,
                             "best_val": 10 - r, "test_at_best": np.nan,
                             "top_fraction": 0.0 if r == 0 else 0.5})
    return pd.DataFrame(rows)


def test_paired_tests_pair_by_seed_and_holm_correct():
    rng = np.random.default_rng(0)
    base = rng.uniform(1, 2, size=(10, 12))
    traj = _traj({"xfernas": (base - 0.5).tolist(), "nao": base.tolist(),
                  "random": (base + rng.normal(0, 0.01, size=base.shape)).tolist()})
    tests = paired_tests(traj, "xfernas", budgets=[10, 12])
    assert len(tests) == 4 and (tests["pairs"] == 10).all()
    vs_nao = tests[tests.opponent == "nao"]
    # every seed better by exactly 0.5: exact p = 2/1024, Holm over 4 tests multiplies by <= 4
    np.testing.assert_allclose(vs_nao["p"], 2 / 1024)
    assert (vs_nao["p_holm"] <= 4 * 2 / 1024 + 1e-12).all()
    assert (vs_nao["call"] == "win").all() and (vs_nao["mean_diff"] < 0).all()
    # a 0.5 shift with per-seed noise of 0.01: every pair agrees
    assert (tests[tests.opponent == "random"]["call"] == "win").all()
    # reversed roles: a loss
    rev = paired_tests(traj, "nao", budgets=[12])
    assert rev[rev.opponent == "xfernas"]["call"].iloc[0] == "loss"
    # a comparison of xfernas alone has nothing to pair with: an empty table, not an error
    alone = paired_tests(traj[traj.optimizer == "xfernas"], "xfernas")
    assert alone.empty and "p_holm" in alone.columns


def test_summary_evals_to_top_is_a_censored_median():
    # 10 seeds, 3 reach regret 0 (top) early, 7 never: the median over survivors would be 2
    seqs = [[1, 0, 0, 0] if s < 3 else [1, 1, 1, 1] for s in range(10)]
    summ = summarize(_traj({"x": seqs}), budget=4)
    assert summ.loc[0, "evals_to_top1%_median"] == math.inf
    assert summ.loc[0, "reached_top1%"] == pytest.approx(0.3)
    seqs = [[1, 0, 0, 0] if s < 6 else [1, 1, 1, 1] for s in range(10)]
    assert summarize(_traj({"x": seqs}), budget=4).loc[0, "evals_to_top1%_median"] == 2


def test_ablation_effects_and_dip_are_paired_over_splits():
    rows = []
    for split in range(10):
        noise = 0.01 * split
        for s, m, v in ((0, 10, 0.3 + noise), (50, 0, 0.7 + noise), (50, 10, 0.6 + noise),
                        (0, 25, 0.5), (50, 25, 0.5 + 0.001 * (split - 4.5))):
            rows.append({"source_size": s, "target_size": m, "split": split, "spearman": v,
                         "status": "ok"})
    runs = pd.DataFrame(rows)
    eff = transfer_effects(runs).set_index("target_size")
    assert eff.loc[10, "call"] == "helps" and eff.loc[10, "diff"] == pytest.approx(0.3)
    assert eff.loc[10, "p"] == pytest.approx(2 / 1024)
    assert eff.loc[25, "call"] == "tie"
    dip = target_dip(runs).set_index("target_size")
    assert dip.loc[10, "change"] == pytest.approx(-0.1) and dip.loc[10, "p"] == pytest.approx(2 / 1024)
    assert dip.loc[10, "zero"] == pytest.approx(0.745)
