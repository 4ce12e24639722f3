"""The HDF5 store: round trips, lookups, merge, validation, bad input, crash safety."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from nasbench_xfer.space import NASNetSpace
from nasbench_xfer.store import SCHEMA_VERSION, Store, StoreError

PROTO = {"epochs": 2, "batch_size": 128, "lr": 0.024}


def _make(path: Path, n: int = 20, seed: int = 0, task: str = "cifar10") -> tuple[Store, list]:
    space = NASNetSpace()
    archs = space.sample_many(n, np.random.default_rng(seed))
    st = Store.create(path, space)
    st.add_task(task, dataset=task, num_classes=10, protocols={"tiny": PROTO},
                extra_columns=["latency"])
    st.append(task, [dict(arch=a, seed=seed, val_metric=0.5 + i / 100, test_metric=0.4 + i / 100,
                          params=1e6 + i, flops=2e8, train_seconds=3.0, protocol="tiny",
                          device="cpu", latency=0.1 * i, curve=[0.1, 0.3, 0.5 + i / 100])
                     for i, a in enumerate(archs)])
    return st, archs


def test_round_trip(tmp_path):
    st, archs = _make(tmp_path / "s.h5")
    st.close()
    with Store.open(tmp_path / "s.h5") as st:
        assert st.tasks == ["cifar10"]
        df = st.evaluations("cifar10", spec=True)
        assert len(df) == 20
        assert list(df.columns[:3]) == ["arch_id", "hash", "spec"]
        assert df["val_metric"].tolist() == pytest.approx([0.5 + i / 100 for i in range(20)])
        assert df["latency"].iloc[3] == pytest.approx(0.3)
        assert (df["protocol"] == "tiny").all() and (df["device"] == "cpu").all()
        curves = st.curves("cifar10")
        assert curves.shape == (20, 3) and curves[5, 2] == pytest.approx(0.55)
        assert st.archs(df["arch_id"][:5]) == [st.space.canonical(a) for a in archs[:5]]
        assert st.space.from_string(df["spec"][0]) == st.space.canonical(archs[0])
        info = st.task_info("cifar10")
        assert info["protocols"] == {"tiny": PROTO} and info["num_classes"] == 10
        assert info["provenance"]["package"] == "nasbench_xfer"
        assert st.validate() == []


def test_lookup_by_arch_equivalent_spec_and_hash(tmp_path, rng):
    st, archs = _make(tmp_path / "s.h5")
    space = st.space
    twin = space.augment(archs[7], rng)  # same network, other spec
    assert st.arch_id(twin) == st.arch_id(archs[7]) == st.arch_id(space.hash(archs[7]))
    vals = st.lookup("cifar10", [archs[7], space.sample(np.random.default_rng(99)), archs[0]])
    assert vals[0] == pytest.approx(0.57) and np.isnan(vals[1]) and vals[2] == pytest.approx(0.5)
    # a second seed averages
    st.append("cifar10", [dict(arch=archs[0], seed=1, val_metric=0.7, protocol="tiny")])
    assert st.lookup("cifar10", [archs[0]])[0] == pytest.approx(0.6)
    assert st.num_archs == 20 and st.num_evaluations("cifar10") == 21
    st.close()


def test_curves_widen_and_pad_with_nan(tmp_path):
    st, archs = _make(tmp_path / "s.h5", n=3)
    st.append("cifar10", [dict(arch=archs[0], seed=5, val_metric=0.9, curve=np.linspace(0, 1, 6))])
    c = st.curves("cifar10")
    assert c.shape == (4, 6) and np.isnan(c[0, 3:]).all() and c[3, 5] == pytest.approx(1.0)
    st.close()


def test_protocols_are_never_mixed_silently(tmp_path):
    st, archs = _make(tmp_path / "s.h5", n=2)
    with pytest.raises(StoreError, match="already has a protocol 'tiny' with another definition"):
        st.register_protocol("cifar10", "tiny", {**PROTO, "epochs": 100})
    with pytest.raises(StoreError, match="uses protocol .paper., not registered for task .cifar10."):
        st.append("cifar10", [dict(arch=archs[0], protocol="paper")])
    st.register_protocol("cifar10", "paper", {"epochs": 100})
    assert st.append("cifar10", [dict(arch=archs[0], protocol="paper")]) == 1
    st.close()


def test_bad_records_are_refused_without_writing(tmp_path):
    st, archs = _make(tmp_path / "s.h5", n=2)
    before = (tmp_path / "s.h5").read_bytes()
    with pytest.raises(StoreError, match=r"unknown columns \['valacc'\]"):
        st.append("cifar10", [dict(arch=archs[0], valacc=1.0)])
    with pytest.raises(StoreError, match="task 'svhn' is not in"):
        st.append("svhn", [dict(arch=archs[0])])
    with pytest.raises(StoreError,
                       match="architecture 0 is not valid in space nasnet: .*expected a NASNetArch, got str"):
        st.append("cifar10", [dict(arch="|nor_conv_3x3~0|", val_metric=1.0)])
    with pytest.raises(StoreError, match="column 'val_metric'"):
        st.append("cifar10", [dict(arch=archs[1], val_metric="high")])
    assert (tmp_path / "s.h5").read_bytes() == before
    assert st.num_evaluations("cifar10") == 2 and st.num_archs == 2
    st.close()


def test_read_only_and_single_writer(tmp_path):
    st, archs = _make(tmp_path / "s.h5", n=2)
    with pytest.raises(StoreError, match="being written by another writer in this process"):
        Store.open(tmp_path / "s.h5", "a")
    reader = Store.open(tmp_path / "s.h5")
    with pytest.raises(StoreError, match="read-only"):
        reader.append("cifar10", [dict(arch=archs[0])])
    st.close()
    Store.open(tmp_path / "s.h5", "a").close()
    reader.close()
    with pytest.raises(StoreError, match="already exists"):
        Store.create(tmp_path / "s.h5", NASNetSpace())


def test_missing_corrupt_foreign_and_newer_files(tmp_path):
    with pytest.raises(StoreError, match="no store at"):
        Store.open(tmp_path / "nope.h5")
    (tmp_path / "junk.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(4000))
    with pytest.raises(StoreError, match="not a readable HDF5 store"):
        Store.open(tmp_path / "junk.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = [1, 2, 3]
    with pytest.raises(StoreError, match="HDF5 file but not a nasbench_xfer store"):
        Store.open(tmp_path / "other.h5")
    st, _ = _make(tmp_path / "new.h5", n=2)
    st.close()
    with h5py.File(tmp_path / "new.h5", "r+") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(StoreError, match=rf"schema version {SCHEMA_VERSION + 1}, newer .*version {SCHEMA_VERSION}"):
        Store.open(tmp_path / "new.h5")
    # truncated store
    st, _ = _make(tmp_path / "t.h5", n=2)
    st.close()
    data = (tmp_path / "t.h5").read_bytes()
    (tmp_path / "t.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError):
        Store.open(tmp_path / "t.h5")


def test_validate_finds_damage(tmp_path):
    st, _ = _make(tmp_path / "s.h5", n=5)
    st.close()
    with h5py.File(tmp_path / "s.h5", "r+") as f:
        f["space/hash"][2] = b"0000000000000000"
        f["tasks/cifar10/seed"].resize((4,))
    with Store.open(tmp_path / "s.h5") as st:
        problems = st.validate()
    assert any("architecture 2: stored hash" in p for p in problems)
    assert any("column seed has 4 rows, expected 5" in p for p in problems)


def test_merge_shards_with_duplicate_rule(tmp_path):
    a, archs_a = _make(tmp_path / "a.h5", n=10, seed=0)
    a.close()
    b, archs_b = _make(tmp_path / "b.h5", n=10, seed=1)
    # b repeats one of a's (arch, seed 0) evaluations with another value: a's must win
    b.append("cifar10", [dict(arch=archs_a[3], seed=0, val_metric=0.0, protocol="tiny")])
    b.add_task("svhn", dataset="svhn", extra_columns=["latency"])
    b.append("svhn", [dict(arch=archs_a[0], val_metric=0.9)])
    b.close()
    with Store.merge([tmp_path / "a.h5", tmp_path / "b.h5"], tmp_path / "m.h5") as m:
        assert m.tasks == ["cifar10", "svhn"]
        assert m.num_evaluations("cifar10") == 20
        assert m.lookup("cifar10", [archs_a[3]])[0] == pytest.approx(0.53)
        assert m.num_archs == 20
        assert m.validate() == []
        assert m.curves("cifar10").shape == (20, 3)
        assert m.lookup("svhn", [archs_a[0]])[0] == pytest.approx(0.9)
    with pytest.raises(StoreError, match="also an input"):
        Store.merge([tmp_path / "a.h5"], tmp_path / "a.h5")


WRITER = textwrap.dedent("""
    import sys, numpy as np
    from nasbench_xfer.space import NASNetSpace
    from nasbench_xfer.store import Store
    path, start = sys.argv[1], int(sys.argv[2])
    space = NASNetSpace()
    if start == 0:
        st = Store.create(path, space, overwrite=True)
        st.add_task("t", dataset="d", extra_columns=["x"])
    else:
        st = Store.open(path, "a")
    rng = np.random.default_rng(start)
    i = start
    while True:
        batch = [dict(arch=space.sample(rng), seed=i, val_metric=float(i), x=float(j),
                      curve=np.arange(1 + i % 7, dtype=float)) for j in range(1 + i % 3)]
        st.append("t", batch)
        print(i, len(batch), flush=True)
        i += 1
