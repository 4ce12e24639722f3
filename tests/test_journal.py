"""The append journal (STORE.h5.journal): reads see its rows, compaction folds them in, and
killed writers, torn tails and flipped bytes never lose an acknowledged append or turn
into wrong data."""
from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from killed_writers import kill_after_acks

from nasbench_xfer.cli.main import cli
from nasbench_xfer.space import NASNetSpace, get_space
from nasbench_xfer.store import Store, StoreError

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
PROTO = {"epochs": 2}


@pytest.fixture(autouse=True)
def _journal_always(monkeypatch):
    """Every append in this module goes to the journal (stores here are small), and nothing
    is compacted unless a test asks."""
    monkeypatch.setattr(Store, "journal_min_bytes", 0)
    monkeypatch.setattr(Store, "compact_fraction", 1e9)


def _records(archs, seed: int, n_epochs: int = 3) -> list[dict]:
    return [dict(arch=a, seed=seed, val_metric=0.5 + i / 100, test_metric=0.25 + i / 7,
                 params=1e6 + i, protocol="tiny", device="cpu", status="ok", latency=0.1 * i,
                 curve=[0.1, np.nan, 0.5 + i / 100][:n_epochs]) for i, a in enumerate(archs)]


def _make(path: Path, n: int = 6) -> list:
    """A store whose file holds ``n`` evaluations (one whole-file commit)."""
    space = NASNetSpace()
    archs = space.sample_many(2 * n, np.random.default_rng(0))
    with Store.create(path, space) as st:
        st.add_task("cifar10", dataset="cifar10", protocols={"tiny": PROTO}, extra_columns=["latency"])
        with st.batch():  # inside a commit: the file, not the journal
            st.append("cifar10", _records(archs[:n], seed=0))
    return archs


def _snapshot(st: Store):
    return (st.num_archs, st.num_evaluations("cifar10"), st.evaluations("cifar10", spec=True).to_csv(),
            st.curves("cifar10").tobytes(), [str(a) for a in st.archs()],
            st.metric_table("cifar10").tobytes(), st.summary()["tasks"]["cifar10"])


def _journal(path: Path) -> Path:
    return path.with_name(path.name + ".journal")


def test_reads_see_journal_rows_and_compaction_keeps_them(tmp_path):
    path = tmp_path / "s.h5"
    archs = _make(path)
    size = path.stat().st_size
    with Store.open(path, "a") as st:
        st.append("cifar10", _records(archs[3:9], seed=1, n_epochs=1))  # 3 old, 3 new archs
        st.append("cifar10", [dict(arch_id=0, seed=7, val_metric=0.9, curve=list(np.linspace(0, 1, 6)))])
        assert path.stat().st_size == size and _journal(path).exists()  # the file was not copied
        assert st.num_evaluations("cifar10") == 13 and st.num_archs == 9
        notes: list[str] = []
        assert st.validate(notes=notes) == [] and any("7 row(s)" in n for n in notes)
        mine = _snapshot(st)
        with Store.open(path) as reader:  # another reader sees the same
            assert _snapshot(reader) == mine
            notes = []
            assert reader.validate(notes=notes) == []
            assert any("2 appended record(s), 7 row(s)" in n for n in notes)
            assert reader.lookup("cifar10", [archs[8], archs[0]]) == pytest.approx([0.55, 0.7])
            assert reader.arch_id(archs[8]) == 8 and reader.curves("cifar10").shape == (13, 6)
        size = _journal(path).stat().st_size
        assert st.compact() == {"records": 2, "rows": 7, "journal_bytes": size}
        assert not _journal(path).exists() and _snapshot(st) == mine
    with Store.open(path) as st:
        assert _snapshot(st) == mine and st.validate() == []


