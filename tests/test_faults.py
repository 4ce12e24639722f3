"""Fault injection: writers killed at random points, concurrent writers and importers,
symbolic and hard links, a full disk, flipped bytes in data and attributes, and bad
input through the API and the CLI.

Everything here is marked ``faults``.  The fast cases run in the default ``pytest``;
the long ones are also marked ``slow`` and run with ``pytest -m faults`` (which
overrides the default ``-m 'not slow'``).  ``docs/reliability.md`` reports the figures.
"""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from killed_writers import kill_after_acks

from nasbench_xfer.cli.main import cli
from nasbench_xfer.importers import ImporterError, import_csv
from nasbench_xfer.space import NASNetSpace, get_space
from nasbench_xfer.store import CHECKSUM_ATTR, Store, StoreError

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
PROTO = {"epochs": 2, "batch_size": 128, "lr": 0.024}
NB201 = get_space("nb201", {})


IMPORT_TRIES = 40
#: figures of the fault tests (docs/reliability.md): written as JSON to $NBX_FAULTS_REPORT if set
FIGURES: dict[str, object] = {}


@pytest.fixture(scope="module", autouse=True)
def _report_figures():
    yield
    dest = os.environ.get("NBX_FAULTS_REPORT")
    if dest and FIGURES:
        Path(dest).write_text(json.dumps(FIGURES, indent=2, sort_keys=True) + "\n")


def _make(path: Path, n: int = 10, seed: int = 0, task: str = "cifar10") -> list:
    space = NASNetSpace()
    archs = space.sample_many(n, np.random.default_rng(seed))
    with Store.create(path, space) as st:
        st.add_task(task, dataset=task, num_classes=10, protocols={"tiny": PROTO},
                    extra_columns=["latency"])
        st.append(task, [dict(arch=a, seed=seed, val_metric=0.5 + i / 100, test_metric=0.4 + i / 100,
                              params=1e6 + i, flops=2e8, train_seconds=3.0, protocol="tiny",
                              device="cpu", latency=0.1 * i, curve=[0.1, 0.3, 0.5 + i / 100])
                         for i, a in enumerate(archs)])
    return archs


def _csv(path: Path, n: int = 30, seed: int = 0, scale: float = 1.0) -> Path:
    rng = np.random.default_rng(seed)
    archs = NB201.sample_many(n, rng)
    lines = ["arch,c10"] + [f"{NB201.to_string(a)},{scale * rng.uniform(50, 95):.4f}" for a in archs]
    path.write_text("\n".join(lines) + "\n")
    return path


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 0x40]))


def _chunk_offset(path: Path, dataset: str) -> tuple[int, int]:
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info(0)
        return info.byte_offset, info.size


# ---------------------------------------------------------------- item 1: importers lock
def test_import_overwrite_refuses_a_store_being_written(tmp_path):
    out = tmp_path / "s.h5"
    import_csv(_csv(tmp_path / "a.csv"), out, arch_column="arch", task_columns={"t": "c10"})
    writer = Store.open(out, "a")  # another writer holds the lock
    try:
        with pytest.raises(ImporterError, match=r"being written by another writer in this process \(PID \d+"):
            import_csv(_csv(tmp_path / "b.csv", seed=1), out, arch_column="arch",
                       task_columns={"other": "c10"}, overwrite=True)
        writer.append("t", [dict(arch=NB201.sample(np.random.default_rng(5)), seed=7, val_metric=1.0)])
    finally:
        writer.close()
    with Store.open(out) as st:  # the append was not undone, the import did not happen
        assert st.tasks == ["t"] and st.num_evaluations("t") == 31
    # and a merge into it is refused the same way
    other = tmp_path / "o.h5"
    import_csv(_csv(tmp_path / "c.csv", seed=2), other, arch_column="arch", task_columns={"t": "c10"})
    with Store.open(out, "a"):
        with pytest.raises(StoreError, match="being written by another writer in this process"):
            Store.merge([other], out, overwrite=True)


IMPORT_RACE = textwrap.dedent("""
    import sys, time
    import numpy as np
    from nasbench_xfer.space import get_space
    from nasbench_xfer.store import Store, StoreError
    path, start = sys.argv[1], int(sys.argv[2])
    sp = get_space("nb201", {})
    rng = np.random.default_rng(start)
    i = start
    while True:
        try:
            with Store.open(path, "a") as st:
                st.append("t", [dict(arch=sp.sample(rng), seed=100000 + i, val_metric=1.0)])
        except StoreError:
            time.sleep(0.01)
            continue
        print(i, flush=True)
        i += 1
        time.sleep(0.03)  # let the importer in now and then
""")


@pytest.mark.slow
def test_concurrent_appends_and_imports_lose_nothing(tmp_path):
    """An appender loops while imports with --overwrite run.  Each import either is refused
    (the appender holds the lock) or replaces the store whole and is not undone; every
    append acknowledged after the last import is in the final store."""
    import threading

    out = tmp_path / "s.h5"
    csv = _csv(tmp_path / "a.csv")
    import_csv(csv, out, arch_column="arch", task_columns={"t": "c10"})
    script = tmp_path / "app.py"
    script.write_text(IMPORT_RACE)
    proc = subprocess.Popen([sys.executable, str(script), str(out), "0"], stdout=subprocess.PIPE,
                            text=True, env=ENV)
    acked: list[tuple[float, int]] = []
    reader = threading.Thread(target=lambda: [acked.append((time.monotonic(), int(line)))
                                              for line in proc.stdout], daemon=True)
    reader.start()
    imports_ok = refused = 0
    last_import_end = 0.0
    try:
        while len(acked) < 3:
            time.sleep(0.05)
        for _ in range(IMPORT_TRIES):
            time.sleep(0.02)
            started = time.monotonic()
            before = {i for t, i in list(acked) if t < started}
            try:
                import_csv(csv, out, arch_column="arch", task_columns={"t": "c10"}, overwrite=True)
            except ImporterError as exc:
                assert "being written by another process" in str(exc)
                refused += 1
                continue
            imports_ok += 1
            last_import_end = time.monotonic()
            with Store.open(out) as st:  # the import is in effect: no append from before it survived
                seeds = {s - 100000 for s in st.evaluations("t")["seed"].tolist() if s >= 100000}
            assert not seeds & before
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reader.join(5)
    assert imports_ok >= 1 and imports_ok + refused == IMPORT_TRIES
    after = {i for t, i in acked if t > last_import_end}
    with Store.open(out) as st:
        assert st.validate() == []
        seeds = {s - 100000 for s in st.evaluations("t")["seed"].tolist() if s >= 100000}
    assert after <= seeds, sorted(after - seeds)
    FIGURES["concurrent imports"] = (IMPORT_TRIES, imports_ok, refused, len(acked))


