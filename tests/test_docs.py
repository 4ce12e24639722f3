"""The documentation site builds with ``mkdocs build --strict`` (broken links, a docstring
mkdocstrings cannot resolve or a command mkdocs-click cannot render fail the build), and every
command has its generated page."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_site_builds_strict_with_a_page_per_command(tmp_path):
    pytest.importorskip("mkdocs")
    from nasbench_xfer.cli.main import cli

    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"),
                        "-d", str(site)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    for name in cli.commands:
        page = (site / "commands" / name / "index.html").read_text()
        assert f"nasbench-xfer {name}" in page and "Usage:" in page, name
    api = (site / "site" / "api" / "index.html").read_text()
    for name in ("Store", "TransferPredictor", "HedgedTransferPredictor", "Optimizer", "run_live_search"):
        assert 'id="nasbench_xfer.' in api and name in api, name
    assert (site / "results" / "compare" / "overview" / "index.html").exists()
