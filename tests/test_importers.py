"""Importers (NAS-Bench-Graph, TransNAS-Bench-101 micro, CSV) and their CLI commands."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nasbench_xfer.cli.main import cli
from nasbench_xfer.importers import ImporterError, import_csv, import_nas_bench_graph, import_transnas
from nasbench_xfer.space import GraphArch, get_space
from nasbench_xfer.store import Store, StoreError

nbg = pytest.importorskip("nas_bench_graph")

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TRANSNAS_ZIP = SHARED / "transnas-bench-101-micro" / "naslib-zc-transbench101-micro.zip"
NB201_A = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
NB201_B = "|none~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|none~1|avg_pool_3x3~2|"


def _check_provenance(prov: dict, source_word: str) -> None:
    for key in ("source", "command", "package_version", "date", "hostname"):
        assert prov.get(key), key
    assert source_word in prov["source"]


# ------------------------------------------------------------ NAS-Bench-Graph
def test_nas_bench_graph_proteins_separate(tmp_path):
    out = tmp_path / "prot.h5"
    res = import_nas_bench_graph(out, ["proteins"], proteins="separate")
    assert res.stores == {"nas_bench_graph_proteins": out} and res.rows == {"proteins": 2021}
    table = nbg.light_read("proteins")
    with Store.open(out) as st:
        assert st.space == get_space("nas_bench_graph", {"ops": ["gcn", "sage", "arma", "fc", "skip"]})
        assert st.num_archs == 2021 and st.tasks == ["proteins"]
        info = st.task_info("proteins")
        assert info["metric"] == "roc_auc" and info["extra_columns"] == ["latency"]
        _check_provenance(info["provenance"], "NAS-Bench-Graph")
        _check_provenance(st.attrs["provenance"], "NAS-Bench-Graph")
        assert st.attrs["provenance"]["source_package_version"] == nbg_version()
        df = st.evaluations("proteins")
        archs = st.archs(df["arch_id"])
        for i in (0, 100, 2020):
            key = st.space.table_key(archs[i])
            row = table[key]
            assert df["val_metric"][i] == pytest.approx(row["valid_perf"])
            assert df["test_metric"][i] == pytest.approx(row["perf"])
            assert df["params"][i] == pytest.approx(row["para"] * 1e6)
            assert df["latency"][i] == pytest.approx(row["latency"])
        # lookup of a raw (non-canonical) spec goes through the dense map
        raw = GraphArch((0, 0, 0, 2), ("gcn", "sage", "arma", "fc"))
        key = nbg.Arch([0, 0, 0, 2], ["gcn", "sage", "arma", "fc"]).valid_hash()
        assert st.lookup("proteins", [raw])[0] == pytest.approx(table[key]["valid_perf"])
        assert st.validate() == []
        # the same network has the same hash in the 5-op store as in the 9-op space
        nine = get_space("nas_bench_graph")
        assert [st.space.hash(a) for a in archs[:50]] == [nine.hash(a) for a in archs[:50]]
        assert list(df["hash"][:50]) == [nine.hash(a) for a in archs[:50]]


def test_a_graph_subset_store_with_the_old_op_list_hashes_is_refused(tmp_path, monkeypatch):
    """Before the hash rule took the 9-op ids, a subset store's hashes depended on its op list:
    opening one is a clear error asking for a re-import, not a store whose lookups find nothing."""
    from nasbench_xfer.space.base import SearchSpace
    from nasbench_xfer.space.graph import GraphSpace

    out = tmp_path / "old.h5"
    with monkeypatch.context() as m:
        m.setattr(GraphSpace, "hash", SearchSpace.hash)
        import_nas_bench_graph(out, ["proteins"], proteins="separate")
    before = out.read_bytes()
    with pytest.raises(StoreError, match="older nasbench_xfer whose architecture hashes .* Re-import"):
        Store.open(out)
    assert out.read_bytes() == before
    # a subset whose first architecture hashes alike under both rules ('gat' keeps id 0): every
    # architecture is checked, not the first
    subset = get_space("nas_bench_graph", {"ops": ["gat", "sage", "skip"]})
    same = GraphArch((0, 0, 0, 0), ("gat", "gat", "gat", "gat"))
    other = GraphArch((0, 0, 1, 2), ("gat", "sage", "sage", "skip"))
    assert SearchSpace.hash(subset, same) == subset.hash(same) and SearchSpace.hash(subset, other) != subset.hash(other)
    with monkeypatch.context() as m:
        m.setattr(GraphSpace, "hash", SearchSpace.hash)
        with Store.create(tmp_path / "first.h5", subset) as st:
            st.add_task("t", dataset="d")
            st.append("t", [{"arch": same, "val_metric": 0.5}, {"arch": other, "val_metric": 0.7}])
    with pytest.raises(StoreError, match="older nasbench_xfer"):
        Store.open(tmp_path / "first.h5")
    with Store.create(tmp_path / "new.h5", subset) as st:   # written with the new rule: opens
        st.add_task("t", dataset="d")
        st.append("t", [{"arch": same, "val_metric": 0.5}, {"arch": other, "val_metric": 0.7}])
    with Store.open(tmp_path / "new.h5") as st:
        assert st.num_archs == 2 and st.validate() == []


def nbg_version() -> str:
    import importlib.metadata
    return importlib.metadata.version("nas-bench-graph")


def test_nas_bench_graph_cora_and_proteins_included(tmp_path):
    out = tmp_path / "nbg.h5"
    res = import_nas_bench_graph(out, ["cora", "proteins"])
    assert res.rows == {"cora": 26206, "proteins": 2021}
    cora = nbg.light_read("cora")
    with Store.open(out) as st:
        assert st.space == get_space("nas_bench_graph") and st.num_archs == 26206
        assert st.tasks == ["cora", "proteins"]
        files = st.attrs["provenance"]["source_files"]  # the tables read, with their digests
        assert set(files) == {"cora", "proteins"}
        assert files["cora"]["sha256"] == hashlib.sha256(Path(files["cora"]["file"]).read_bytes()).hexdigest()
        assert st.task_info("cora")["metric"] == "accuracy"
        assert st.task_info("proteins")["info"]["ops_evaluated"] == ["gcn", "sage", "arma", "fc", "skip"]
        # every table key appears once with its values
        df = st.evaluations("cora")
        keys = np.array([st.space.table_key(a) for a in st.archs(df["arch_id"])])
        assert len(set(keys.tolist())) == 26206 == len(cora)
        expect = np.array([cora[k]["valid_perf"] for k in keys.tolist()])
        assert np.allclose(df["val_metric"].to_numpy(), expect)
        a = GraphArch((0, 1, 2, 3), ("gcn", "gat", "sage", "skip"))
        k = nbg.Arch([0, 1, 2, 3], ["gcn", "gat", "sage", "skip"]).valid_hash()
        assert st.lookup("cora", [a], "test_metric")[0] == pytest.approx(cora[k]["perf"])
        # proteins: 5-op architectures have values, others NaN
        vals = st.lookup("proteins", [GraphArch((0, 1, 2, 3), ("gcn", "sage", "arma", "fc")), a])
        assert not np.isnan(vals[0]) and np.isnan(vals[1])


def test_nas_bench_graph_errors(tmp_path):
    with pytest.raises(ImporterError, match="unknown NAS-Bench-Graph dataset"):
        import_nas_bench_graph(tmp_path / "x.h5", ["coraa"])
    with pytest.raises(ImporterError, match="proteins must be one of"):
        import_nas_bench_graph(tmp_path / "x.h5", ["proteins"], proteins="maybe")
    (tmp_path / "exists.h5").write_bytes(b"old")
    with pytest.raises(ImporterError, match="already exists"):
        import_nas_bench_graph(tmp_path / "exists.h5", ["proteins"], proteins="separate")
    assert (tmp_path / "exists.h5").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.h5"]  # nothing left behind


@pytest.mark.slow
def test_nas_bench_graph_all(tmp_path):
    res = import_nas_bench_graph(tmp_path / "all.h5", proteins="separate")
    assert len(res.rows) == 9 and res.rows["arxiv"] == 26206
    assert res.stores["nas_bench_graph_proteins"] == tmp_path / "all-proteins.h5"


# --------------------------------------------------------------- TransNAS
def test_transnas_import(tmp_path):
    assert TRANSNAS_ZIP.is_file(), f"shared data missing: {TRANSNAS_ZIP}"
    out = tmp_path / "tn.h5"
    res = import_transnas(out, TRANSNAS_ZIP)
    assert res.rows == {t: 4096 for t in ("class_scene", "class_object", "jigsaw", "room_layout",
                                          "segmentsemantic", "normal", "autoencoder")}
    with Store.open(out) as st:
        space = st.space
        assert space.name == "transnas_micro" and st.num_archs == 4096
        assert len(st.tasks) == 7
        assert st.attrs["provenance"]["source_file_sha256"] == hashlib.sha256(TRANSNAS_ZIP.read_bytes()).hexdigest()
        room = st.task_info("room_layout")
        assert room["metric"] == "neg_l2_loss" and room["higher_is_better"]
        assert st.task_info("normal")["metric"] == "ssim"
        assert [st.task_info(t)["num_classes"] for t in ("class_object", "class_scene", "jigsaw", "normal")] == \
            [75, 47, 1000, -1]
        _check_provenance(room["provenance"], "TransNAS-Bench-101")
        df = st.evaluations("class_scene")
        # the export's Zen sentinel -1e8 ("could not score") becomes NaN; every other cell has a score
        assert df["test_metric"].isna().all() and df["zen_score"].isna().sum() == 169
        assert df["zen_score"].min() > -1e6
        assert len(set(df["arch_id"])) == 4096
        # ids are dense indices
        assert st.archs([5]) == [space.from_dense_index(5)]
        # a value from the zip: the first entry of class_scene--1000.json
        a = space.from_string("(1, 3, 0, 3, 2, 1)")
        assert st.lookup("class_scene", [a])[0] == pytest.approx(52.950836181640625)
        rl = st.evaluations("room_layout")["val_metric"]
        assert (rl < 0).all()
        assert st.validate() == []


def test_transnas_errors(tmp_path):
    with pytest.raises(ImporterError, match="not found"):
        import_transnas(tmp_path / "x.h5", tmp_path / "missing.zip")
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ImporterError, match="not a zip"):
        import_transnas(tmp_path / "x.h5", bad)
    with pytest.raises(ImporterError, match="unknown TransNAS-Bench-101 task"):
        import_transnas(tmp_path / "x.h5", TRANSNAS_ZIP, tasks=["segmentation"])


# --------------------------------------------------------------------- CSV
def _write_csv(path: Path) -> Path:
    path.write_text(
        "arch,c10,c100,lat\n"
        f"{NB201_A},91.5,70.25,0.01\n"
        f"{NB201_B},60.0,,0.02\n"
        f"{NB201_A},91.7,70.75,0.011\n")
    return path


def test_csv_import(tmp_path):
    csv = _write_csv(tmp_path / "t.csv")
    out = tmp_path / "t.h5"
    res = import_csv(csv, out, arch_column="arch", task_columns={"cifar10": "c10", "cifar100": "c100"},
                     extra_columns=["lat"], source="a test table")
    assert res.rows == {"cifar10": 3, "cifar100": 2}
    with Store.open(out) as st:
        assert st.space.name == "nb201" and st.num_archs == 2
        a = st.space.from_string(NB201_A)
        assert st.lookup("cifar10", [a])[0] == pytest.approx(91.6)  # two seeds averaged
        df = st.evaluations("cifar10", spec=True)
        assert df["seed"].tolist() == [0, 0, 1]
        assert df["spec"][0] == NB201_A
        assert df["lat"].tolist() == pytest.approx([0.01, 0.02, 0.011])
        prov = st.task_info("cifar100")["provenance"]
        _check_provenance(prov, "a test table")
        assert prov["metric_column"] == "c100"


def test_csv_other_space_and_errors(tmp_path):
    csv = tmp_path / "g.csv"
    csv.write_text('arch;score\n{"links":[0,0,0,2],"ops":["gcn","gat","sage","skip"]};0.8\n', )
    import_csv(csv, tmp_path / "g.h5", arch_column="arch", task_columns={"t": "score"},
               space="nas_bench_graph", sep=";")
    with Store.open(tmp_path / "g.h5") as st:
        assert st.space.name == "nas_bench_graph"
        assert st.lookup("t", [GraphArch((0, 0, 0, 2), ("gcn", "gat", "sage", "skip"))])[0] == 0.8
    csv = _write_csv(tmp_path / "t.csv")
    with pytest.raises(ImporterError, match=r"no column\(s\) \['nope'\]"):
        import_csv(csv, tmp_path / "x.h5", arch_column="arch", task_columns={"t": "nope"})
    with pytest.raises(ImporterError, match="unknown operation 'avg_pool_3x3'"):
        import_csv(csv, tmp_path / "x.h5", arch_column="arch", task_columns={"t": "c10"},
                   space="transnas_micro")
    bad = tmp_path / "bad.csv"
    bad.write_text(f"arch,c10\n{NB201_A},91\n{NB201_B},abc\n")
    with pytest.raises(ImporterError, match="line 3: 'abc'"):
        import_csv(bad, tmp_path / "x.h5", arch_column="arch", task_columns={"t": "c10"})
    bad.write_text(f"arch,c10\n{NB201_A},91\n|none~0|+|none~0|,50\n")
    with pytest.raises(ImporterError, match="line 3: nb201: expected 3 node groups"):
        import_csv(bad, tmp_path / "x.h5", arch_column="arch", task_columns={"t": "c10"})
    with pytest.raises(ImporterError, match=r"dataset names \(--dataset\) given for task\(s\) \['c100'\] that have "
                                            r"no metric column \(tasks: t\)"):
        import_csv(csv, tmp_path / "x.h5", arch_column="arch", task_columns={"t": "c10"}, datasets={"c100": "x"})
    bad.write_text(f"arch,c10,c10\n{NB201_A},91,12\n")  # which c10 is meant?
    with pytest.raises(ImporterError, match=r"the header names column\(s\) \['c10'\] more than once"):
        import_csv(bad, tmp_path / "x.h5", arch_column="arch", task_columns={"t": "c10"})
    assert not (tmp_path / "x.h5").exists()
    with pytest.raises(StoreError, match="space must be a SearchSpace .* got str 'nb201'"):
        Store.create(tmp_path / "y.h5", "nb201")
    assert not list(tmp_path.glob("y.h5*"))  # no store, no lock file


# --------------------------------------------------------------------- CLI
def test_cli_import_help():
    runner = CliRunner()
    for args in (["import", "--help"], ["import", "nas-bench-graph", "--help"],
                 ["import", "transnas", "--help"], ["import", "csv", "--help"]):
        r = runner.invoke(cli, args)
        assert r.exit_code == 0, r.output
    assert "proteins" in runner.invoke(cli, ["import", "nas-bench-graph", "--help"]).output


def test_cli_import_csv(tmp_path):
    csv = _write_csv(tmp_path / "t.csv")
    runner = CliRunner()
    out = tmp_path / "c.h5"
    r = runner.invoke(cli, ["import", "csv", "--csv", str(csv), "--arch-column", "arch",
                            "--task-column", "cifar10=c10", "--task-column", "cifar100=c100",
                            "--extra-column", "lat", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "cifar100: 2 evaluations" in r.output
    with Store.open(out) as st:
        cmd = st.attrs["provenance"]["command"]
        assert "import csv" in cmd and "--task-column cifar10=c10" in cmd
    # existing output, bad mapping, unknown space: clean errors
    r = runner.invoke(cli, ["import", "csv", "--csv", str(csv), "--arch-column", "arch",
                            "--task-column", "cifar10=c10", "--out", str(out)])
    assert r.exit_code == 1 and "already exists" in r.output and "Traceback" not in r.output
    r = runner.invoke(cli, ["import", "csv", "--csv", str(csv), "--arch-column", "arch",
                            "--task-column", "cifar10", "--out", str(tmp_path / "d.h5")])
    assert r.exit_code == 2 and "TASK=COLUMN" in r.output
    r = runner.invoke(cli, ["import", "csv", "--csv", str(csv), "--arch-column", "arch",
                            "--task-column", "t=c10", "--space", "nope", "--out", str(tmp_path / "d.h5")])
    assert r.exit_code == 2 and "unknown space" in r.output


def test_cli_import_nas_bench_graph_and_transnas(tmp_path):
    runner = CliRunner()
    r = runner.invoke(cli, ["import", "nas-bench-graph", "-d", "proteins", "--proteins", "separate",
                            "--out", str(tmp_path / "p.h5")])
    assert r.exit_code == 0, r.output
    assert "proteins: 2021 evaluations" in r.output
    r = runner.invoke(cli, ["import", "nas-bench-graph", "-d", "cora,nope", "--out", str(tmp_path / "q.h5")])
    assert r.exit_code == 2 and "unknown dataset" in r.output
    r = runner.invoke(cli, ["import", "transnas", "--zip", str(TRANSNAS_ZIP), "-t", "jigsaw",
                            "--out", str(tmp_path / "tn.h5")])
    assert r.exit_code == 0, r.output
    with Store.open(tmp_path / "tn.h5") as st:
        assert st.tasks == ["jigsaw"]
        assert json.dumps(st.attrs["provenance"])
    r = runner.invoke(cli, ["import", "transnas", "--zip", str(tmp_path / "none.zip"),
                            "--out", str(tmp_path / "tn2.h5")])
    assert r.exit_code == 1 and "not found" in r.output