# ---------------------------------------------------------------- item 2: links and mode
def test_symlinked_store_is_written_through_the_link_with_its_mode(tmp_path):
    real = tmp_path / "data" / "real.h5"
    real.parent.mkdir()
    archs = _make(real, n=3)
    os.chmod(real, 0o640)
    link = tmp_path / "link.h5"
    link.symlink_to(real)
    with Store.open(link, "a") as st:
        assert st.path == real
        # a second writer on the target gets the same lock
        with pytest.raises(StoreError, match="being written by another writer in this process"):
            Store.open(real, "a")
        st.append("cifar10", [dict(arch=archs[0], seed=5, val_metric=0.9, protocol="tiny")])
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    with Store.open(real) as st:
        assert st.num_evaluations("cifar10") == 4
    # importers and merges follow the link too
    import_csv(_csv(tmp_path / "a.csv"), link, arch_column="arch", task_columns={"t": "c10"},
               overwrite=True)
    assert link.is_symlink() and stat.S_IMODE(real.stat().st_mode) == 0o640
    with Store.open(real) as st:
        assert st.tasks == ["t"]


def test_hard_linked_store_is_not_forked(tmp_path):
    path = tmp_path / "s.h5"
    _make(path, n=2)
    os.link(path, tmp_path / "other.h5")
    with pytest.raises(StoreError, match="2 hard links"):
        Store.open(path, "a")
    with Store.open(path) as st:  # reading is fine
        assert st.num_evaluations("cifar10") == 2


# ---------------------------------------------------------------- item 5: checksums
def test_flipped_byte_in_a_metric_is_detected(tmp_path):
    path = tmp_path / "s.h5"
    _make(path, n=10)
    offset, size = _chunk_offset(path, "tasks/cifar10/val_metric")
    _flip(path, offset + 3)  # inside the first value
    with Store.open(path) as st:
        problems = st.validate()
        assert any("/tasks/cifar10/val_metric" in p and "damaged" in p for p in problems), problems
        with pytest.raises(StoreError, match="damaged store.*nasbench-xfer validate"):
            st.evaluations("cifar10")
        with pytest.raises(StoreError, match="damaged store"):
            st.lookup("cifar10", [NASNetSpace().sample(np.random.default_rng(0))])
    r = CliRunner().invoke(cli, ["validate", str(path)])
    assert r.exit_code == 1 and "INVALID" in r.output and "val_metric" in r.output


def test_flipped_bytes_in_attributes_and_strings_are_detected(tmp_path):
    path = tmp_path / "s.h5"
    _make(path, n=4)
    data = path.read_bytes()
    # an attribute: the protocol definition {"epochs": 2, ...} -> {"epochs": 3, ...}
    at = data.index(b'"epochs": 2')
    path.write_bytes(data[:at + 10] + b"3" + data[at + 11:])
    with Store.open(path) as st:
        assert st.task_info("cifar10")["protocols"]["tiny"]["epochs"] == 3  # the rot reads fine...
        problems = st.validate()  # ...but validate sees it
    assert any("/tasks/cifar10: attributes do not match their checksum" in p for p in problems), problems
    # a string in the global heap: a device name
    path2 = tmp_path / "s2.h5"
    _make(path2, n=4)
    with Store.open(path2, "a") as st:
        st.append("cifar10", [dict(arch=NASNetSpace().sample(np.random.default_rng(9)), seed=3,
                                   device="UNIQUEDEVICENAME", protocol="tiny")])
    data = path2.read_bytes()
    at = data.index(b"UNIQUEDEVICENAME")
    path2.write_bytes(data[:at] + b"X" + data[at + 1:])
    with Store.open(path2) as st:
        problems = st.validate()
    assert any("/tasks/cifar10/device: strings do not match their checksum" in p for p in problems)


def test_writes_never_re_sign_damage(tmp_path):
    """A commit (append, add_task, register_protocol, compact) and merge refuse a store whose
    attributes or strings no longer match their digests, so validate keeps seeing the damage."""
    path = tmp_path / "s.h5"
    archs = _make(path, n=4)
    data = path.read_bytes()
    at = data.index(b'"epochs": 2')
    path.write_bytes(data[:at + 10] + b"3" + data[at + 11:])
    damaged = path.read_bytes()
    new = NASNetSpace().sample(np.random.default_rng(99))
    with Store.open(path, "a") as st:
        for write in (lambda: st.append("cifar10", [dict(arch=new, seed=1)]),
                      lambda: st.add_task("other", dataset="svhn"),
                      lambda: st.register_protocol("cifar10", "long", {"epochs": 9}),
                      lambda: st.add_archs([new])):
            with pytest.raises(StoreError, match="damaged store, it does not match its checksums"):
                write()
        assert st.num_evaluations("cifar10") == len(archs)
    assert path.read_bytes() == damaged
    with pytest.raises(StoreError, match=r"input .*s\.h5: damaged store"):
        Store.merge([path], tmp_path / "m.h5")
    assert not (tmp_path / "m.h5").exists() and not (tmp_path / "m.h5.lock").exists()
    r = CliRunner().invoke(cli, ["validate", str(path)])
    assert r.exit_code == 1 and "attributes do not match their checksum" in r.output


def test_readers_and_writers_do_not_block_each_other(tmp_path):
    """Readers take no HDF5 file lock: a reader open while a writer commits, and a reader
    opening while a writer is inside a commit, both work."""
    path = tmp_path / "s.h5"
    _make(path, n=3)
    extra = NASNetSpace().sample_many(2, np.random.default_rng(5))
    with Store.open(path) as reader:
        with Store.open(path, "a") as w:
            w.append("cifar10", [dict(arch=extra[0], seed=1)])
            with w.batch():
                w.append("cifar10", [dict(arch=extra[1], seed=1)])
                with Store.open(path) as r2:
                    assert r2.num_evaluations("cifar10") == 4
        assert reader.num_evaluations("cifar10") == 3  # the version it opened
    with Store.open(path) as st:
        assert st.num_evaluations("cifar10") == 5


def test_reader_opening_during_a_compaction_sees_every_row(tmp_path, monkeypatch):
    """A compaction that replaces the file between a reader's open and its journal scan
    must not hide the journal's rows from that reader."""
    from nasbench_xfer.store import core, journal

    monkeypatch.setattr(Store, "journal_min_bytes", 0)
    monkeypatch.setattr(Store, "compact_fraction", 1e9)
    path = tmp_path / "s.h5"
    _make(path, n=3)
    w = Store.open(path, "a")
    w.append("cifar10", [dict(arch=a, seed=2) for a in NASNetSpace().sample_many(4, np.random.default_rng(7))])
    assert journal.journal_path(path).exists()
    real_scan, fired = journal.scan, []

    def scan_after_a_compaction(p):
        if not fired:  # the reader holds the old file; the writer folds the journal now
            fired.append(1)
            w.compact()
        return real_scan(p)

    monkeypatch.setattr(core.journal, "scan", scan_after_a_compaction)
    with Store.open(path) as r:
        assert r.num_evaluations("cifar10") == 7
    assert fired and not journal.journal_path(path).exists()
    w.close()


