"""Import TransNAS-Bench-101 micro (Duan et al., CVPR 2021) from NASLib's zero-cost export.

Source: the zip ``naslib-zc-transbench101-micro.zip`` (``../shared/data/transnas-bench-101-micro/``
of the project by default) holding ``zen/benchmark--transbench101_micro--<task>--<offset>.json``
files, each a list of ``{idx, arch: "(o1, ..., o6)", zen: {score, time}, val_accuracy}``.

Store: space ``transnas_micro`` (4,096 cells, ids = dense index), one task per
benchmark task, one evaluation per cell:

* ``val_metric`` = ``val_accuracy``: the task's validation metric (below; higher is
  better for all tasks, so ``higher_is_better=True`` everywhere)
* ``test_metric``: NaN (the export has no test metric), ``params``: NaN
* extra column ``zen_score``: the export's Zen-NAS zero-cost proxy score of the
  *untrained* network, not a trained result (useful as a baseline feature); the
  export's failure sentinel ``-1e8`` (169 cells per task) is stored as NaN

=================  =========================================================
task               val_metric
=================  =========================================================
class_scene        top-1 accuracy in percent (scene classification)
class_object       top-1 accuracy in percent (object classification)
jigsaw             top-1 accuracy in percent (jigsaw permutation classification)
room_layout        negative L2 loss (room layout regression)
segmentsemantic    pixel accuracy in percent (semantic segmentation)
normal             SSIM (surface normal prediction)
autoencoder        SSIM (image reconstruction)
=================  =========================================================

(The metric of each task is the one NASLib's TransNAS-Bench-101 API reports as
validation accuracy: ``valid_top1``, ``valid_neg_loss``, ``valid_acc``, ``valid_ssim``.)
"""
from __future__ import annotations

import json
import math
import os
import re
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..space import SpaceError
from ..space.edge import TransNASMicroSpace
from ..store import provenance
from ..store.schema import file_sha256
from . import ImporterError, ImportResult, building_store, default_command

ZIP_NAME = "naslib-zc-transbench101-micro.zip"
DATA_SUBDIR = Path("shared") / "data" / "transnas-bench-101-micro" / ZIP_NAME

#: task -> (metric name, description)
TASKS: dict[str, tuple[str, str]] = {
    "class_scene": ("top1_accuracy", "scene classification, top-1 accuracy in percent"),
    "class_object": ("top1_accuracy", "object classification, top-1 accuracy in percent"),
    "jigsaw": ("top1_accuracy", "jigsaw permutation classification, top-1 accuracy in percent"),
    "room_layout": ("neg_l2_loss", "room layout regression, negative L2 loss (higher is better)"),
    "segmentsemantic": ("pixel_accuracy", "semantic segmentation, pixel accuracy in percent"),
    "normal": ("ssim", "surface normal prediction, SSIM (higher is better)"),
    "autoencoder": ("ssim", "image reconstruction (autoencoder), SSIM (higher is better)"),
}
#: classes of the classification tasks, as TransNAS-Bench-101's own training configurations set
#: them (``target_dim``: 75 selected object classes, 47 selected scene classes, 1000 jigsaw
#: permutations; NASLib's search space builds heads of 100 and 63); the other tasks store -1
NUM_CLASSES = {"class_object": 75, "class_scene": 47, "jigsaw": 1000}
NASLIB_METRIC = {"class_scene": "valid_top1", "class_object": "valid_top1", "jigsaw": "valid_top1",
                 "room_layout": "valid_neg_loss", "segmentsemantic": "valid_acc",
                 "normal": "valid_ssim", "autoencoder": "valid_ssim"}

SOURCE = ("TransNAS-Bench-101 micro (Duan et al., CVPR 2021) as exported by NASLib "
          "(zero-cost benchmark files, Apache-2.0)")
_FILE_RE = re.compile(r"(?:^|/)benchmark--transbench101_micro--(?P<task>[a-z_]+)--(?P<offset>\d+)\.json$")

#: NASLib writes -100000000.0 as the Zen score of cells it could not score
ZEN_FAILED = -1e8


def default_transnas_zip() -> Path | None:
    """The shared copy of the zip: ``../shared/data/...`` from the working directory or the project root."""
    root = Path(__file__).resolve().parents[2]
    for base in (Path.cwd().parent, root.parent):
        p = base / DATA_SUBDIR
        if p.is_file():
            return p
    return None


