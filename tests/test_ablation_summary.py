"""`nasbench-xfer aggregate` over ablation folders: the overview's calls on known values."""
from __future__ import annotations

import json

from click.testing import CliRunner

from nasbench_xfer.cli.main import cli
from nasbench_xfer.evaluate.ablation_summary import is_ablation_folder, summarize_ablation


def _ablation(folder, dip: float, splits: int = 10):
    """An ablation folder with known Spearman values: no transfer 0.2 (+0.01 per split), 50 per
    source 0.6 at zero target, 0.6 + dip at 10 and 0.65 at 25 target architectures."""
    folder.mkdir()
    spec = {"store": "s.h5", "target": "t", "sources": ["a"], "source_sizes": [0, 50], "target_sizes": [0, 10, 25],
            "splits": splits, "holdout": 50, "seed": 0, "predictor": "xfernas", "predictor_options": {}}
    value = {(0, 10): 0.2, (0, 25): 0.3, (50, 0): 0.6, (50, 10): 0.6 + dip, (50, 25): 0.65}
    lines = [json.dumps({"spec": spec, "implementation": "x"})]
    for (s, m), v in value.items():
        for k in range(splits):
            lines.append(json.dumps({"target": "t", "predictor": "xfernas", "source_size": s, "target_size": m,
                                     "split": k, "status": "ok", "pearson": v, "spearman": v + 0.01 * k,
                                     "kendall": v, "fit_seconds": 1.0}))
    (folder / "runs.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_overview_calls_on_known_values(tmp_path):
    good, bad = _ablation(tmp_path / "t-good", dip=0.005), _ablation(tmp_path / "t-bad", dip=-0.02, splits=5)
    row, drow = summarize_ablation(good)
    assert row["splits"] == 10 and row["rises (spearman)"] == "yes"
    assert row["helps (cells, Holm)"] == "2 of 2 (2)" and row["hurts: source@target (diff, p; Holm)"] == "never"
    assert row["curves meet (source 50 vs none)"] == "not by 25"
    assert row["transfer - none, 50/source (10/25)"] == "+0.405 / +0.350"
    assert drow["50/source: 0 / 10 / 25"] == "0.645 / 0.650 / 0.695" and drow["goal (>= -0.01)"] == "met"
    row, drow = summarize_ablation(bad)
    assert drow["worst change @10/25"] == "-0.0200" and drow["goal (>= -0.01)"] == "missed"
    assert row["curves meet (source 50 vs none)"] == "n/a (too few splits to test)"
    out = tmp_path / "agg"
    r = CliRunner().invoke(cli, ["aggregate", str(good), str(bad), "-o", str(out)])
    assert r.exit_code == 0, r.output
    text = (out / "overview.md").read_text()
    assert text.index("| t-bad |") < text.index("| t-good |") and "## The dip" in text
    # a compare folder (or anything else) among ablations is refused, by name
    (tmp_path / "other").mkdir()
    assert not is_ablation_folder(tmp_path / "other")
    r = CliRunner().invoke(cli, ["aggregate", str(good), str(tmp_path / "other"), "-o", str(out)])
    assert r.exit_code == 1 and "mixed folders" in r.output and "other" in r.output


def test_dip_and_transfer_means_are_over_the_shared_splits():
    """A split missing on one side must not move the means away from the paired test."""
    import pandas as pd

    from nasbench_xfer.evaluate.ablation import target_dip, transfer_effects

    rows = [{"source_size": s, "target_size": m, "split": k, "status": "ok", "spearman": 0.5 + 0.1 * k}
            for s in (0, 50) for m in (0, 10) for k in range(10) if (s, m) != (0, 0)]
    runs = pd.DataFrame([r for r in rows if not (r["source_size"] == 50 and r["target_size"] == 10
                                                 and r["split"] == 9)])  # one split missing
    dip = target_dip(runs).iloc[0]
    assert dip["change"] == 0.0 and dip["p"] == 1.0
    eff = transfer_effects(runs).iloc[0]
    assert eff["transfer"] == eff["none"] and eff["diff"] == 0.0