def test_export_never_overwrites_the_store_or_an_existing_file(tmp_path):
    store = tmp_path / "s.csv"  # a store whose name ends in .csv
    _make(store, n=3)
    before = store.read_bytes()
    runner = CliRunner()
    r = runner.invoke(cli, ["export", str(store), "-o", str(store)])
    assert r.exit_code == 1 and "is the store itself" in r.output, r.output
    link = tmp_path / "l.csv"
    link.symlink_to(store)
    r = runner.invoke(cli, ["export", str(store), "-o", str(link), "--overwrite"])
    assert r.exit_code == 1 and "is the store itself" in r.output, r.output
    assert store.read_bytes() == before
    out = tmp_path / "e.csv"
    out.write_text("keep me\n")
    r = runner.invoke(cli, ["export", str(store), "-o", str(out)])
    assert r.exit_code == 1 and "already exists (pass --overwrite to replace it)" in r.output
    assert out.read_text() == "keep me\n"
    r = runner.invoke(cli, ["export", str(store), "-o", str(out), "--overwrite", "-t", "cifar10", "-t", "cifar10"])
    assert r.exit_code == 0 and "wrote 3 rows" in r.output, r.output
    assert len(out.read_text().splitlines()) == 4
    assert [p.name for p in tmp_path.iterdir() if "export" in p.name] == []


def test_stores_without_checksums_still_read_and_validate(tmp_path):
    path = tmp_path / "old.h5"
    archs = _make(path, n=3)
    with h5py.File(path, "r+") as f:  # what a store written before checksums looks like
        del f.attrs[CHECKSUM_ATTR]
    with Store.open(path) as st:
        notes: list[str] = []
        assert st.validate(notes=notes) == []
        assert any("no stored digests" in n for n in notes)
        assert st.num_evaluations("cifar10") == 3
    with Store.open(path, "a") as st:  # an append adds the digests
        st.append("cifar10", [dict(arch=archs[0], seed=4, protocol="tiny")])
    with h5py.File(path, "r") as f:
        assert CHECKSUM_ATTR in f.attrs
    with Store.open(path) as st:
        notes = []
        assert st.validate(notes=notes) == [] and not any("no stored digests" in n for n in notes)
    r = CliRunner().invoke(cli, ["validate", str(path)])
    assert r.exit_code == 0 and r.output.startswith("ok ")


def test_every_numeric_dataset_has_fletcher32(tmp_path):
    path = tmp_path / "s.h5"
    import_csv(_csv(tmp_path / "a.csv"), path, arch_column="arch", task_columns={"t": "c10"},
               extra_columns=[])
    with h5py.File(path, "r") as f:
        names = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        assert "space/dense_map" in names
        for n in names:
            ds = f[n]
            if ds.dtype.kind != "O":
                assert ds.fletcher32, n


# ---------------------------------------------------------------- item 6: bad values
@pytest.mark.parametrize("record, message", [
    (dict(seed=1.7), r"column 'seed' must be an integer, got 1.7"),
    (dict(seed="3"), r"column 'seed' must be an integer"),
    (dict(val_metric=float("inf")), r"column 'val_metric' is inf; values must be finite"),
    (dict(test_metric=-np.inf), r"column 'test_metric' is -inf"),
    (dict(latency=np.inf), r"column 'latency' is inf"),
    (dict(curve=[[0.1, 0.2], [0.3, 0.4]]), r"column 'curve' must be 1-D .* shape \(2, 2\)"),
    (dict(curve=[0.1, np.inf]), r"column 'curve' holds inf at epoch\(s\) \[1\]"),
    (dict(curve="0.1,0.2"), r"column 'curve' must be a 1-D sequence of numbers, got a string"),
    (dict(status=123), r"column 'status' must be a string, got 123 \(int\)"),
    (dict(device=1.5), r"column 'device' must be a string"),
    (dict(val_metric="high"), r"column 'val_metric' must be a number, got 'high'"),
    (dict(val_metric=True), r"column 'val_metric' must be a number"),
    (dict(seed=float("nan")), r"record 0: seed is NaN; give an integer seed or leave it out"),
    (dict(status="ok\x00"), r"column 'status' holds a NUL character"),
    (dict(device="gpu\udc80"), r"column 'device' is not valid text"),
    (dict(curve=[0.1, 1e300]), r"column 'curve': value\(s\) at epoch\(s\) \[1\] exceed the float32 range"),
])
def test_bad_values_are_refused(tmp_path, record, message):
    path = tmp_path / "s.h5"
    archs = _make(path, n=2)
    before = path.read_bytes()
    with Store.open(path, "a") as st:
        with pytest.raises(StoreError, match=message):
            st.append("cifar10", [dict(arch=archs[0], protocol="tiny", **record)])
    assert path.read_bytes() == before


@pytest.mark.parametrize("call, message", [
    (lambda st: st.add_task("a\x00b", dataset="d"), r"invalid task name 'a\\x00b'"),
    (lambda st: st.add_task("t", dataset="d", metric=None), r"task 't': metric must be a string, got None"),
    (lambda st: st.add_task("t", dataset="d", extra_columns=["x", "x"]), r"extra columns named twice: \['x'\]"),
    (lambda st: st.add_task("t", dataset="d", extra_columns=[""]), r"invalid extra column name ''"),
    (lambda st: st.add_task("t", dataset="d", extra_columns="lat"), r"must be a list of names"),
    (lambda st: st.add_task("t", dataset="d", extra_columns=["task"]), r"extra column 'task' clashes"),
    (lambda st: st.add_task("t", dataset="d", extra_columns=["curve_3"]), r"extra column 'curve_3' clashes"),
    (lambda st: st.add_task("t", dataset="d", protocols={"p": {1, 2}}), r"task 't': protocols must be JSON data"),
    (lambda st: st.register_protocol("cifar10", "p", {"x": object()}), r"protocol 'p' must be JSON data"),
    (lambda st: st.append("cifar10", [1, 2]), r"record 0 must be a mapping of column names to values"),
    (lambda st: st.archs([-1]), r"architecture ids must lie in 0\.\.1 .*got \[-1\]"),
    (lambda st: st.arch_hashes([10**6]), r"architecture ids must lie in 0\.\.1"),
    (lambda st: st.top("cifar10", column="nope"), r"unknown column 'nope' of task 'cifar10'; numeric columns: seed"),
    (lambda st: st.metric_table("cifar10", "status"), r"unknown column 'status'"),
    (lambda st: st.evaluations(None), r"task None is not in"),
    (lambda st: st.evaluations("cifar10/"), r"task 'cifar10/' is not in"),
    (lambda st: st.evaluations("/"), r"task '/' is not in"),
])
def test_bad_calls_are_store_errors_that_name_the_problem(tmp_path, call, message):
    """Bad arguments through the Python API: a StoreError naming the problem (never a raw
    TypeError/IndexError, never "damaged store" for a typo), and the file unchanged."""
    path = tmp_path / "s.h5"
    _make(path, n=2)
    before = path.read_bytes()
    with Store.open(path, "a") as st:
        with pytest.raises(StoreError, match=message) as info:
            call(st)
        assert "damaged" not in str(info.value)
    assert path.read_bytes() == before


