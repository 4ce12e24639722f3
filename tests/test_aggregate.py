"""`aggregate` across compare folders: known ranks, Friedman's test, the paired tally, the CLI."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats

from nasbench_xfer.cli.main import cli
from nasbench_xfer.evaluate.aggregate import aggregate, load_comparisons, write_aggregate

# per target: mean regret level of each optimizer (the order differs between targets)
LEVELS = {"t1": {"xfernas": 1.0, "nao": 2.0, "random": 3.0, "best-on-source-oracle": 0.5},
          "t2": {"xfernas": 1.0, "nao": 3.0, "random": 2.0, "best-on-source-oracle": 0.5},
          "t3": {"xfernas": 2.0, "nao": 1.0, "random": 3.0, "best-on-source-oracle": 0.5},
          "t4": {"xfernas": 1.0, "nao": 2.0, "random": 3.0, "best-on-source-oracle": 0.5}}


def _write(root):
    rng = np.random.default_rng(0)
    dirs = []
    for target, levels in LEVELS.items():
        rows = []
        for opt, level in levels.items():
            for seed in range(10):
                noise = rng.uniform(0, 0.01)
                for step in range(1, 41):  # regret falls by half at step 20
                    r = (level if step < 20 else level / 2) + noise
                    rows.append({"optimizer": opt, "seed": seed, "target": target, "step": step, "regret": r})
        d = root / target
        d.mkdir()
        pd.DataFrame(rows).to_csv(d / "trajectories.csv", index=False)
        dirs.append(d)
    return dirs


def test_ranks_friedman_and_tally_known_values(tmp_path):
    agg = aggregate(load_comparisons(_write(tmp_path)))
    e = agg["friedman"][10]
    # ranks per target (oracle left out): xfernas 1,1,2,1 -> 1.25; nao 2,3,1,2 -> 2; random 3,2,3,3 -> 2.75
    assert e["mean_rank"].to_dict() == pytest.approx({"xfernas": 1.25, "nao": 2.0, "random": 2.75})
    assert "best-on-source-oracle" not in e["mean_rank"].index
    vals = [[LEVELS[t][o] for t in LEVELS] for o in ("xfernas", "nao", "random")]
    assert e["friedman_p"] == pytest.approx(stats.friedmanchisquare(*vals).pvalue, rel=1e-6)
    assert set(e["nemenyi"].columns) == {"xfernas", "nao", "random"}
    assert 40 not in agg["friedman"] and 100 not in agg["friedman"]   # runs end at 40: budget 33 is the last
    assert sorted(agg["friedman"]) == [10, 33]
    # each target's paired test: every seed differs the same way -> win/loss, Holm p = 2/1024 * 6 tests
    t = agg["tally"]
    vs_nao = t[(t.opponent == "nao") & (t.budget == 10)].set_index("target")["call"].to_dict()
    assert vs_nao == {"t1": "win", "t2": "win", "t3": "loss", "t4": "win"}
    assert (t[t.opponent == "best-on-source-oracle"]["call"] == "loss").all()
    assert agg["order"][0] == "xfernas"


def test_write_aggregate_and_cli(tmp_path):
    dirs = _write(tmp_path)
    out = tmp_path / "agg"
    agg = write_aggregate(dirs, out)
    assert agg["figures"] == [10, 33]
    for name in ("overview.md", "regret.csv", "ranks.csv", "tally.csv", "cd_10.png", "cd_33.pdf"):
        assert (out / name).exists(), name
    text = (out / "overview.md").read_text()
    assert "| nao | 3 / 0 / 1 | 3 / 0 / 1 |" in text
    assert "| t3 | loss (" in text
    res = CliRunner().invoke(cli, ["aggregate", *map(str, dirs), "-o", str(tmp_path / "agg2")])
    assert res.exit_code == 0, res.output
    assert "Mean rank over targets" in res.output and "cd_10.png" in res.output


def test_bad_folders_are_named(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(cli, ["aggregate", str(empty), "-o", str(tmp_path / "o")])
    assert res.exit_code != 0 and "is not a compare output folder" in res.output
    d = tmp_path / "bad"
    d.mkdir()
    pd.DataFrame({"optimizer": ["x"], "seed": [0]}).to_csv(d / "trajectories.csv", index=False)
    with pytest.raises(ValueError, match="lack the column"):
        load_comparisons([d])
