"""The correlation-vs-knowledge ablation (paper section 4.5) on a small synthetic store."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from nasbench_xfer.cli.main import cli
from nasbench_xfer.evaluate.ablation import (
    AblationSpec,
    aggregate,
    correlation_metrics,
    predictor_implementation,
    run_ablation,
)
from nasbench_xfer.space import OPS, NASNetSpace
from nasbench_xfer.store import Store

VALUE = np.random.default_rng(5).normal(size=len(OPS))


def _score(arch, task_term: float) -> float:
    ops = [b.op_a for b in arch.normal + arch.reduction] + [b.op_b for b in arch.normal + arch.reduction]
    return float(sum(VALUE[OPS.index(o)] for o in ops) + task_term * sum(o == "identity" for o in ops))


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("abl") / "s.h5"
    space = NASNetSpace()
    archs = space.sample_many(260, np.random.default_rng(1))
    with Store.create(path, space) as st:
        # src_a disjoint from the target; src_b shares 80 architectures with it (those in a
        # split's held-out set are never source knowledge, so src_b offers 52-54 per split)
        for k, (task, term) in enumerate((("target", 0.5), ("src_a", 0.3), ("src_b", 0.8))):
            st.add_task(task, dataset=task)
            chunk = archs[k * 80:(k + 1) * 80] if task != "target" else archs[160:]
            st.append(task, [dict(arch=a, val_metric=_score(a, term)) for a in chunk])
    return path


def test_correlation_metrics_known_values():
    m = correlation_metrics(np.array([1, 2, 3, 4.0]), np.array([10, 20, 30, 40.0]), ks=(2,))
    assert m["pearson"] == pytest.approx(1) and m["kendall"] == pytest.approx(1)
    assert m["precision@2"] == 1.0
    m = correlation_metrics(np.array([4, 3, 2, 1.0]), np.array([1, 2, 3, 4.0]), ks=(2,))
    assert m["spearman"] == pytest.approx(-1) and m["precision@2"] == 0.0
    assert correlation_metrics(np.ones(4), np.arange(4.0))["pearson"] == 0.0


def test_ablation_grid_is_resumable_and_transfer_helps(store_path, tmp_path):
    spec = AblationSpec(store=str(store_path), target="target", sources=["src_a", "src_b"],
                        source_sizes=[0, 50], target_sizes=[0, 10], splits=2, holdout=30,
                        predictor="xfernas", predictor_options={"epochs": 30, "min_steps": 150})
    results = tmp_path / "runs.jsonl"
    runs = run_ablation(spec, results, jobs=1, progress=False)
    assert len(runs) == 8
    nodata = runs[(runs.source_size == 0) & (runs.target_size == 0)]
    assert (nodata["status"] == "no data").all() and nodata["pearson"].isna().all()
    # zero target knowledge: transfer alone ranks the held-out architectures well
    zero_shot = runs[(runs.source_size == 50) & (runs.target_size == 0)]["spearman"]
    assert zero_shot.mean() > 0.5
    # interrupt: drop the last two lines (and tear one), rerun: only those are recomputed
    lines = results.read_text().splitlines()
    results.write_text("\n".join(lines[:-2]) + "\n" + lines[-2][: len(lines[-2]) // 2])
    again = run_ablation(spec, results, jobs=1, progress=False)
    assert len(again) == 8
    pd.testing.assert_frame_equal(
        runs.drop(columns="fit_seconds").sort_values(["source_size", "target_size", "split"]).reset_index(drop=True),
        again.drop(columns="fit_seconds").sort_values(["source_size", "target_size", "split"]).reset_index(drop=True))
    table = aggregate(again)
    assert {"pearson_mean", "pearson_std", "kendall_mean", "precision@5_mean", "splits"} <= set(table.columns)
    with pytest.raises(ValueError, match="holds results of another ablation"):
        run_ablation(AblationSpec(**{**spec.__dict__, "holdout": 20}), results, progress=False)
    # more splits extend it: only split 2's four cells are fitted, the header says 3 splits,
    # and the first two splits are those of a fresh 3-split run (split k is drawn from k)
    more = AblationSpec(**{**spec.__dict__, "splits": 3})
    extended = run_ablation(more, results, jobs=1, progress=False)
    assert len(extended) == 12 and sorted(set(extended.split)) == [0, 1, 2]
    assert json.loads(results.read_text().splitlines()[0])["spec"]["splits"] == 3
    assert len(results.read_text().splitlines()) == 1 + 12
    fresh = run_ablation(more, tmp_path / "fresh.jsonl", jobs=1, progress=False)
    cols = ["source_size", "target_size", "split", "spearman", "kendall"]
    pd.testing.assert_frame_equal(extended[cols], fresh[cols])
    with pytest.raises(ValueError, match="differs in: splits"):  # fewer would drop results
        run_ablation(spec, results, progress=False)
    # results written before the header named the implementation, when "xfernas" meant the
    # jointly fitted model: never resumed with the hedged default
    row = json.dumps({"target": "target", "predictor": "xfernas", "source_size": 0, "target_size": 0,
                      "split": 0, "status": "no data"}) + "\n"  # (a header alone holds no results)
    legacy = tmp_path / "legacy.jsonl"
    legacy.write_text(json.dumps({"spec": dataclasses.asdict(spec)}) + "\n" + row)
    with pytest.raises(ValueError, match="implemented by nasbench_xfer.predictor.transfer:TransferPredictor"):
        run_ablation(spec, legacy, progress=False)
    # the hedged default's results carry its revision: those of revision 1 (the fixed prior,
    # written without one) are not resumed by revision 2
    assert predictor_implementation("xfernas") == "nasbench_xfer.predictor.hedged:HedgedTransferPredictor@2"
    rev1 = tmp_path / "rev1.jsonl"
    rev1.write_text(json.dumps({"spec": dataclasses.asdict(spec),
                                "implementation": "nasbench_xfer.predictor.hedged:HedgedTransferPredictor"}) + "\n"
                    + row)
    with pytest.raises(ValueError, match="that name now means .*HedgedTransferPredictor@2: use a new output"):
        run_ablation(spec, rev1, progress=False)


def test_ablation_cli_with_a_scikit_learn_surrogate(store_path, tmp_path):
    out = tmp_path / "abl"
    result = CliRunner().invoke(cli, ["ablation", "-s", str(store_path), "-t", "target",
                                      "--predictor", "ridge", "--source-sizes", "0",
                                      "--target-sizes", "0,20,60", "--splits", "3", "--holdout", "30",
                                      "-o", str(out), "-j", "1"])
    assert result.exit_code == 0, result.output
    assert (out / "figure3_pearson.png").exists() and (out / "figure3_pearson.pdf").exists()
    table = json.loads((out / "table.json").read_text())
    by_size = {r["target_size"]: r["pearson_mean"] for r in table}
    assert by_size[60] > by_size[20] and by_size[60] > 0.3
    # figure3 overlays ablations (here: ridge against an ablation with another predictor)
    other = tmp_path / "abl2"
    result = CliRunner().invoke(cli, ["ablation", "-s", str(store_path), "-t", "target", "--predictor", "random-forest",
                                      "--source-sizes", "0", "--target-sizes", "0,20,60", "--splits", "3",
                                      "--holdout", "30", "-o", str(other), "-j", "1"])
    assert result.exit_code == 0, result.output
    stem = tmp_path / "overlay"
    r = CliRunner().invoke(cli, ["figure3", str(out), str(other), "--metric", "kendall", "-o", str(stem)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "overlay.png").exists() and (tmp_path / "overlay.pdf").exists()
    for args, message in ((["--source-sizes", "150"], "source sizes [150] are not in every ablation (shared: [0])"),
                          (["--label", "one"], "1 --label for 2 ablation folders"),
                          ([], "")):
        folders = [str(out), str(tmp_path)] if not args else [str(out), str(other)]
        r = CliRunner().invoke(cli, ["figure3", *folders, *args, "-o", str(stem)])
        assert r.exit_code == 1 and (message or "has no runs.jsonl") in r.output, r.output
    # one folder redrawn with another band, without a refit
    r = CliRunner().invoke(cli, ["figure3", str(out), "--band", "se", "-o", str(tmp_path / "se")])
    assert r.exit_code == 0 and (tmp_path / "se.png").exists(), r.output


def test_figure3_names_predictor_splits_and_band(tmp_path):
    from nasbench_xfer.cli.analysis_cmds import FIGURE3_BAND_NAMES
    from nasbench_xfer.evaluate.ablation import FIGURE3_BANDS, plot_figure3

    assert tuple(FIGURE3_BANDS) == FIGURE3_BAND_NAMES
    rows = [{"target": "jigsaw", "predictor": p, "source_size": s, "target_size": m, "split": k,
             "status": "ok" if s or m else "no data", "spearman": 0.1 * m / 25 + 0.001 * s + 0.01 * k}
            for p in ("xfernas", "nao") for s in (0, 50) for m in (0, 10, 25) for k in range(4)]
    runs = pd.DataFrame(rows)
    one = plot_figure3({"xfernas": runs[runs.predictor == "xfernas"]}, tmp_path / "one", band="se")
    assert "target jigsaw; predictor xfernas" in one and "mean over 4 splits" in one
    assert "± 1 standard error of the mean over splits" in one
    both = plot_figure3({"a": runs[runs.predictor == "xfernas"], "b": runs[runs.predictor == "nao"]},
                        tmp_path / "both", source_sizes=[50], band="ci")
    assert "predictor a, b" in both and "95% bootstrap interval" in both
    assert (tmp_path / "both.png").exists() and (tmp_path / "both.pdf").exists()
    with pytest.raises(ValueError, match="unknown band 'iqr'"):
        plot_figure3({"a": runs}, tmp_path / "x", band="iqr")
    with pytest.raises(ValueError, match="ablation 'a' has no kendall"):
        plot_figure3({"a": runs}, tmp_path / "x", metric="kendall")


@pytest.mark.parametrize("args, message", [
    (["-t", "nope"], "task 'nope' is not in"),
    (["-t", "target", "--target-sizes", "0,90"],
     "has 100 evaluated architectures; holdout 50 + target size 90 needs 140"),
    (["-t", "target", "--target-sizes", "0", "--predictor", "magic"], "unknown predictor 'magic'"),
    (["-t", "target", "--target-sizes", "0", "--source-sizes", "0,1000"],
     "evaluated architectures outside the held-out set of split 0, fewer than the source size 1000"),
    (["-t", "target", "--target-sizes", "0", "--predictor", "ridge", "--option", "alpha=3"],
     "predictor 'ridge' with options {'alpha': 3}: "),
    (["-t", "target", "--source-sizes", "a,b"], "Invalid value for --source-sizes: expected comma-separated"),
])
def test_ablation_cli_bad_input(store_path, tmp_path, args, message):
    """Found before any fit: nothing is written (so the folder stays usable)."""
    result = CliRunner().invoke(cli, ["ablation", "-s", str(store_path), "--splits", "1", "-j", "1",
                                      "--source-sizes", "0", "-o", str(tmp_path / "x"), *args])
    assert result.exit_code != 0
    assert message in result.output
    assert not (tmp_path / "x").exists()


def test_ablation_resume_names_a_damaged_results_file(store_path, tmp_path):
    """A damaged header or result line (not the torn last line of an interruption) is named,
    file and line, by the resume and by the readers: no traceback, no silently recomputed cell."""
    base = ["ablation", "-s", str(store_path), "-t", "target", "--predictor", "ridge", "--source-sizes", "0,20",
            "--target-sizes", "0,20", "--splits", "2", "--holdout", "30", "-j", "1"]
    out = tmp_path / "abl"
    assert CliRunner().invoke(cli, base + ["-o", str(out)]).exit_code == 0
    good = (out / "runs.jsonl").read_text().splitlines()
    cases = {"list header": (["[1, 2]", *good[1:]], "line 1 is not an ablation header"),
             "text header": (["{spec: 1}", *good[1:]], "line 1 is not JSON"),
             "foreign row": ([good[0], '{"foo": 1}', *good[2:]], "line 2 is not an ablation result"),
             "torn middle": ([good[0], good[1][:20], *good[2:]], "line 2 is not JSON")}
    for what, (lines, message) in cases.items():
        (out / "runs.jsonl").write_text("\n".join(lines) + "\n")
        r = CliRunner().invoke(cli, base + ["-o", str(out)])
        assert r.exit_code == 1 and message in r.output and "runs.jsonl" in r.output, (what, r.output)
        assert "Traceback" not in r.output and (out / "runs.jsonl").read_text() == "\n".join(lines) + "\n"
    r = CliRunner().invoke(cli, ["figure3", str(out), "-o", str(tmp_path / "fig")])
    assert r.exit_code == 1 and "line 2 is not JSON" in r.output


def test_ablation_results_with_a_torn_last_line_still_read_and_a_header_alone_is_no_result(store_path, tmp_path):
    base = ["ablation", "-s", str(store_path), "-t", "target", "--predictor", "ridge", "--source-sizes", "0,20",
            "--target-sizes", "0,20", "--splits", "2", "--holdout", "30", "-j", "1"]
    out = tmp_path / "abl"
    out.mkdir()
    (out / "runs.jsonl").write_text(json.dumps({"spec": {"predictor": "other"}}) + "\n")  # a header alone
    assert CliRunner().invoke(cli, base + ["-o", str(out)]).exit_code == 0
    with open(out / "runs.jsonl", "a") as fh:
        fh.write('{"target": "target", "source_size"')  # an interrupted write
    for args in (["figure3", str(out), "-o", str(tmp_path / "deeper" / "fig")],
                 ["aggregate", str(out), "-o", str(tmp_path / "agg")]):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 0, (args, r.output)
    assert (tmp_path / "deeper" / "fig.png").exists()
