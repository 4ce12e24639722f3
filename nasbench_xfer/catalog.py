"""Known benchmarks by name, and the one-line loader.

``nasbench_xfer.load(name_or_path)`` returns an open (read-only) :class:`~nasbench_xfer.store.Store`:

* a path to a store file opens it;
* a known benchmark name (:data:`KNOWN`; ``nasbench-xfer benchmarks`` lists them with
  source, licence, BibTeX and what importing needs) opens the imported store cached
  under the data home, importing it the first time.

Data home: ``$NASBENCH_XFER_HOME`` if set, else the platform's user data folder
(``platformdirs.user_data_dir("nasbench_xfer")``, e.g. ``~/.local/share/nasbench_xfer``
on Linux).  Nothing is downloaded here: each importer reads what its entry names (a
PyPI package that ships the data, or a local file), and says what is missing.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Benchmark", "KNOWN", "data_home", "load", "cached_path"]

HOME_ENV = "NASBENCH_XFER_HOME"


@dataclass(frozen=True)
class Benchmark:
    """What a known benchmark is and how it is imported into a store."""

    name: str
    title: str
    space: str
    tasks: str
    source: str
    licence: str
    bibtex: str
    needs: str
    importer: Callable[[Path, str | None], None]   # (out, source file or None) -> writes the store


def _import_transnas(out: Path, source: str | None) -> None:
    from .importers.transnas import default_transnas_zip, import_transnas
    zip_path = source or default_transnas_zip()
    if zip_path is None or not Path(zip_path).is_file():
        raise FileNotFoundError(
            "transnas-micro needs NASLib's TransNAS-Bench-101 micro export "
            "(naslib-zc-transbench101-micro.zip): pass source=PATH (CLI: --source PATH)"
            + (f"; not found: {zip_path}" if zip_path else ""))
    import_transnas(out, zip_path)


def _import_nbg(out: Path, source: str | None) -> None:
    from .importers import import_nas_bench_graph
    if source is not None:
        raise ValueError("nas-bench-graph is read from the installed nas-bench-graph package; it takes no source")
    import_nas_bench_graph(out)


KNOWN: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark(
        name="transnas-micro",
        title="TransNAS-Bench-101, micro (cell) space",
        space="transnas_micro: 4-node cell, 6 edges, 4 operations (4,096 cells)",
        tasks="7: class_scene, class_object, jigsaw, room_layout, segmentsemantic, normal, autoencoder "
              "(validation metric only: the export has no test metric)",
        source="https://github.com/yawen-d/TransNASBench (as exported by the NASLib project)",
        licence="the NASLib export is distributed under Apache-2.0",
        bibtex="""@inproceedings{duan2021transnas,
  title     = {TransNAS-Bench-101: Improving Transferability and Generalizability of Cross-Task Neural Architecture Search},
  author    = {Duan, Yawen and Chen, Xin and Xu, Hang and Chen, Zewei and Liang, Xiaodan and Zhang, Tong and Li, Zhenguo},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2021}
}""",
        needs="the local file naslib-zc-transbench101-micro.zip (found automatically in ../shared/data)",
        importer=_import_transnas),
    Benchmark(
        name="nas-bench-graph",
        title="NAS-Bench-Graph",
        space="nas_bench_graph: 4 GNN layers, 9 link patterns x 9 operations (26,206 architectures)",
        tasks="9 graph datasets: cora, citeseer, pubmed, cs, physics, photo, computers, arxiv, proteins",
        source="https://pypi.org/project/nas-bench-graph/",
        licence="see the nas-bench-graph package (it ships the data)",
        bibtex="""@inproceedings{qin2022nasbenchgraph,
  title     = {{NAS-Bench-Graph}: Benchmarking Graph Neural Architecture Search},
  author    = {Qin, Yijian and Zhang, Ziwei and Wang, Xin and Zhang, Zeyang and Zhu, Wenwu},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS), Datasets and Benchmarks Track},
  year      = {2022}
}""",
        needs="the nas-bench-graph package (a dependency of nasbench_xfer)",
        importer=_import_nbg),
)}


def data_home(home: str | os.PathLike | None = None) -> Path:
    """``home``, else ``$NASBENCH_XFER_HOME``, else the platform's user data folder."""
    if home is not None:
        return Path(home).expanduser()
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    import platformdirs
    return Path(platformdirs.user_data_dir("nasbench_xfer"))


def cached_path(name: str, home: str | os.PathLike | None = None) -> Path:
    """Where the imported store of a known benchmark lives (whether or not it exists yet)."""
    if name not in KNOWN:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(sorted(KNOWN))}")
    return data_home(home) / f"{name}.h5"


def load(name_or_path: str | os.PathLike, *, home: str | os.PathLike | None = None,
         source: str | None = None, reimport: bool = False):
    """An open, read-only store: a store file, or a known benchmark (imported once, then cached).

    ``source`` is the file a known benchmark's importer reads where it needs one;
    ``reimport`` imports again over the cached store.
    """
    from .store import Store
    text = str(name_or_path)
    if text not in KNOWN:
        path = Path(text).expanduser()
        if path.is_file():
            return Store.open(path)
        raise FileNotFoundError(f"{text!r} is neither a store file nor a known benchmark "
                                f"(known: {', '.join(sorted(KNOWN))})")
    path = cached_path(text, home)
    if reimport or not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        if reimport and path.is_file():
            path.unlink()
        KNOWN[text].importer(path, source)
    return Store.open(path)