def test_whole_file_commits_fold_the_journal_first(tmp_path):
    path = tmp_path / "s.h5"
    archs = _make(path)
    with Store.open(path, "a") as st:
        st.append("cifar10", _records(archs[6:8], seed=1))
        before = _snapshot(st)
        st.add_task("svhn", dataset="svhn")  # a whole-file commit
        assert not _journal(path).exists() and _snapshot(st) == before
        st.append("svhn", [dict(arch=archs[11], val_metric=0.3)])  # a new journal
        assert _journal(path).exists()
    with Store.open(path) as st:
        assert st.evaluations("cifar10", spec=True).to_csv() == before[2]
        assert st.num_evaluations("svhn") == 1 and st.num_archs == 9 and st.validate() == []


def test_auto_compaction(tmp_path, monkeypatch):
    monkeypatch.setattr(Store, "compact_fraction", 1e-6)
    path = tmp_path / "s.h5"
    archs = _make(path)
    with Store.open(path, "a") as st:
        for i in range(3):
            st.append("cifar10", _records(archs[i:i + 1], seed=10 + i))
            assert not _journal(path).exists()  # folded right away
        assert st.num_evaluations("cifar10") == 9 and st.validate() == []


def test_enumerable_space_dense_lookups_see_journal_archs(tmp_path):
    space = get_space("nb201", {})
    archs = space.sample_many(8, np.random.default_rng(1))
    path = tmp_path / "nb.h5"
    with Store.create(path, space) as st:
        st.add_task("c10", dataset="cifar10")
        with st.batch():
            st.append("c10", [dict(arch=a, val_metric=float(i)) for i, a in enumerate(archs[:4])])
        st.append("c10", [dict(arch=a, val_metric=float(i + 4)) for i, a in enumerate(archs[4:])])
        assert _journal(path).exists()
    raw = np.asarray([space.dense_index(a) for a in archs])
    with Store.open(path) as st:
        assert st.lookup("c10", dense_index=raw) == pytest.approx(np.arange(8.0))
        assert st.lookup("c10", archs) == pytest.approx(np.arange(8.0))
    with Store.open(path, "a") as st:
        st.compact()
        assert st.lookup("c10", dense_index=raw) == pytest.approx(np.arange(8.0))


def test_torn_tail_is_ignored_and_cut_by_the_next_writer(tmp_path):
    path = tmp_path / "s.h5"
    archs = _make(path)
    with Store.open(path, "a") as st:
        st.append("cifar10", _records(archs[6:7], seed=1))
        st.append("cifar10", _records(archs[7:8], seed=2))
        two = st.num_evaluations("cifar10")
        st.append("cifar10", _records(archs[8:9], seed=3))
    full = _journal(path).read_bytes()
    for cut in (1, 30, 60, 300):  # inside the payload and inside the last record's header
        _journal(path).write_bytes(full[:-cut])
        with Store.open(path) as st:
            assert st.num_evaluations("cifar10") == two
            notes: list[str] = []
            assert st.validate(notes=notes) == [] and any("torn last record" in n for n in notes)
    with Store.open(path, "a") as st:  # the next writer cuts the tail, then appends
        st.append("cifar10", _records(archs[9:10], seed=4))
    with Store.open(path) as st:
        assert st.num_evaluations("cifar10") == two + 1 and st.validate() == []
        assert st.evaluations("cifar10")["seed"].tolist()[-3:] == [1, 2, 4]


@pytest.mark.faults
def test_every_flipped_byte_in_the_journal_is_detected(tmp_path):
    base = tmp_path / "base.h5"
    archs = _make(base)
    with Store.open(base, "a") as st:
        st.append("cifar10", _records(archs[6:8], seed=1))
        st.append("cifar10", _records(archs[2:3], seed=2))
        ref = _snapshot(st)
    data = _journal(base).read_bytes()
    rng = np.random.default_rng(5)
    offsets = sorted(set(range(0, 120)) | set(rng.integers(0, len(data), 200).tolist()))
    detected = 0
    for off in offsets:
        p = tmp_path / "x.h5"
        shutil.copyfile(base, p)
        flipped = bytearray(data)
        flipped[off] ^= 1 << int(rng.integers(0, 8))
        _journal(p).write_bytes(bytes(flipped))
        with Store.open(p) as st:
            problems = st.validate()
            assert problems and "damaged journal" in problems[0], (off, problems)
            with pytest.raises(StoreError, match="damaged journal.*validate"):
                st.evaluations("cifar10")
        with pytest.raises(StoreError, match="damaged"):  # no writer appends after damage
            with Store.open(p, "a") as st:
                st.append("cifar10", _records(archs[:1], seed=9))
        detected += 1
    assert detected == len(offsets)
    with Store.open(base) as st:
        assert _snapshot(st) == ref