@pytest.mark.parametrize("column, data, message", [
    ("curves", np.zeros(2, dtype=np.float32), "column curves holds 1-D floats, expected 2-D floats"),
    ("arch", np.zeros((2, 2), dtype=np.int32), "column arch holds 2-D integers, expected 1-D integers"),
    ("val_metric", np.array(["a", "b"], dtype=object), "column val_metric holds 1-D strings, expected 1-D floats"),
])
def test_columns_of_the_wrong_shape_or_kind_are_damage(tmp_path, column, data, message):
    """A column rewritten outside nasbench_xfer with another rank or kind: validate names it,
    and reads and merge refuse the task instead of crashing on it."""
    path = tmp_path / "s.h5"
    _make(path, n=2)
    with h5py.File(path, "r+") as f:
        g = f["tasks/cifar10"]
        del g[column]
        g.create_dataset(column, data=data, dtype=h5py.string_dtype() if data.dtype == object else data.dtype)
    r = CliRunner().invoke(cli, ["validate", str(path)])
    assert r.exit_code == 1 and message in r.output, r.output
    for args in (["export", str(path), "-o", str(tmp_path / "e.csv"), "--curves"],
                 ["merge", str(path), "-o", str(tmp_path / "m.h5")]):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 1 and r.exception is None or isinstance(r.exception, SystemExit)
        assert "damaged store" in r.output and "Traceback" not in r.output, r.output


def test_good_values_are_kept_exactly(tmp_path):
    path = tmp_path / "s.h5"
    archs = _make(path, n=2)
    with Store.open(path, "a") as st:
        st.append("cifar10", [dict(arch=archs[0], seed=np.int64(7), val_metric=np.nan, protocol="tiny",
                                   curve=np.array([0.1, np.nan, 0.3])),
                              dict(arch=archs[1], seed=2.0, val_metric=None, status="failed: oom")])
        df = st.evaluations("cifar10").tail(2)
        assert df["seed"].tolist() == [7, 2] and df["val_metric"].isna().all()
        assert df["status"].tolist() == ["ok", "failed: oom"]


def test_csv_with_infinite_metric_is_refused(tmp_path):
    csv = _csv(tmp_path / "a.csv", n=3)
    lines = csv.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0] + ",inf"
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(ImporterError, match=r"1 infinite value\(s\) \(line 3: 'inf'\)"):
        import_csv(csv, tmp_path / "o.h5", arch_column="arch", task_columns={"t": "c10"})
    assert not (tmp_path / "o.h5").exists()


# ---------------------------------------------------------------- item 8: stale files, fsync
def test_import_removes_what_killed_imports_left(tmp_path):
    out = tmp_path / "o.h5"
    stale = [tmp_path / ".o.h5.importing-999999", tmp_path / ".o.h5.importing-999999.lock",
             tmp_path / ".o.h5.importing-999999.tmp-999999", tmp_path / ".o.h5.merge-999998"]
    for p in stale:
        p.write_bytes(b"x" * 1000)
    keep = tmp_path / ".other.h5.importing-999999"
    keep.write_bytes(b"x")
    import_csv(_csv(tmp_path / "a.csv"), out, arch_column="arch", task_columns={"t": "c10"})
    assert not any(p.exists() for p in stale) and keep.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.h5.importing-999999", "a.csv",
                                                           "o.h5", "o.h5.lock"]


def test_import_fsyncs_before_and_after_the_rename(tmp_path, monkeypatch):
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", f"{src} -> {dst}"))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    out = tmp_path / "o.h5"
    import_csv(_csv(tmp_path / "a.csv"), out, arch_column="arch", task_columns={"t": "c10"})
    final = [i for i, e in enumerate(events) if e[0] == "replace" and e[1].endswith(f"-> {out}")]
    assert len(final) == 1
    i = final[0]
    tmp = events[i][1].split(" -> ")[0]
    assert ("fsync", tmp) in events[:i]  # the file's data is on disk before the rename
    assert events[i + 1] == ("fsync", str(tmp_path))  # and the rename itself after it


# ---------------------------------------------------------------- item 7: train on a full disk
SHARED = REPO.parent / "shared" / "data"


@pytest.fixture(scope="module")
def quickdraw_task():
    import nasbench_xfer.datasets as ds

    if not SHARED.exists():
        pytest.fail(f"shared data not found at {SHARED}")
    return ds.load_task("quickdraw", SHARED, download=False)


def test_train_on_a_full_disk_keeps_finished_evaluations(quickdraw_task, tmp_path, monkeypatch):
    from nasbench_xfer.harness.runner import RunError, load_archs, prepare_store, run

    archs = load_archs(["xfernasnet"])
    store = tmp_path / "qd.h5"
    kw = dict(protocol="smoke", seeds=[0], task_data=quickdraw_task, log=lambda s: None)
    prepare_store(store, quickdraw_task, "smoke")  # the store, its task and protocol
    before = store.read_bytes()

    def full(dest, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Store, "_write_file", staticmethod(full))
    with pytest.raises(RunError, match=r"No space left on device \(the store is unchanged\); they are saved in "
                                       r"(\S+) and the next run on this store adds them") as err:
        run(store, "quickdraw", archs, **kw)
    side = Path(err.value.args[0].split("saved in ")[1].split(" and")[0])
    assert side.exists() and side.parent == tmp_path and store.read_bytes() == before
    saved = json.loads(side.read_text().splitlines()[0])
    assert saved["task"] == "quickdraw" and saved["row"]["status"] == "ok"
    monkeypatch.undo()
    # the next run adds them first, then finds nothing left to train
    again = run(store, "quickdraw", archs, **kw)
    assert (again["skipped"], again["trained"]) == (1, 0) and not side.exists()
    with Store.open(store) as st:
        ev = st.evaluations("quickdraw")
        assert len(ev) == 1 and ev["val_metric"].iloc[0] == pytest.approx(saved["row"]["val_metric"])
        assert st.curves("quickdraw")[0, 0] == pytest.approx(saved["row"]["curve"][0])
    # a second recovery of the same file (killed between append and unlink) adds nothing twice
    side.write_text(json.dumps(saved) + "\n")
    run(store, "quickdraw", archs, **kw)
    with Store.open(store) as st:
        assert st.num_evaluations("quickdraw") == 1


