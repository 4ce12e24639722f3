"""Known benchmarks and the one-line loader: import once into the data home, then open the cache."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import nasbench_xfer
from nasbench_xfer.catalog import KNOWN, cached_path, data_home
from nasbench_xfer.cli.main import cli

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TRANSNAS_ZIP = SHARED / "transnas-bench-101-micro" / "naslib-zc-transbench101-micro.zip"


def test_load_imports_once_then_opens_the_cache(tmp_path):
    home = tmp_path / "home"
    with nasbench_xfer.load("transnas-micro", home=home, source=str(TRANSNAS_ZIP)) as st:
        assert st.space.name == "transnas_micro" and len(st.tasks) == 7 and st.num_archs == 4096
    path = cached_path("transnas-micro", home)
    mtime = path.stat().st_mtime_ns
    with nasbench_xfer.load("transnas-micro", home=home) as st:   # cached: no source needed, no import
        assert st.path.resolve() == path.resolve()
    assert path.stat().st_mtime_ns == mtime
    with nasbench_xfer.load(path) as st:                             # a path opens the store
        assert "jigsaw" in st.tasks


def test_load_errors_name_the_problem(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="neither a store file nor a known benchmark.*transnas-micro"):
        nasbench_xfer.load("nas-bench-999", home=tmp_path)
    with pytest.raises(FileNotFoundError, match="pass source=PATH"):
        nasbench_xfer.load("transnas-micro", home=tmp_path, source=str(tmp_path / "missing.zip"))
    assert not cached_path("transnas-micro", tmp_path).exists()      # nothing half-written left
    monkeypatch.setenv("NASBENCH_XFER_HOME", str(tmp_path / "env"))
    assert data_home() == tmp_path / "env"
    with pytest.raises(KeyError, match="unknown benchmark"):
        cached_path("nope")


def test_benchmarks_command_lists_and_cites(tmp_path):
    r = CliRunner().invoke(cli, ["benchmarks", "--home", str(tmp_path)])
    assert r.exit_code == 0 and all(name in r.output for name in KNOWN), r.output
    r = CliRunner().invoke(cli, ["benchmarks", "transnas-micro", "--home", str(tmp_path)])
    assert r.exit_code == 0 and "@inproceedings{duan2021transnas" in r.output and "licence" in r.output
    r = CliRunner().invoke(cli, ["benchmarks", "--json", "--home", str(tmp_path)])
    assert {e["name"] for e in json.loads(r.output)} == set(KNOWN)
    r = CliRunner().invoke(cli, ["benchmarks", "transnas-micro", "--import", "--home", str(tmp_path),
                                 "--source", str(TRANSNAS_ZIP)])
    assert r.exit_code == 0 and "7 tasks, 4096 architectures" in r.output, r.output
    r = CliRunner().invoke(cli, ["benchmarks", "nope"])
    assert r.exit_code == 1 and "unknown benchmark 'nope'" in r.output
    text = tmp_path / "not-a-zip.txt"
    text.write_text("hello")
    r = CliRunner().invoke(cli, ["benchmarks", "transnas-micro", "--import", "--home", str(tmp_path / "h2"),
                                 "--source", str(text)])
    assert r.exit_code == 1 and "is not a zip file" in r.output and r.exception is None or \
        isinstance(r.exception, SystemExit), r.output