def _journal_then_compacted(path: Path) -> tuple[bytes, tuple]:
    """A store with one journal append, compacted: (the journal's bytes before the compaction
    folded it in, the store's snapshot after)."""
    archs = _make(path)
    with Store.open(path, "a") as st:
        st.append("cifar10", _records(archs[6:9], seed=1))
        old = _journal(path).read_bytes()
        st.compact()
        return old, _snapshot(st)


def test_a_journal_already_folded_is_never_applied_twice(tmp_path):
    """A writer killed after its compaction's rename but before removing the journal leaves
    the old journal beside the new file: it names the old generation, so it is ignored."""
    path = tmp_path / "s.h5"
    old, ref = _journal_then_compacted(path)
    _journal(path).write_bytes(old)
    with Store.open(path) as st:
        notes: list[str] = []
        assert _snapshot(st) == ref and st.validate(notes=notes) == []
        assert any("already folded" in n for n in notes)
    Store.open(path, "a").close()  # the next writer removes it
    assert not _journal(path).exists()


def test_a_journal_of_another_version_is_kept_aside_not_deleted(tmp_path, caplog):
    """A journal copied beside another version of the file (a store restored or replaced by
    hand) is not called "already folded": its rows are in no file.  validate says so, and the
    next writer moves it aside (with a warning) instead of deleting it."""
    import logging

    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    archs = _make(a)
    _make(b)
    with Store.open(b, "a") as st:
        st.append("cifar10", _records(archs[6:10], seed=1))
        foreign = _journal(b).read_bytes()
    _journal(a).write_bytes(foreign)
    with Store.open(a) as st:
        notes: list[str] = []
        assert st.validate(notes=notes) == [] and st.num_evaluations("cifar10") == 6
        note = next(n for n in notes if "journal" in n)
        assert "extends another version of this file" in note
        assert "1 append(s) are not read" in note and "already folded" not in note
    with caplog.at_level(logging.WARNING, logger="nasbench_xfer"):
        Store.open(a, "a").close()
    assert not _journal(a).exists()
    kept = list(tmp_path.glob("a.h5.journal.orphan-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == foreign
    assert "may be in no file, so it was kept aside as a.h5.journal.orphan-" in caplog.text
    _journal(a).write_bytes(foreign)  # the same journal again: kept beside the first, not over it
    Store.open(a, "a").close()
    kept = sorted(tmp_path.glob("a.h5.journal.orphan-*"))
    assert len(kept) == 2 and kept[1].name.endswith("-2") and kept[1].read_bytes() == foreign


def test_a_leftover_journal_beside_a_file_from_before_parents_were_recorded(tmp_path):
    """A file written before commits recorded their parent cannot tell a folded journal from a
    foreign one: validate says so (not "may be in no file" as a fact), and the journal is kept
    aside rather than deleted; no row is read twice."""
    import h5py

    path = tmp_path / "s.h5"
    old, ref = _journal_then_compacted(path)
    with h5py.File(path, "a") as f:  # as an older nasbench_xfer wrote it (digests of attributes aside)
        del f.attrs["nbx_parent_generation"]
    _journal(path).write_bytes(old)
    with Store.open(path) as st:
        notes: list[str] = []
        st.validate(notes=notes)
        assert _snapshot(st) == ref
        note = next(n for n in notes if "journal" in n)
        assert "a writer killed after folding it in, or a journal of another version" in note
    Store.open(path, "a").close()
    assert not _journal(path).exists() and len(list(tmp_path.glob("s.h5.journal.orphan-*"))) == 1


def test_replacing_commands_drop_the_journal_and_merge_reads_it(tmp_path):
    from nasbench_xfer.importers import import_csv

    a = tmp_path / "a.h5"
    archs = _make(a)
    with Store.open(a, "a") as st:
        st.append("cifar10", _records(archs[6:9], seed=1))
    with Store.merge([a], tmp_path / "m.h5") as m:  # an input's journal rows are merged
        assert m.num_evaluations("cifar10") == 9
    out = tmp_path / "m.h5"
    with Store.open(out, "a") as st:
        st.append("cifar10", _records(archs[9:10], seed=2))
    assert _journal(out).exists()
    with Store.merge([a], out, overwrite=True) as m:  # replaced: its journal goes with it
        assert m.num_evaluations("cifar10") == 9 and not _journal(out).exists()
    csv = tmp_path / "t.csv"
    pd.DataFrame({"arch": [NASNetSpace().to_string(x) for x in archs[:3]], "acc": [0.1, 0.2, 0.3]}).to_csv(
        csv, index=False)
    with Store.open(out, "a") as st:
        st.append("cifar10", _records(archs[9:10], seed=2))
    import_csv(csv, out, arch_column="arch", task_columns={"t": "acc"}, space="nasnet", overwrite=True)
    assert not _journal(out).exists()
    with Store.open(out) as st:
        assert st.tasks == ["t"] and st.num_evaluations("t") == 3 and st.validate() == []
    assert _journal(a).exists()
    Store.create(a, NASNetSpace(), overwrite=True).close()  # create(overwrite=True) too
    assert not _journal(a).exists()


def test_cli_compact(tmp_path):
    path = tmp_path / "s.h5"
    archs = _make(path)
    with Store.open(path, "a") as st:
        st.append("cifar10", _records(archs[6:8], seed=1))
    r = CliRunner().invoke(cli, ["compact", str(path)])
    assert r.exit_code == 0 and "folded 1 journal record(s), 2 evaluation(s)" in r.output, r.output
    assert not _journal(path).exists()
    r = CliRunner().invoke(cli, ["compact", str(path)])
    assert r.exit_code == 0 and "no journal to compact" in r.output
    with Store.open(path) as st:
        assert st.num_evaluations("cifar10") == 8


def test_journal_goes_through_symlinks_with_the_file_mode(tmp_path):
    real = tmp_path / "data" / "s.h5"
    real.parent.mkdir()
    archs = _make(real)
    os.chmod(real, 0o640)
    link = tmp_path / "link.h5"
    link.symlink_to(real)
    with Store.open(link, "a") as st:
        st.append("cifar10", _records(archs[6:7], seed=1))
        with pytest.raises(StoreError, match="being written by another writer in this process"):
            Store.open(real, "a")  # one lock for link and target
    assert _journal(real).exists() and not _journal(link).exists()
    assert stat.S_IMODE(_journal(real).stat().st_mode) == 0o640
    with Store.open(link, "a") as st:
        st.compact()
    assert link.is_symlink() and stat.S_IMODE(real.stat().st_mode) == 0o640


# ------------------------------------------------------------------ full disk and kills
SETUP = """
    import os, signal, sys
    import numpy as np
    from nasbench_xfer.space import NASNetSpace
    from nasbench_xfer.store import Store, StoreError, journal
    Store.journal_min_bytes = 0
    Store.compact_fraction = float(os.environ.get("NBX_COMPACT_FRACTION", "1e9"))
"""

FULL_DISK = textwrap.dedent(SETUP + """
    import resource
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # writes past the limit fail with EFBIG
    path, limit = sys.argv[1], int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    sp = NASNetSpace()
    rng = np.random.default_rng(0)
    with Store.open(path, "a") as st:
        for i in range(1000):
            try:
                st.append("cifar10", [dict(arch=a, seed=100 + i, protocol="tiny", curve=list(rng.random(50)))
                                      for a in sp.sample_many(20, rng)])
            except StoreError as exc:
                print("REFUSED", exc)
                break
            print("ACK", i, flush=True)
""")


@pytest.mark.faults
def test_full_disk_while_appending_to_the_journal(tmp_path):
    path = tmp_path / "s.h5"
    _make(path)
    script = tmp_path / "full.py"
    script.write_text(FULL_DISK)
    r = subprocess.run([sys.executable, str(script), str(path), str(300_000)], capture_output=True,
                       text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    acks = [line for line in r.stdout.splitlines() if line.startswith("ACK")]
    assert acks and "REFUSED cannot write" in r.stdout and "(the store is unchanged)" in r.stdout
    with Store.open(path) as st:
        notes: list[str] = []
        assert st.validate(notes=notes) == [] and not any("torn" in n for n in notes)
        assert st.num_evaluations("cifar10") == 6 + 20 * len(acks)


KILLED_WRITER = textwrap.dedent(SETUP + """
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


def _kill_journal_writers(tmp_path: Path, rounds: int, seed: int, compact_fraction: float) -> dict:
    """Like test_faults._kill_writers (the same round: killed_writers.kill_after_acks), with
    every append going to the journal (and, with a small ``compact_fraction``, compactions now
    and then): SIGKILL 0-60 ms after 1-3 acknowledged appends; every acknowledged row must be
    there and the store valid."""
    path = tmp_path / "k.h5"
    _make(path, n=5)
    compactions = 0
    script = tmp_path / "kw.py"
    script.write_text(KILLED_WRITER)
    env = {**ENV, "NBX_COMPACT_FRACTION": str(compact_fraction)}
    rng = np.random.default_rng(seed)
    acked_rows, start, torn = 5, 1, 0
    for _ in range(rounds):
        acks = kill_after_acks(script, [str(path), str(start)], env, rng)
        acked_rows += 50 * len(acks)
        with Store.open(path) as st:
            notes: list[str] = []
            assert st.validate(full=False, notes=notes) == []
            torn += any("torn" in n for n in notes)
            rows = st.num_evaluations("cifar10")
            assert acked_rows <= rows <= acked_rows + 50  # at most the append in flight is extra
            seeds = st.evaluations("cifar10")["seed"].to_numpy()
            assert (np.diff(seeds) >= 0).all()
        acked_rows = rows
        start = int(seeds[-1]) + 1
        compactions += not _journal(path).exists()
    with Store.open(path, "a") as st:
        st.compact()
        assert st.validate() == [] and st.num_evaluations("cifar10") == acked_rows
    assert not _journal(path).exists() and not list(tmp_path.glob("k.h5.tmp-*"))
    return {"kills": rounds, "torn_tails_seen": torn, "rows": acked_rows,
            "rounds_ending_compacted": compactions}


@pytest.mark.faults
def test_sigkill_journal_writers_fast(tmp_path):
    _kill_journal_writers(tmp_path, rounds=5, seed=1, compact_fraction=1e9)


@pytest.mark.faults
@pytest.mark.slow
def test_sigkill_journal_writers_many(tmp_path):
    fig = _kill_journal_writers(tmp_path, rounds=25, seed=2, compact_fraction=1e9)
    print("journal writer kills:", fig)


@pytest.mark.faults
@pytest.mark.slow
def test_sigkill_journal_writers_with_compactions(tmp_path):
    fig = _kill_journal_writers(tmp_path, rounds=25, seed=3, compact_fraction=0.3)
    print("journal writer kills with compactions:", fig)


KILL_AT = textwrap.dedent(SETUP + """
    path, point = sys.argv[1], sys.argv[2]
    real_write, real_remove = journal.JournalWriter.write, journal.remove
    armed = [False]

    def write(self, record):
        if armed[0] and point == "torn":       # half of the record, then die
            os.pwrite(self.fd, record[: len(record) // 2], self.end)
            os.kill(os.getpid(), signal.SIGKILL)
        real_write(self, record)
        if armed[0] and point == "written":    # all of it, before returning
            os.kill(os.getpid(), signal.SIGKILL)

    def remove(p):                             # compaction renamed the file, journal not removed
        if armed[0] and point == "folded":
            os.kill(os.getpid(), signal.SIGKILL)
        real_remove(p)

    journal.JournalWriter.write = write
    journal.remove = remove
    sp = NASNetSpace()
    rng = np.random.default_rng(1)
    with Store.open(path, "a") as st:
        st.append("cifar10", [dict(arch=a, seed=1, protocol="tiny") for a in sp.sample_many(20, rng)])
        print("ACK", flush=True)
        armed[0] = True
        st.append("cifar10", [dict(arch=a, seed=2, protocol="tiny") for a in sp.sample_many(20, rng)])
        st.compact()
        print("NOT KILLED", flush=True)
""")


@pytest.mark.faults
@pytest.mark.parametrize("point, rows", [("torn", 25), ("written", 45), ("folded", 45)])
def test_sigkill_at_each_step_of_a_journal_append(tmp_path, point, rows):
    path = tmp_path / "k.h5"
    _make(path, n=5)
    script = tmp_path / "ka.py"
    script.write_text(KILL_AT)
    r = subprocess.run([sys.executable, str(script), str(path), point], capture_output=True,
                       text=True, env=ENV, timeout=120)
    assert r.returncode == -signal.SIGKILL and r.stdout.split() == ["ACK"], (r.returncode, r.stdout, r.stderr)
    with Store.open(path) as st:
        notes: list[str] = []
        assert st.validate(notes=notes) == [] and st.num_evaluations("cifar10") == rows
        assert any("torn" in n for n in notes) == (point == "torn")
        assert any("already folded" in n for n in notes) == (point == "folded")
    with Store.open(path, "a") as st:  # the next writer cuts a torn tail / removes a folded journal
        st.append("cifar10", [dict(arch_id=0, seed=3)])
    with Store.open(path) as st:
        assert st.validate() == [] and st.num_evaluations("cifar10") == rows + 1


@pytest.mark.faults
def test_train_on_a_full_disk_spills_with_the_journal(tmp_path, monkeypatch):
    """test_faults' full-disk `train` case with the append going to the journal: the finished
    evaluation goes to the side file, the store is unchanged, the next run adds it."""
    import json

    import nasbench_xfer.datasets as ds
    from nasbench_xfer.harness.runner import RunError, load_archs, prepare_store, run
    from nasbench_xfer.store import journal

    _real_write = journal.JournalWriter.write
    shared = REPO.parent / "shared" / "data"
    if not shared.exists():
        pytest.fail(f"shared data not found at {shared}")
    task = ds.load_task("quickdraw", shared, download=False)
    archs = load_archs(["xfernasnet"])
    store = tmp_path / "qd.h5"
    kw = dict(protocol="smoke", seeds=[0], task_data=task, log=lambda s: None)
    prepare_store(store, task, "smoke")
    before = store.read_bytes()

    def full(self, record):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal.JournalWriter, "write", full)
    with pytest.raises(RunError, match=r"No space left on device \(the store is unchanged\); they are saved in "
                                       r"(\S+) and the next run") as err:
        run(store, "quickdraw", archs, **kw)
    side = Path(err.value.args[0].split("saved in ")[1].split(" and")[0])
    assert side.exists() and store.read_bytes() == before
    assert not _journal(store).exists()  # its header could not be written either: removed
    saved = json.loads(side.read_text().splitlines()[0])
    monkeypatch.setattr(journal.JournalWriter, "write", _real_write)
    again = run(store, "quickdraw", archs, **kw)
    assert (again["skipped"], again["trained"]) == (1, 0) and not side.exists()
    with Store.open(store) as st:
        assert st.num_evaluations("quickdraw") == 1 and st.validate() == []
        assert st.evaluations("quickdraw")["val_metric"].iloc[0] == pytest.approx(saved["row"]["val_metric"])