# ---------------------------------------------------------------- item 14: waiting for a lock
def test_train_says_whose_lock_it_waits_for(quickdraw_task, tmp_path, capsys):
    """The notice is a logging warning; the command line's set-up (configure) sends it to stderr.
    (Without it, pytest's own log capture would take the record, so the test must not depend on
    whether an earlier test happened to configure logging.)"""
    from nasbench_xfer.harness.runner import RunError, load_archs, prepare_store, run
    from nasbench_xfer.logs import configure

    configure(0)
    store = tmp_path / "qd.h5"
    archs = load_archs(["xfernasnet"])
    kw = dict(protocol="smoke", seeds=[0], task_data=quickdraw_task, log=lambda s: None)
    prepare_store(store, quickdraw_task, "smoke")
    with Store.open(store, "a"):
        t0 = time.monotonic()
        with pytest.raises(RunError, match=rf"gave up after 0.3 s waiting for the lock on .*qd.h5 held "
                                           rf"by PID {os.getpid()} \(this process: a Store it has open for writing\) "
                                           rf"\(--lock-timeout"):
            run(store, "quickdraw", archs, wait_s=0.3, **kw)
        assert time.monotonic() - t0 < 5
    assert f"waiting for the lock on {store} held by PID {os.getpid()}" in capsys.readouterr().err