""")


def test_sigkill_at_any_moment_loses_no_returned_append(tmp_path):
    path = tmp_path / "crash.h5"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    acknowledged_rows = 0
    start = 0
    rng = np.random.default_rng(0)
    for round_ in range(6):
        proc = subprocess.Popen([sys.executable, str(script), str(path), str(start)],
                                stdout=subprocess.PIPE, text=True, env=env)
        # let it run a random while, then kill it wherever it is
        time.sleep(float(rng.uniform(1.0, 2.5)) if round_ == 0 else float(rng.uniform(0.2, 1.2)))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        lines = [line.split() for line in out.splitlines() if line.strip()]
        for _i, n in lines:
            acknowledged_rows += int(n)
        if lines:
            start = int(lines[-1][0]) + 1
        if not path.exists():
            continue
        with Store.open(path) as st:
            assert st.validate() == []
            rows = st.num_evaluations("t")
            # every acknowledged append is there; at most the one in flight is extra
            assert acknowledged_rows <= rows <= acknowledged_rows + 3
            df = st.evaluations("t")
            seeds = df["seed"].to_numpy()
            assert (np.diff(seeds) >= 0).all()
            curves = st.curves("t")
            assert len(curves) == rows
        # the next writer resumes where the acknowledged appends stopped
        acknowledged_rows = rows
        if rows:
            start = int(seeds[-1]) + 1
    assert acknowledged_rows > 0
    # copies left by killed writers are removed by the next writer
    Store.open(path, "a").close()
    assert not list(tmp_path.glob("crash.h5.tmp-*"))


def test_lock_message_names_the_holder_this_process_or_another(tmp_path):
    """A Store of this process left open for writing is named as such (not as "another process"),
    and a writer in another process by its PID; both are StoreLocked (a StoreError) with ``pid``."""
    from nasbench_xfer.store import StoreLocked

    path = tmp_path / "s.h5"
    st, _ = _make(path, n=2)
    with pytest.raises(StoreLocked, match="another writer in this process") as exc:
        Store.open(path, "a")
    assert exc.value.here and exc.value.pid == os.getpid() and "another process" not in str(exc.value)
    other, _ = _make(tmp_path / "o.h5", n=3, seed=1)
    with pytest.raises(StoreLocked, match="another writer in this process"):
        Store.merge([path], tmp_path / "o.h5", overwrite=True)  # its output is open for writing here
    with pytest.raises(StoreLocked, match="another writer in this process"):
        Store.create(tmp_path / "o.h5", NASNetSpace(), overwrite=True)
    assert other.num_evaluations("cifar10") == 3
    other.close()
    st.close()
    holder = textwrap.dedent("""
        import sys, time
        from nasbench_xfer.store import Store
        st = Store.open(sys.argv[1], "a")
        print("open", flush=True)
        time.sleep(60)
    """)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", holder, str(path)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
        with pytest.raises(StoreLocked, match=rf"being written by another process \(PID {proc.pid} holds") as exc:
            Store.open(path, "a")
        assert exc.value.pid == proc.pid
        # the holder is told by the lock file's identity, not by the PID written in it (another
        # PID namespace may reuse ours): our PID in the file still reads as another process
        (tmp_path / "s.h5.lock").write_text(f"{os.getpid()}\n")
        with pytest.raises(StoreLocked, match="being written by another process") as exc:
            Store.open(path, "a")
        assert not exc.value.here
    finally:
        proc.kill()
        proc.wait()
    with Store.open(path, "a") as again:  # the lock died with its holder
        assert again.num_evaluations("cifar10") == 2


def test_a_store_that_lost_a_whole_task_is_refused_on_open(tmp_path):
    """A task group deleted outside nasbench_xfer (its digests remain) is named on every open,
    not silently left out of ``tasks`` (and of a search's default sources); validate still
    reports it in full."""
    from click.testing import CliRunner

    from nasbench_xfer.cli.main import cli

    path = tmp_path / "s.h5"
    st, archs = _make(path, n=3)
    st.add_task("other", dataset="d")
    st.append("other", [dict(arch=archs[0], val_metric=0.5)])
    st.close()
    with h5py.File(path, "a") as f:
        del f["tasks/other"]
    before = path.read_bytes()
    for mode in ("r", "a"):
        with pytest.raises(StoreError, match=r"damaged store: task\(s\) other listed in its checksums but "
                                             r"missing from the file; run `nasbench-xfer validate"):
            Store.open(path, mode)
    with Store.open(path, for_validation=True) as st:
        assert st.tasks == ["cifar10"]
        assert "/tasks/other: listed in the checksums but missing from the file" in st.validate()
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code != 0 and "/tasks/other: listed in the checksums but missing" in result.output
    result = CliRunner().invoke(cli, ["export", str(path), "-o", str(tmp_path / "x.csv")])
    assert result.exit_code != 0 and "task(s) other listed in its checksums" in result.output
    assert not (tmp_path / "x.csv").exists() and path.read_bytes() == before
    with pytest.raises(StoreError, match="read-only"):
        Store.open(path, "a", for_validation=True)


def test_a_pipe_is_not_opened_as_a_store(tmp_path):
    fifo = tmp_path / "f.h5"
    os.mkfifo(fifo)
    with pytest.raises(StoreError, match="is not a regular file"):
        Store.open(fifo)  # h5py would block on it


def test_overwrite_never_replaces_a_store_being_written(tmp_path):
    st, _ = _make(tmp_path / "s.h5", n=3)
    with pytest.raises(StoreError, match="being written by another writer in this process"):
        Store.create(tmp_path / "s.h5", NASNetSpace(), overwrite=True)
    assert st.num_evaluations("cifar10") == 3
    st.close()
    with Store.open(tmp_path / "s.h5") as again:
        assert again.tasks == ["cifar10"]


def test_failed_merge_leaves_the_output_alone(tmp_path):
    a, archs = _make(tmp_path / "a.h5", n=3)
    a.close()
    with Store.create(tmp_path / "b.h5", NASNetSpace()) as b:  # a task cifar10 of another dataset
        b.add_task("cifar10", dataset="svhn", num_classes=10, extra_columns=["latency"])
    c, _ = _make(tmp_path / "out.h5", n=1, task="old")
    c.close()
    before = (tmp_path / "out.h5").read_bytes()
    with pytest.raises(StoreError, match="dataset differs"):
        Store.merge([tmp_path / "a.h5", tmp_path / "b.h5"], tmp_path / "out.h5", overwrite=True)
    assert (tmp_path / "out.h5").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if "merge" in p.name) == []
    Store.open(tmp_path / "out.h5", "a").close()  # no lock was leaked


def test_merge_refuses_a_task_evaluated_on_another_validation_split(tmp_path):
    for name, sha, seed in (("a.h5", "aaa", 0), ("b.h5", "bbb", 1)):
        with Store.create(tmp_path / name, NASNetSpace()) as st:
            st.add_task("mnist", dataset="mnist", num_classes=10,
                        info={"val_indices_sha1": sha, "split_seed": seed})
    with pytest.raises(StoreError, match=r"task 'mnist' was evaluated on another validation split .*"
                                         r"\(split seed 1, here 0\)"):
        Store.merge([tmp_path / "a.h5", tmp_path / "b.h5"], tmp_path / "m.h5")
    assert not (tmp_path / "m.h5").exists()


def test_merge_takes_an_unrecorded_num_classes_from_the_other_input(tmp_path):
    """-1 is "not recorded" (TransNAS imports before they recorded it): merged with a known value,
    in either order, the known one is kept; two known values that differ are refused."""
    for name, ncls in (("unknown.h5", -1), ("ten.h5", 10), ("five.h5", 5)):
        with Store.create(tmp_path / name, NASNetSpace()) as st:
            st.add_task("mnist", dataset="mnist", num_classes=ncls)
    for order in (["unknown.h5", "ten.h5"], ["ten.h5", "unknown.h5"]):
        Store.merge([tmp_path / n for n in order], tmp_path / "m.h5", overwrite=True).close()
        with Store.open(tmp_path / "m.h5") as st:
            assert st.task_info("mnist")["num_classes"] == 10 and st.validate() == []
    with pytest.raises(StoreError, match=r"num_classes differs between inputs \(10 vs 5"):
        Store.merge([tmp_path / "ten.h5", tmp_path / "five.h5"], tmp_path / "m2.h5")


def test_merge_keeps_interior_nan_epochs(tmp_path):
    st, archs = _make(tmp_path / "a.h5", n=1)
    st.append("cifar10", [dict(arch=archs[0], seed=9, curve=[0.1, np.nan, 0.3])])
    st.close()
    with Store.merge([tmp_path / "a.h5"], tmp_path / "m.h5") as m:
        c = m.curves("cifar10")[1]
        assert c[0] == pytest.approx(0.1) and np.isnan(c[1]) and c[2] == pytest.approx(0.3)


def test_dataframe_append_treats_empty_cells_as_missing(tmp_path):
    import pandas as pd

    st, archs = _make(tmp_path / "a.h5", n=2)
    frame = pd.DataFrame({"arch": archs, "val_metric": [0.1, np.nan], "protocol": ["tiny", np.nan],
                          "device": [np.nan, "cpu"]})
    st.append("cifar10", frame)
    df = st.evaluations("cifar10").tail(2)
    assert df["device"].tolist() == ["", "cpu"] and df["protocol"].tolist() == ["tiny", ""]
    st.close()


def test_lookup_by_spec_string_and_top(tmp_path):
    """The Python API takes spec strings where the CLI does, and top(task, k) ranks a task."""
    from nasbench_xfer.space import TransNASMicroSpace

    space = TransNASMicroSpace()
    archs = [space.from_dense_index(i) for i in (5, 17, 300, 4000)]
    path = tmp_path / "tn.h5"
    with Store.create(path, space) as st:
        st.add_task("loss", dataset="x", metric="l2", higher_is_better=False)
        st.append("loss", [dict(arch=a, val_metric=v, seed=s) for a, v, s in
                           zip(archs + archs[:1], [0.3, 0.1, 0.2, 0.4, 0.5], [0, 0, 0, 0, 1])])
    with Store.open(path) as st:
        specs = [space.to_string(a) for a in archs]
        np.testing.assert_allclose(st.lookup("loss", specs), [0.4, 0.1, 0.2, 0.4])  # 0.4: mean of two seeds
        assert np.isnan(st.lookup("loss", [space.to_string(space.from_dense_index(9))])).all()  # not held
        top = st.top("loss", 2)  # lower is better here
        assert top["spec"].tolist() == [specs[1], specs[2]] and top["val_metric"].tolist() == [0.1, 0.2]
        assert st.top("loss", 10)["seeds"].tolist() == [1, 1, 2, 1]
        with pytest.raises(StoreError, match="is not a spec string of space transnas_micro"):
            st.lookup("loss", ["(9, 9)"])
        with pytest.raises(StoreError, match="k must be a positive integer"):
            st.top("loss", 0)


def test_epoch_queries_read_the_learning_curves(tmp_path):
    st, archs = _make(tmp_path / "s.h5")
    # a second seed of archs[4] with a longer curve, through the append journal
    st.append("cifar10", [dict(arch=archs[4], seed=1, val_metric=0.6, curve=[0.3, 0.5, 0.7, 0.9])])
    st.close()
    with Store.open(tmp_path / "s.h5") as st:
        assert st.lookup("cifar10", archs[:3], epoch=2) == pytest.approx([0.3, 0.3, 0.3])
        assert st.lookup("cifar10", [archs[4]], epoch=1)[0] == pytest.approx((0.1 + 0.3) / 2)
        assert st.lookup("cifar10", [archs[5]], epoch=3)[0] == pytest.approx(0.55)
        # past the end of the 3-epoch curves only the 4-epoch one answers; others are NaN
        four = st.lookup("cifar10", [archs[4], archs[5]], epoch=4)
        assert four[0] == pytest.approx(0.9) and np.isnan(four[1])
        spec = st.space.to_string(archs[4])
        c = st.curve("cifar10", spec)
        assert c.shape == (2, 4) and c[0, 2] == pytest.approx(0.54) and np.isnan(c[0, 3])
        assert st.curve("cifar10", st.space.sample(np.random.default_rng(99))).shape == (0, 4)
        with pytest.raises(StoreError, match="at most 4 epochs; epoch=5"):
            st.lookup("cifar10", archs[:1], epoch=5)
        with pytest.raises(StoreError, match="epoch must be a positive integer"):
            st.lookup("cifar10", archs[:1], epoch=0)
        with pytest.raises(StoreError, match="column must be 'val_metric'"):
            st.lookup("cifar10", archs[:1], "test_metric", epoch=1)
