"""A third-party optimizer plugin: installed as a package, found through the entry-point group,
run through the CLI. The plugin's code is the example in the README (kept honest by this test)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nasbench_xfer.space import NASNetSpace
from nasbench_xfer.store import Store

REPO = Path(__file__).resolve().parents[1]


def readme_plugin_code() -> str:
    text = (REPO / "README.md").read_text()
    m = re.search(r"<!-- plugin-example -->\s*```python\n(.*?)```", text, re.S)
    assert m, "README lost its plugin example"
    return m.group(1)


def test_readme_plugin_is_short():
    code = [line for line in readme_plugin_code().splitlines() if line.strip()]
    assert len(code) < 30


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("plug") / "s.h5"
    space = NASNetSpace()
    archs = space.sample_many(40, np.random.default_rng(0))
    with Store.create(path, space) as st:
        for task in ("target", "source"):
            st.add_task(task, dataset=task)
            st.append(task, [dict(arch=a, val_metric=float(np.sin(i + len(task))))
                             for i, a in enumerate(archs)])
    return path


def test_installed_plugin_runs_through_the_cli(store_path, tmp_path):
    pkg = tmp_path / "plugin_src"
    (pkg / "my_nas_plugin").mkdir(parents=True)
    (pkg / "my_nas_plugin" / "__init__.py").write_text(readme_plugin_code())
    (pkg / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "my-nas-plugin"\nversion = "0.1"\n'
        '[project.entry-points."nasbench_xfer.optimizers"]\n'
        'source-greedy = "my_nas_plugin:SourceGreedy"\n')
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(pkg)], check=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    listed = subprocess.run([sys.executable, "-c", "from nasbench_xfer.optimizer import list_optimizers;"
                             "print(list_optimizers())"], env=env, capture_output=True, text=True,
                            check=True).stdout
    assert "source-greedy" in listed
    out = subprocess.run([sys.executable, "-m", "nasbench_xfer", "compare", "-s", str(store_path),
                          "-t", "target", "-O", "source-greedy,random", "--budget", "5", "--seeds", "2",
                          "-o", str(tmp_path / "cmp"), "-j", "1"], env=env, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert "| source-greedy |" in out.stdout
    # the same class by module:Class path, without the entry point
    out = subprocess.run([sys.executable, "-m", "nasbench_xfer", "compare", "-s", str(store_path),
                          "-t", "target", "-O", "my_nas_plugin:SourceGreedy", "--budget", "3",
                          "--seeds", "1", "-o", str(tmp_path / "cmp2"), "-j", "1"], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "| source-greedy |" in out.stdout  # labelled by the class's `name`


def test_module_path_plugin_from_the_current_directory_with_the_console_script(store_path, tmp_path):
    """`nasbench-xfer compare -O mine:SourceGreedy` beside mine.py, as the README shows: the
    installed console script does not put the current directory on sys.path, the loader must."""
    script = Path(sys.executable).parent / "nasbench-xfer"
    if not script.exists():
        pytest.skip("the console script is not installed in this environment")
    work = tmp_path / "work"
    work.mkdir()
    (work / "mine.py").write_text(readme_plugin_code())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([str(script), "compare", "-s", str(store_path), "-t", "target",
                          "-O", "mine:SourceGreedy", "--budget", "3", "--seeds", "1",
                          "-o", str(tmp_path / "cmp"), "-j", "1"], cwd=work, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "| source-greedy |" in out.stdout
    missing = subprocess.run([str(script), "compare", "-s", str(store_path), "-t", "target",
                              "-O", "nothere:X", "--budget", "3", "-o", str(tmp_path / "cmp3")],
                             cwd=work, env=env, capture_output=True, text=True)
    assert missing.returncode != 0 and "nothere" in missing.stderr and str(work) in missing.stderr
    assert "Traceback" not in missing.stderr


def test_results_label_a_module_path_by_its_class_name(tmp_path, monkeypatch):
    from nasbench_xfer.optimizer import OptimizerError, optimizer_label, optimizer_labels

    (tmp_path / "labelled_opts.py").write_text(
        "from nasbench_xfer.baselines.random_search import RandomSearch\n"
        "class Named(RandomSearch):\n    name = 'my-search'\n"
        "class Twin(RandomSearch):\n    name = 'my-search'\n"
        "class Unnamed(RandomSearch):\n    name = ''\n"
        "class Shadow(RandomSearch):\n    name = 'nao'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert optimizer_label("labelled_opts:Named") == "my-search"
    assert optimizer_label("labelled_opts:Unnamed") == "labelled_opts:Unnamed"
    assert optimizer_label("labelled_opts:Shadow") == "labelled_opts:Shadow"  # `nao` is another class
    assert optimizer_label("random") == "random"
    assert optimizer_labels(["random", "labelled_opts:Named"]) == {"random": "random",
                                                                 "labelled_opts:Named": "my-search"}
    with pytest.raises(OptimizerError, match="both be labelled 'my-search'"):
        optimizer_labels(["labelled_opts:Named", "labelled_opts:Twin"])