def read_transnas_zip(path: str | os.PathLike, tasks: Sequence[str] | None = None,
                      space: TransNASMicroSpace | None = None) -> dict[str, dict[int, tuple[float, float]]]:
    """``{task: {dense_index: (val_accuracy, zen_score)}}`` from the export zip."""
    space = space or TransNASMicroSpace()
    path = Path(path)
    if not path.is_file():
        raise ImporterError(f"TransNAS-Bench-101 zip not found at {path}")
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ImporterError(f"{path} is not a zip file") from None
    out: dict[str, dict[int, tuple[float, float]]] = {}
    with zf:
        members = [(m, mt) for m in zf.namelist() if (mt := _FILE_RE.search(m)) is not None]
        if not members:
            raise ImporterError(f"{path} holds no 'benchmark--transbench101_micro--<task>--<offset>.json' "
                                f"files; is it NASLib's TransNAS-Bench-101 micro export?")
        for name, mt in sorted(members):
            task = mt.group("task")
            if tasks is not None and task not in tasks:
                continue
            if task not in TASKS:
                raise ImporterError(f"{path}:{name}: unknown task {task!r}; known: {', '.join(TASKS)}")
            try:
                rows = json.loads(zf.read(name))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ImporterError(f"{path}:{name}: malformed JSON ({exc})") from None
            if not isinstance(rows, list):
                raise ImporterError(f"{path}:{name}: expected a JSON list of entries")
            table = out.setdefault(task, {})
            for i, r in enumerate(rows):
                where = f"{path}:{name} entry {i}"
                if not isinstance(r, dict) or "arch" not in r or "val_accuracy" not in r:
                    raise ImporterError(f"{where}: expected an object with 'arch' and 'val_accuracy'")
                try:
                    arch = space.from_string(str(r["arch"]))
                except SpaceError as exc:
                    raise ImporterError(f"{where}: bad arch {r['arch']!r}: {exc}") from None
                try:
                    val = float(r["val_accuracy"])
                except (TypeError, ValueError):
                    raise ImporterError(f"{where}: val_accuracy {r['val_accuracy']!r} is not a number") from None
                zen = r.get("zen")
                score = float(zen["score"]) if isinstance(zen, dict) and zen.get("score") is not None else math.nan
                if score <= ZEN_FAILED:  # the export's "could not compute" sentinel, not a score
                    score = math.nan
                d = space.dense_index(arch)
                if d in table:
                    if table[d][0] != val:
                        raise ImporterError(f"{where}: architecture {r['arch']} appears twice for task "
                                            f"{task} with different values ({table[d][0]} and {val})")
                    continue
                table[d] = (val, score)
    return out


def import_transnas(out: str | os.PathLike, zip_path: str | os.PathLike | None = None, *,
                    tasks: Sequence[str] | None = None, overwrite: bool = False,
                    command: str | None = None) -> ImportResult:
    """Write TransNAS-Bench-101 micro's ``tasks`` (default: all 7) as a store at ``out``."""
    t0 = time.perf_counter()
    if zip_path is None:
        zip_path = default_transnas_zip()
        if zip_path is None:
            raise ImporterError(f"no zip given and none found at ../{DATA_SUBDIR}; pass its path")
    zip_path = Path(zip_path)
    if tasks:
        unknown = [t for t in tasks if t not in TASKS]
        if unknown:
            raise ImporterError(f"unknown TransNAS-Bench-101 task(s) {unknown}; known: {', '.join(TASKS)}")
    if command is None:
        command = default_command("import_transnas", out=str(out), zip_path=str(zip_path), tasks=tasks)
    space = TransNASMicroSpace()
    data = read_transnas_zip(zip_path, tasks, space)
    if tasks:
        absent = [t for t in tasks if t not in data]
        if absent:
            raise ImporterError(f"{zip_path} has no entries for task(s) {absent}")
    result = ImportResult()
    base: dict[str, Any] = dict(source=SOURCE, command=command, source_file=str(zip_path.resolve()),
                                source_file_bytes=zip_path.stat().st_size,
                                source_file_sha256=file_sha256(zip_path))
    with building_store(out, space, overwrite=overwrite,
                        provenance_info=provenance(**base, tasks=sorted(data))) as store:
        ids = store.add_archs(list(space.enumerate()))  # id == dense index
        for task in TASKS:
            if task not in data:
                continue
            table = data[task]
            metric, desc = TASKS[task]
            dense = np.array(sorted(table), dtype=np.int64)
            if len(dense) < space.size:
                result.notes.append(f"{task}: {space.size - len(dense)} of {space.size} cells have no entry")
            store.add_task(task, dataset="taskonomy", metric=metric, higher_is_better=True,
                           num_classes=NUM_CLASSES.get(task, -1),
                           protocols={"transnas_bench_101": {
                               "benchmark": "TransNAS-Bench-101 micro", "export": "NASLib zero-cost files",
                               "val_metric": f"val_accuracy (NASLib: {NASLIB_METRIC[task]})",
                               "test_metric": "not available"}},
                           provenance_info=provenance(**base, task=task),
                           info={"benchmark": "TransNAS-Bench-101", "search_space": "micro (cell)",
                                 "metric_description": desc, "naslib_metric": NASLIB_METRIC[task],
                                 "zen_score": "Zen-NAS zero-cost proxy of the untrained network "
                                              "(from the export), not a trained result"},
                           extra_columns=["zen_score"])
            records = [{"arch_id": int(ids[d]), "val_metric": table[d][0], "zen_score": table[d][1],
                        "protocol": "transnas_bench_101"} for d in dense.tolist()]
            result.rows[task] = store.append(task, records)
        result.archs["transnas_micro"] = store.num_archs
    result.stores["transnas_micro"] = Path(out)
    result.seconds = time.perf_counter() - t0
    return result
