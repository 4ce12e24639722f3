"""The package installs as nasbench_xfer (with the card's folders namespaced), as a wheel and editable,
and no module of it can be imported under a second name."""
from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# the card's folders import under nasbench_xfer, and no top-level name of theirs exists
CHECK = ("import nasbench_xfer, nasbench_xfer.datasets, nasbench_xfer.baselines, "
         "nasbench_xfer.evaluate, importlib.util as u; "
         "assert [n for n in ('datasets', 'baselines', 'evaluate') if u.find_spec(n)] == []; "
         "print(nasbench_xfer.__file__)")


def _venv(tmp: Path) -> Path:
    """A fresh venv that sees this interpreter's packages (torch etc.) but not this project."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp / "venv")], check=True)
    py = tmp / "venv" / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    parent = sysconfig.get_paths()["purelib"]
    (Path(site) / "_parent.pth").write_text(parent + "\n")
    return py


def _pip(py: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
                    "--no-build-isolation", *args], check=True)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out),
                    str(REPO)], check=True, capture_output=True)
    return next(out.glob("nasbench_xfer-*.whl"))


def test_wheel_namespaces_the_card_folders(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"nasbench_xfer"}, tops
    for sub in ("datasets", "baselines", "evaluate"):
        assert f"nasbench_xfer/{sub}/__init__.py" in names
    assert "nasbench_xfer/py.typed" in names  # type checkers use the package's annotations
    entry = [n for n in names if n.endswith("entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry[0]).decode()
    assert "nasbench-xfer = nasbench_xfer.cli.main:cli" in text


def test_wheel_installs_and_imports(wheel, tmp_path):
    py = _venv(tmp_path)
    _pip(py, str(wheel))
    out = subprocess.run([str(py), "-c", CHECK], cwd=tmp_path, check=True,
                         capture_output=True, text=True).stdout
    assert "site-packages" in out
    help_text = subprocess.run([str(tmp_path / "venv" / "bin" / "nasbench-xfer"), "--help"],
                               check=True, capture_output=True, text=True).stdout
    assert "Transfer NAS toolkit" in help_text


def test_editable_install_imports(tmp_path):
    py = _venv(tmp_path)
    # editable installs write build metadata next to the sources: use a copy of the tree
    src = tmp_path / "src"
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "--cached", "--others",
                            "--exclude-standard"], check=True, capture_output=True,
                           text=True).stdout.split()
    for name in files:
        path = REPO / name
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():  # nasbench_xfer/{datasets,baselines,evaluate} -> the card's folders
            (src / name).symlink_to(path.readlink())
        elif path.is_file():
            (src / name).write_bytes(path.read_bytes())
    _pip(py, "-e", str(src))
    out = subprocess.run([str(py), "-c", CHECK], cwd=tmp_path, check=True,
                         capture_output=True, text=True).stdout
    assert out.strip().startswith(str(src))


def test_one_module_one_name():
    """From a source checkout (repository root on sys.path) the card's folders refuse their bare
    names, and the package does not nest inside itself: every class has exactly one identity."""
    code = ("import importlib, nasbench_xfer.store as s, nasbench_xfer.evaluate.search as e\n"
            "assert importlib.util.find_spec('nasbench_xfer.nasbench_xfer') is None\n"
            "for bare in ('datasets', 'baselines', 'evaluate'):\n"
            "    try:\n"
            "        importlib.import_module(bare)\n"
            "    except ImportError as err:\n"
            "        assert f'import nasbench_xfer.{bare} instead' in str(err), err\n"
            "    else:\n"
            "        raise AssertionError(bare + ' imported under its bare name')\n"
            "assert e.StoreError is s.StoreError\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": ""},
                         check=True, capture_output=True, text=True).stdout
    assert out.strip() == "ok"