# ---------------------------------------------------------------- item 9: validate never raises
def _damage_cases(tmp_path: Path) -> dict[str, Path]:
    """One store per kind of damage found in the field, plus a good one."""
    cases = {}
    for name in ("good", "gzip_chunk", "bad_json", "misaligned", "bad_arch_id", "missing_column",
                 "metric_chunk", "not_hdf5", "truncated"):
        p = tmp_path / f"{name}.h5"
        _make(p, n=10)
        cases[name] = p
    off, size = _chunk_offset(cases["gzip_chunk"], "tasks/cifar10/curves")
    with open(cases["gzip_chunk"], "r+b") as fh:  # overwrite the middle of the deflate stream
        fh.seek(off + size // 3)
        fh.write(b"\xff" * 8)
    off, _ = _chunk_offset(cases["metric_chunk"], "tasks/cifar10/test_metric")
    _flip(cases["metric_chunk"], off + 1)
    with h5py.File(cases["bad_json"], "r+") as f:
        f["tasks/cifar10"].attrs["protocols"] = '{"tiny": {"epochs": 2'
    with h5py.File(cases["misaligned"], "r+") as f:
        f["tasks/cifar10/seed"].resize(7, axis=0)
    with h5py.File(cases["bad_arch_id"], "r+") as f:
        f["tasks/cifar10/arch"][3] = 999
    with h5py.File(cases["missing_column"], "r+") as f:
        del f["tasks/cifar10/params"]
    cases["not_hdf5"].write_text("arch,acc\nx,1\n")
    data = cases["truncated"].read_bytes()
    cases["truncated"].write_bytes(data[: len(data) // 2])
    return cases


def test_validate_reports_every_file_and_never_raises(tmp_path):
    cases = _damage_cases(tmp_path)
    paths = [str(p) for p in cases.values()] + [str(tmp_path / "missing.h5")]
    r = CliRunner().invoke(cli, ["validate", *paths])
    assert r.exit_code == 1 and r.exception is None or isinstance(r.exception, SystemExit), r.output
    assert "Traceback" not in r.output
    assert r.output.count("INVALID ") == len(paths) - 1 and f"ok {cases['good']}" in r.output
    for name, p in cases.items():
        if name != "good":
            assert f"INVALID {p}" in r.output
    out = r.output
    assert "/tasks/cifar10/curves: cannot be read, damaged data" in out
    assert "attribute protocols is not valid JSON" in out
    assert "column seed has 7 rows, expected 10" in out
    assert "architecture ids outside 0..9" in out
    assert "missing columns ['params']" in out
    assert "/tasks/cifar10/test_metric: cannot be read, damaged data" in out
    assert "not a readable HDF5 store" in out and "no store at" in out


# ---------------------------------------------------------------- item 11: damaged stores in commands
@pytest.mark.parametrize("damage", ["gzip_chunk", "bad_json", "misaligned", "bad_arch_id",
                                    "missing_column", "metric_chunk"])
def test_commands_on_damaged_stores_point_to_validate(tmp_path, damage):
    p = _damage_cases(tmp_path)[damage]
    runner = CliRunner()
    for args in (["info", str(p)], ["query", str(p), "-t", "cifar10", "--top", "0"],
                 ["export", str(p), "-o", str(tmp_path / "e.csv"), "--curves"],
                 ["merge", str(p), "-o", str(tmp_path / "m.h5"), "--overwrite"]):
        r = runner.invoke(cli, args)
        if (args[0], damage) in (("query", "gzip_chunk"), ("export", "bad_json")):
            # query does not read the curves, export not the protocols: what they print is sound
            assert r.exit_code == 0 and "Traceback" not in r.output, r.output
            continue
        assert r.exit_code == 1, (args, r.output)
        assert "Traceback" not in r.output and not isinstance(r.exception, (OSError, KeyError, ValueError))
        assert "damaged store" in r.output and "nasbench-xfer validate" in r.output, (args, r.output)
    assert not (tmp_path / "m.h5").exists()


# ---------------------------------------------------------------- item 12: unwritable outputs
def test_unwritable_and_missing_output_paths(tmp_path):
    csv = _csv(tmp_path / "a.csv")
    store = tmp_path / "s.h5"
    _make(store, n=3)
    runner = CliRunner()
    base = ["import", "csv", "--csv", str(csv), "--arch-column", "arch", "--task-column", "t=c10"]
    r = runner.invoke(cli, base + ["--out", "/proc/x.h5"])
    assert r.exit_code == 1 and "Traceback" not in r.output and "/proc/x.h5" in r.output, r.output
    # missing parent folders are created
    r = runner.invoke(cli, base + ["--out", str(tmp_path / "new" / "sub" / "o.h5")])
    assert r.exit_code == 0 and (tmp_path / "new" / "sub" / "o.h5").exists(), r.output
    r = runner.invoke(cli, ["export", str(store), "-o", str(tmp_path / "nodir" / "sub" / "o.csv")])
    assert r.exit_code == 0 and (tmp_path / "nodir" / "sub" / "o.csv").exists(), r.output
    r = runner.invoke(cli, ["export", str(store), "-o", "/proc/nodir/o.csv"])
    assert r.exit_code == 1 and "cannot create the folder /proc/nodir" in r.output, r.output
    r = runner.invoke(cli, ["merge", str(store), "-o", "/proc/m.h5"])
    assert r.exit_code == 1 and "Traceback" not in r.output and "/proc/m.h5" in r.output, r.output
    r = runner.invoke(cli, ["merge", str(store), "-o", str(tmp_path / "deep" / "m.h5")])
    assert r.exit_code == 0, r.output


def test_read_only_folder_or_file_system(tmp_path):
    """A read-only file system (a tmpfs mounted ro, as root) or a read-only folder (otherwise)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs",
                                                    str(ro)], capture_output=True).returncode == 0
    if not mounted:
        if os.geteuid() == 0:
            pytest.skip("as root a read-only folder is writable, and no tmpfs could be mounted")
        os.chmod(ro, 0o555)
    try:
        runner = CliRunner()
        r = runner.invoke(cli, ["import", "csv", "--csv", str(_csv(tmp_path / "a.csv")),
                                "--arch-column", "arch", "--task-column", "t=c10", "--out", str(ro / "o.h5")])
        assert r.exit_code == 1 and "Traceback" not in r.output, r.output
        assert ("Read-only file system" if mounted else "Permission denied") in r.output, r.output
        store = tmp_path / "s.h5"
        _make(store, n=2)
        r = runner.invoke(cli, ["export", str(store), "-o", str(ro / "e.csv")])
        assert r.exit_code == 1 and f"cannot write {ro / 'e.csv'}" in r.output, r.output
    finally:
        if mounted:
            subprocess.run(["umount", str(ro)], capture_output=True)
        else:
            os.chmod(ro, 0o755)


# ---------------------------------------------------------------- item 10: full disk
FULL_DISK = textwrap.dedent("""
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # writes past the limit fail with EFBIG
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    from nasbench_xfer.cli.main import cli
    cli.main(sys.argv[2:], prog_name="nasbench-xfer")
""")

FULL_DISK_API = textwrap.dedent("""
    import resource, signal, sys
    import numpy as np
    from nasbench_xfer.space import NASNetSpace
    from nasbench_xfer.store import Store, StoreError
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    path, limit = sys.argv[1], int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    sp = NASNetSpace()
    rng = np.random.default_rng(0)
    with Store.open(path, "a") as st:
        for i in range(1000):
            try:
                st.append("cifar10", [dict(arch=a, seed=100 + i, protocol="tiny", curve=list(rng.random(50)))
                                      for a in sp.sample_many(200, rng)])
            except StoreError as exc:
                print("REFUSED", exc)
                break
            print("ACK", i, flush=True)
""")


def _run_limited(tmp_path: Path, script: str, args: list[str]) -> subprocess.CompletedProcess:
    f = tmp_path / "limited.py"
    f.write_text(script)
    return subprocess.run([sys.executable, str(f), *args], capture_output=True, text=True, env=ENV,
                          timeout=300)


def test_full_disk_is_a_clean_error_for_import_merge_and_append(tmp_path):
    """A file-size limit makes every write past it fail like a full disk (EFBIG instead of
    ENOSPC); before the fix HDF5 touched half-closed handles and the process segfaulted."""
    big = _csv(tmp_path / "big.csv", n=3000)
    out = tmp_path / "o.h5"
    r = _run_limited(tmp_path, FULL_DISK, ["200000", "import", "csv", "--csv", str(big), "--arch-column",
                                           "arch", "--task-column", "t=c10", "--out", str(out)])
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr and f"cannot write {out}: File too large" in r.stderr
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if "importing" in p.name] == []
    # merge
    import_csv(big, out, arch_column="arch", task_columns={"t": "c10"})
    size = out.stat().st_size
    r = _run_limited(tmp_path, FULL_DISK, [str(size // 2), "merge", str(out), "-o", str(tmp_path / "m.h5")])
    assert r.returncode == 1 and "Traceback" not in r.stderr and "File too large" in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "m.h5").exists() and not list(tmp_path.glob(".m.h5.merge-*"))
    # API appends until the limit: refused with a StoreError, every acknowledged append kept
    store = tmp_path / "s.h5"
    _make(store, n=5)
    r = _run_limited(tmp_path, FULL_DISK_API, [str(store), str(3 * store.stat().st_size)])
    assert r.returncode == 0, r.stderr[-2000:]
    acks = [line for line in r.stdout.splitlines() if line.startswith("ACK")]
    assert "REFUSED cannot write" in r.stdout and "(the store is unchanged)" in r.stdout
    with Store.open(store) as st:
        assert st.validate() == [] and st.num_evaluations("cifar10") == 5 + 200 * len(acks)
    FIGURES["full disk (file-size limit)"] = ("import, merge, append", len(acks))


def _tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True)
    return r.returncode == 0


@pytest.mark.slow
def test_full_tmpfs_import_and_append(tmp_path):
    """A real ENOSPC on a small tmpfs (needs root or CAP_SYS_ADMIN)."""
    mnt = tmp_path / "mnt"
    if os.geteuid() != 0 or not _tmpfs(mnt, "1500k"):
        pytest.skip("cannot mount a small tmpfs here (needs root); the file-size-limit test covers it")
    try:
        store = mnt / "s.h5"
        _make(store, n=5)
        r = _run_limited(tmp_path, FULL_DISK_API, [str(store), str(1 << 40)])
        assert r.returncode == 0 and "No space left on device" in r.stdout, r.stderr[-2000:]
        acks = [line for line in r.stdout.splitlines() if line.startswith("ACK")]
        with Store.open(store) as st:
            assert st.validate() == [] and st.num_evaluations("cifar10") == 5 + 200 * len(acks)
        big = _csv(tmp_path / "big.csv", n=3000)
        r = subprocess.run([sys.executable, "-m", "nasbench_xfer", "import", "csv", "--csv", str(big),
                            "--arch-column", "arch", "--task-column", "t=c10", "--out", str(mnt / "o.h5")],
                           capture_output=True, text=True, env=ENV, timeout=300)
        assert r.returncode == 1 and "No space left on device" in r.stderr, r.stderr[-2000:]
        assert sorted(os.listdir(mnt)) == ["o.h5.lock", "s.h5", "s.h5.lock"]
        FIGURES["full tmpfs"] = ("import, append", len(acks))
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


# ---------------------------------------------------------------- item 15: precise messages
def test_cli_bad_input_messages(tmp_path):
    runner = CliRunner()
    store = tmp_path / "s.h5"
    _make(store, n=3)
    with Store.open(store, "a") as st:
        st.add_task("empty", dataset="x")
    r = runner.invoke(cli, ["query", str(store), "-t", "empty"])
    assert r.exit_code == 0 and "task 'empty' of" in r.output and "has no evaluations" in r.output
    assert "Empty DataFrame" not in r.output
    # merge counts the duplicates it drops, and the conflicting ones
    other = tmp_path / "o.h5"
    _make(other, n=3)  # same archs, seed, protocol: all duplicates; 0 conflicts
    with Store.open(other, "a") as st:
        st.append("cifar10", [dict(arch=NASNetSpace().sample_many(3, np.random.default_rng(0))[0],
                                   seed=0, protocol="tiny", val_metric=0.01)])
    r = runner.invoke(cli, ["merge", str(store), str(other), "-o", str(tmp_path / "m.h5")])
    assert r.exit_code == 0 and "dropped 4 duplicate evaluation(s)" in r.output
    assert "1 of them with a different val/test metric or status" in r.output
    # no .lock is left beside a file that is not a store
    notstore = tmp_path / "notes.txt"
    notstore.write_text("hello")
    with pytest.raises(StoreError, match="not a readable HDF5 store"):
        Store.open(notstore, "a")
    assert not (tmp_path / "notes.txt.lock").exists()
    for args, msg in ((["compare", "-s", str(store), "-t", "cifar10", "-o", str(tmp_path / "c"), "-j", "0"],
                       "0 is not in the range x>=1"),
                      (["demo", "-j", "0"], "0 is not in the range x>=1")):
        r = runner.invoke(cli, args)
        assert r.exit_code == 2 and msg in r.output, r.output
    afile = tmp_path / "afile"
    afile.write_text("x")
    (tmp_path / "adir").mkdir()
    csv = _csv(tmp_path / "t.csv")
    for args, msg in (
            (["transferability", str(store), "-o", str(afile / "sub")], f"cannot write {afile / 'sub'}"),
            (["transferability", str(store), "--tasks", ","], "--tasks ',' names no task"),
            (["transferability", str(store), "--min-shared", "0"], "--min-shared must be at least 2"),
            (["query", str(store), "-t", "cifar10", "--arch", "x", "--hash", "y"], "give --arch or --hash, not both"),
            (["query", str(store), "-t", "cifar10", "--top", "-1"], "--top must be 0 (all) or a positive number"),
            (["query", str(store), "-t", "cifar10", "--arch", str(tmp_path / "typo.json")],
             "typo.json': no such file, and not a spec string of the nasnet space"),
            (["query", str(store), "-t", "cifar10", "--arch", str(tmp_path / "adir")], "adir: a folder; give a spec"),
            (["query", str(store), "-t", "cifar10", "--arch", "xfernasnet"], "has no evaluation on task 'cifar10'"),
            (["query", str(store), "-t", "cifar10", "--arch", "x" * 300], "no such file, and not a spec string"),
            (["query", str(store), "-t", "cifar10/"], "task 'cifar10/' is not in"),
            (["validate", str(store), str(tmp_path / "adir")], "adir is a directory, not a store file"),
            (["import", "csv", "--csv", str(csv), "--arch-column", "arch", "--task-column", "t=c10", "--sep", "",
              "--out", str(tmp_path / "x.h5")], "the field separator (sep / --sep) must be a character")):
        r = runner.invoke(cli, args)
        assert r.exit_code == 1 and msg in r.output and "Traceback" not in r.output, (args, r.output)


def test_train_cli_bad_input_messages(tmp_path):
    runner = CliRunner()
    base = ["train", str(tmp_path / "t.h5"), "-d", "quickdraw", "--data", str(SHARED), "-p", "smoke",
            "-a", "xfernasnet", "--device", "cpu", "--dry-run"]
    r = runner.invoke(cli, base + ["--seeds", "a,b"])
    assert r.exit_code == 2 and "'a' is not a seed" in r.output and "invalid literal" not in r.output
    r = runner.invoke(cli, base + ["--sample", "-3"])
    assert r.exit_code == 2 and "-3 is not in the range x>=0" in r.output
    r = runner.invoke(cli, base + ["--lock-timeout", "-1"])
    assert r.exit_code == 2 and "--lock-timeout" in r.output
    r = runner.invoke(cli, base + ["-a", '[{"conv_dag": {}}]'])
    assert r.exit_code == 1 and "a JSON list; --arch takes one architecture" in r.output, r.output
    csv = _csv(tmp_path / "fake.npz")
    r = runner.invoke(cli, ["train", str(tmp_path / "t.h5"), "-d", f"npz:{csv}", "-a", "xfernasnet",
                            "-p", "smoke", "--device", "cpu", "--dry-run"])
    assert r.exit_code == 1 and "is not an .npz archive" in r.output and "allow_pickle" not in r.output
    assert not (tmp_path / "t.h5").exists()
    # a dry run checks and lists, and writes nothing: no store, no lock file
    r = runner.invoke(cli, base)
    assert r.exit_code == 0 and "1 to train" in r.output, r.output
    assert not (tmp_path / "t.h5").exists() and not (tmp_path / "t.h5.lock").exists()
    # ... and refuses what the real run would: a store of another space, a task of another dataset
    nb = tmp_path / "nb.h5"
    Store.create(nb, NB201).close()
    r = runner.invoke(cli, ["train", str(nb), *base[2:]])
    assert r.exit_code == 1 and "holds space" in r.output, r.output
    other = tmp_path / "o.h5"
    with Store.create(other, NASNetSpace()) as st:
        st.add_task("quickdraw", dataset="mnist", num_classes=10)
    r = runner.invoke(cli, ["train", str(other), *base[2:]])
    assert r.exit_code == 1 and "task 'quickdraw' in" in r.output and "is dataset 'mnist'" in r.output, r.output


# ---------------------------------------------------------------- SIGKILL of writers and importers
KILL_WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from nasbench_xfer.space import NASNetSpace
    from nasbench_xfer.store import Store
    path, start = sys.argv[1], int(sys.argv[2])
    sp = NASNetSpace()
    rng = np.random.default_rng(start)
    with Store.open(path, "a") as st:
        print("READY", flush=True)
        i = start
        while True:
            st.append("cifar10", [dict(arch=a, seed=i, val_metric=float(i), protocol="tiny",
                                       curve=rng.random(20).tolist()) for a in sp.sample_many(50, rng)])
            print("ACK", i, flush=True)
            i += 1
""")


def _kill_writers(tmp_path: Path, rounds: int, seed: int) -> dict[str, int]:
    """Start a writer, let it acknowledge 1-3 appends, kill it (SIGKILL) a random 0-60 ms later,
    i.e. anywhere in its loop, often while it writes or renames a commit; check the store."""
    path = tmp_path / "k.h5"
    _make(path, n=5)
    script = tmp_path / "kw.py"
    script.write_text(KILL_WRITER)
    rng = np.random.default_rng(seed)
    acked_rows = 5
    start = 1
    in_commit_write: list[bool] = []  # per kill: was its commit file being written or renamed?
    for _ in range(rounds):
        acks = kill_after_acks(script, [str(path), str(start)], ENV, rng,
                               lambda pid: in_commit_write.append((tmp_path / f"k.h5.tmp-{pid}").exists()))
        acked_rows += 50 * len(acks)
        with Store.open(path) as st:
            assert st.validate() == []
            rows = st.num_evaluations("cifar10")
            assert acked_rows <= rows <= acked_rows + 50  # at most the append in flight is extra
            seeds = st.evaluations("cifar10")["seed"].to_numpy()
        acked_rows = rows
        start = int(seeds[-1]) + 1
    Store.open(path, "a").close()  # the next writer clears the killed writers' copies
    assert not list(tmp_path.glob("k.h5.tmp-*"))
    return {"kills": rounds, "while_writing_commit_file": sum(in_commit_write), "rows": acked_rows}


def test_sigkill_writers_fast(tmp_path):
    fig = _kill_writers(tmp_path, rounds=6, seed=1)
    FIGURES["writer kills (fast)"] = fig


@pytest.mark.slow
def test_sigkill_writers_many(tmp_path):
    FIGURES["writer kills"] = _kill_writers(tmp_path, rounds=40, seed=2)


KILL_AT = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    from nasbench_xfer.space import NASNetSpace
    from nasbench_xfer.store import Store
    path, point, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
    real_write, real_replace = Store._write_file, os.replace
    armed = [False]

    def write(dest, data):  # "partial": die after half of the commit file is written
        if armed[0] and point == "partial":
            real_write(dest, data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        real_write(dest, data)
        if armed[0] and point == "before-rename":
            os.kill(os.getpid(), signal.SIGKILL)

    def replace(src, dst):
        real_replace(src, dst)
        if armed[0] and point == "after-rename" and str(dst) == path:
            os.kill(os.getpid(), signal.SIGKILL)  # before the folder's fsync and before returning

    Store._write_file = staticmethod(write)
    os.replace = replace
    sp = NASNetSpace()
    rng = np.random.default_rng(start)
    with Store.open(path, "a") as st:
        st.append("cifar10", [dict(arch=a, seed=start, protocol="tiny") for a in sp.sample_many(20, rng)])
        print("ACK", flush=True)
        armed[0] = True
        st.append("cifar10", [dict(arch=a, seed=start + 1, protocol="tiny") for a in sp.sample_many(20, rng)])
        print("NOT KILLED", flush=True)
""")


@pytest.mark.parametrize("point, lands", [("partial", False), ("before-rename", False),
                                          ("after-rename", True)])
def test_sigkill_at_each_step_of_a_commit(tmp_path, point, lands):
    """Kill a writer exactly inside its commit: half-way through writing the commit file, after
    writing it but before the rename, and after the rename (before the folder fsync)."""
    path = tmp_path / "k.h5"
    _make(path, n=5)
    script = tmp_path / "ka.py"
    script.write_text(KILL_AT)
    r = subprocess.run([sys.executable, str(script), str(path), point, "1"], capture_output=True,
                       text=True, env=ENV, timeout=120)
    assert r.returncode == -signal.SIGKILL and r.stdout.split() == ["ACK"], (r.returncode, r.stdout, r.stderr)
    left = list(tmp_path.glob("k.h5.tmp-*"))
    assert bool(left) == (not lands)  # the killed writer's commit file is still there...
    with Store.open(path) as st:
        assert st.validate() == []
        assert st.num_evaluations("cifar10") == 5 + 20 + (20 if lands else 0)
    Store.open(path, "a").close()
    assert not list(tmp_path.glob("k.h5.tmp-*"))  # ...until the next writer removes it
    FIGURES.setdefault("kills inside a commit", {})[point] = "store valid, " + (
        "the commit landed" if lands else "previous version kept")


def _kill_importers(tmp_path: Path, rounds: int, seed: int) -> dict[str, int]:
    """Kill `import csv --overwrite` at random moments; the previous store stays whole (or the new
    one is complete), and the next import removes what the killed ones left."""
    out = tmp_path / "o.h5"
    small = _csv(tmp_path / "small.csv", n=20)
    big = _csv(tmp_path / "big.csv", n=3000, seed=1)
    import_csv(small, out, arch_column="arch", task_columns={"t": "c10"})
    rng = np.random.default_rng(seed)
    left = replaced = 0
    for _ in range(rounds):
        proc = subprocess.Popen([sys.executable, "-m", "nasbench_xfer", "import", "csv", "--csv", str(big),
                                 "--arch-column", "arch", "--task-column", "t=c10", "--out", str(out),
                                 "--overwrite"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        time.sleep(float(rng.uniform(0.5, 6.0)))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        left += bool(list(tmp_path.glob(".o.h5.importing-*")))
        with Store.open(out) as st:
            assert st.validate() == []
            n = st.num_evaluations("t")
        assert n in (20, 3000)
        replaced += n == 3000
        import_csv(small, out, arch_column="arch", task_columns={"t": "c10"}, overwrite=True)
        assert not list(tmp_path.glob(".o.h5.importing-*"))
    return {"kills": rounds, "left_files": left, "replaced_before_kill": replaced}


@pytest.mark.slow
def test_sigkill_importers(tmp_path):
    FIGURES["importer kills"] = _kill_importers(tmp_path, rounds=12, seed=3)


# ---------------------------------------------------------------- byte flips anywhere in the file
def _snapshot(path: Path):
    with Store.open(path) as st:
        return (st.tasks, st.evaluations("cifar10", spec=True).to_csv(), st.curves("cifar10").tobytes(),
                repr(st.task_info("cifar10")), [str(a) for a in st.archs()], repr(st.attrs))


def _flip_sweep(tmp_path: Path, flips: int, seed: int) -> dict[str, int]:
    """Flip one random bit at a random offset, ``flips`` times (each on a fresh copy): the store
    must be refused on opening, or ``validate`` must report it, or every value read must be
    unchanged.  Counted: refused / detected / harmless; a wrong value fails the test."""
    import shutil

    base = tmp_path / "base.h5"
    _make(base, n=30)
    ref = _snapshot(base)
    size = base.stat().st_size
    rng = np.random.default_rng(seed)
    out = {"flips": flips, "refused_on_open": 0, "detected_by_validate": 0, "harmless": 0}
    for _ in range(flips):
        p = tmp_path / "x.h5"
        shutil.copyfile(base, p)
        off, bit = int(rng.integers(0, size)), 1 << int(rng.integers(0, 8))
        with open(p, "r+b") as fh:
            fh.seek(off)
            b = fh.read(1)
            fh.seek(off)
            fh.write(bytes([b[0] ^ bit]))
        try:
            st = Store.open(p)
        except StoreError:
            out["refused_on_open"] += 1
            continue
        with st:
            problems = st.validate()
        if problems:
            out["detected_by_validate"] += 1
            continue
        assert _snapshot(p) == ref, f"bit flip at byte {off} changed data and validate said ok"
        out["harmless"] += 1
    return out


def test_byte_flips_fast(tmp_path):
    fig = _flip_sweep(tmp_path, flips=40, seed=10)
    assert fig["detected_by_validate"] > 0
    FIGURES["byte flips (fast)"] = fig


@pytest.mark.slow
def test_byte_flips_many(tmp_path):
    FIGURES["byte flips"] = _flip_sweep(tmp_path, flips=1000, seed=11)
