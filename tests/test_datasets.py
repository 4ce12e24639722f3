"""Dataset loaders on the real files in ../shared/data, splits, metadata and the generic formats."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

import nasbench_xfer.datasets

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def ds():
    if not SHARED.exists():
        pytest.fail(f"shared data not found at {SHARED}")
    return nasbench_xfer.datasets


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NASBENCH_XFER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_mnist_idx_flat_folder(ds):
    task = ds.load_task("mnist", SHARED, download=False)
    assert task.sizes() == {"train": 55000, "val": 5000, "test": 10000}
    assert task.train_x.dtype == torch.uint8 and task.train_x.shape[1:] == (1, 32, 32)
    assert task.train_y.dtype == torch.int64 and task.classes == [str(i) for i in range(10)]
    # 28x28 zero-padded by 2 on every side, pixels exact
    raw_test = ds.read_idx(SHARED / "mnist" / "t10k-images-idx3-ubyte.gz")
    assert torch.equal(task.test_x[:, 0, 2:30, 2:30], torch.from_numpy(raw_test))
    assert task.test_x[:, :, :2].sum() == 0 and task.test_x[:, :, :, 30:].sum() == 0
    pre = task.preprocessing
    assert pre["grayscale_pad"]["to"] == [32, 32] and len(pre["mean"]) == 1 and pre["std"][0] > 0
    assert abs(pre["mean"][0] - task.train_x.double().mean().item()) < 1e-6
    assert task.meta["split_seed"] == 0 and task.meta["num_val_indices"] == 5000


def test_validation_holdout_is_seeded_and_disjoint(ds):
    raw = ds.load_raw("mnist", SHARED, download=False)
    a = ds.make_task(raw, split_seed=1)
    b = ds.make_task(raw, split_seed=1)
    c = ds.make_task(raw, split_seed=2)
    assert np.array_equal(a.val_indices, b.val_indices) and not np.array_equal(a.val_indices, c.val_indices)
    assert a.meta["val_indices_sha1"] == b.meta["val_indices_sha1"] != c.meta["val_indices_sha1"]
    assert torch.equal(a.val_x[:, 0, 2:30, 2:30], torch.from_numpy(raw.train_x[a.val_indices, 0]))
    train_idx = np.setdiff1d(np.arange(60000), a.val_indices)
    assert torch.equal(a.train_y, torch.from_numpy(raw.train_y[train_idx]))
    small = ds.make_task(raw, split_seed=1, train_limit=100, val_limit=20, test_limit=30)
    assert small.sizes() == {"train": 100, "val": 20, "test": 30}
    assert small.preprocessing["mean"] == a.preprocessing["mean"]  # stats from the full train split
    sub = a.subset(train=10, val=5, test=5, seed=3)
    assert sub.sizes() == {"train": 10, "val": 5, "test": 5} and sub.meta["subset"]["seed"] == 3


def test_fashion_mnist(ds):
    task = ds.load_task("fashion-mnist", SHARED, download=False, train_limit=50)
    assert task.name == "fashion_mnist" and task.classes[0] == "T-shirt/top" and task.num_classes == 10
    assert task.meta["source"].endswith("fashion-mnist") and task.in_channels == 1


def test_quickdraw4(ds):
    task = ds.load_task("quickdraw", SHARED, download=False)
    assert task.classes == ["cat", "fish", "apple", "bicycle"]
    assert task.sizes() == {"train": 1800, "val": 200, "test": 400}
    for y, n in ((task.train_y, 450), (task.val_y, 50), (task.test_y, 100)):
        assert torch.equal(torch.bincount(y), torch.full((4,), n))
    two = ds.load_task("quickdraw", SHARED, download=False, num_classes=2, split_seed=5,
                       train_per_class=100, val_per_class=10, test_per_class=10)
    assert two.num_classes == 2 and set(two.classes) <= set(task.classes)
    assert two.meta["split"]["train_per_class"] == 100 and len(two.meta["split"]["class_ids"]) == 2
    with pytest.raises(ValueError, match="num_classes"):
        ds.load_task("quickdraw", SHARED, download=False, num_classes=9)


def test_cifar10_jpeg_tar(ds):
    task = ds.load_task("cifar10", SHARED, download=False, train_limit=500, val_limit=100, test_limit=100)
    assert task.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                            "ship", "truck"]
    assert task.train_x.shape == (500, 3, 32, 32) and task.meta["num_val_indices"] == 5000
    raw = ds.load_raw("cifar10", SHARED, download=False)  # cached decode
    assert raw.train_x.shape == (50000, 3, 32, 32) and raw.test_x.shape == (10000, 3, 32, 32)
    assert np.array_equal(np.bincount(raw.train_y), np.full(10, 5000))
    # the first test image is test/airplane/<first name>, decoded identically
    with tarfile.open(SHARED / "cifar10-jpeg.tar.gz") as tf:
        names = sorted(m.name for m in tf if m.name.startswith("test/airplane/"))
        data = tf.extractfile(names[0]).read()
    img = ds.decode_images([(names[0], data)])[0]
    assert np.array_equal(raw.test_x[0], img) and raw.test_y[0] == 0
    m = task.preprocessing["mean"]
    assert len(m) == 3 and all(100 < v < 140 for v in m)


def _png(arr: np.ndarray) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(arr.transpose(1, 2, 0)).save(buf, format="PNG")
    return buf.getvalue()


def _write_folder(base: Path, rng) -> None:
    for split, n in (("train", 6), ("test", 2)):
        for cls in ("b_dog", "a_cat"):
            d = base / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                (d / f"{i}.png").write_bytes(_png(rng.integers(0, 256, (3, 8, 8), dtype=np.uint8)))


def test_generic_imagefolder_dir_and_tar(ds, tmp_path, tmp_cache):
    rng = np.random.default_rng(0)
    _write_folder(tmp_path / "imgs", rng)
    raw = ds.load_raw(f"imagefolder:{tmp_path / 'imgs'}")
    assert raw.classes == ["a_cat", "b_dog"] and raw.train_x.shape == (12, 3, 8, 8) and raw.test_x.shape == (4, 3, 8, 8)
    assert list(tmp_cache.glob("decoded/*.npz"))
    tar = tmp_path / "imgs.tar.gz"
    with tarfile.open(tar, "w:gz") as tf:
        tf.add(tmp_path / "imgs", arcname=".")
    raw2 = ds.load_raw(f"imagefolder:{tar}")
    assert np.array_equal(raw.train_x, raw2.train_x) and np.array_equal(raw.test_y, raw2.test_y)
    task = ds.make_task(raw2, val_size=4, pad_to=None)
    assert task.sizes() == {"train": 8, "val": 4, "test": 4} and task.image_size == 8
    with pytest.raises(FileNotFoundError, match="missing"):
        ds.load_raw(f"imagefolder:{tmp_path / 'missing'}")


def test_generic_npz(ds, tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "d.npz"
    np.savez(p, images=rng.integers(0, 256, (60, 28, 28), dtype=np.uint8), labels=np.repeat(np.arange(3), 20))
    raw = ds.load_raw(f"npz:{p}")
    assert raw.train_x.shape == (60, 1, 28, 28) and raw.test_x is None and raw.classes == ["0", "1", "2"]
    task = ds.make_task(raw, train_per_class=12, val_per_class=4, test_per_class=4)
    assert task.sizes() == {"train": 36, "val": 12, "test": 12} and task.image_size == 32
    q = tmp_path / "split.npz"
    np.savez(q, train_images=rng.integers(0, 256, (30, 8, 8, 3), dtype=np.uint8), train_labels=np.arange(30) % 2,
             test_images=rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8), test_labels=np.arange(10) % 2)
    raw = ds.load_raw(f"npz:{q}")
    assert raw.train_x.shape == (30, 3, 8, 8) and raw.test_x.shape == (10, 3, 8, 8)
    with pytest.raises(ValueError, match="images"):
        np.savez(tmp_path / "bad.npz", x=np.zeros(3))
        ds.load_raw(f"npz:{tmp_path / 'bad.npz'}")


def test_npz_labels_that_are_not_class_indices_are_refused(ds, tmp_path):
    """Negative, fractional, 2-D or single-class labels are named before any training (a float
    label was truncated to an integer, a negative one failed every training)."""
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (40, 8, 8), dtype=np.uint8)
    cases = {"neg": (np.arange(40) % 4 - 2, r"labels must be class indices 0..K-1, found -2"),
             "frac": (np.arange(40) % 4 + 0.5, r"train_labels: labels must be integer class indices 0..K-1, "
                                               r"found 0.5 \(40 non-integer labels\)"),
             "nan": (np.where(np.arange(40) == 3, np.nan, np.arange(40) % 2), r"found nan \(1 non-integer"),
             "flat2d": (np.zeros((40, 2), dtype=int), r"one class index per image \(1-D\), got shape \(40, 2\)"),
             "one": (np.zeros(40, dtype=int), r"the labels hold 1 class; a classification task needs at least 2"),
             "text": (np.array(["a", "b"] * 20), r"labels must be integer class indices 0..K-1, got dtype <U1")}
    for name, (labels, message) in cases.items():
        p = tmp_path / f"{name}.npz"
        np.savez(p, train_images=imgs, train_labels=labels, test_images=imgs[:10], test_labels=np.arange(10) % 2)
        with pytest.raises(ValueError, match=message):
            ds.load_raw(f"npz:{p}")
    whole = tmp_path / "whole.npz"  # whole-number floats are class indices
    np.savez(whole, images=imgs, labels=(np.arange(40) % 4).astype(float))
    assert ds.load_raw(f"npz:{whole}").train_y.dtype == np.int64


def test_missing_files_name_the_paths(ds, tmp_path):
    for name in ("svhn", "cifar100", "mnist", "quickdraw"):
        with pytest.raises(FileNotFoundError) as ei:
            ds.load_raw(name, tmp_path, download=False)
        assert str(tmp_path) in str(ei.value)
    with pytest.raises(ValueError, match="unknown dataset"):
        ds.load_raw("imagenet22k", tmp_path, download=False)
    assert ds.canonical_name("CIFAR-10") == "cifar10"


def test_damaged_files_are_a_value_error_naming_the_dataset(ds, tmp_path):
    """Files that exist but cannot be decoded (truncated, another format) are one ValueError
    naming the dataset and the place, not a zip/gzip/tar traceback."""
    import gzip
    import shutil

    (tmp_path / "qd").mkdir()
    (tmp_path / "qd" / "quickdraw4.npz").write_bytes((SHARED / "quickdraw4.npz").read_bytes()[:300_000])
    (tmp_path / "mnist").mkdir()
    for f in (SHARED / "mnist").glob("*.gz"):
        if f.name.startswith("train-images"):
            (tmp_path / "mnist" / f.name).write_bytes(f.read_bytes()[:100_000])  # truncated gzip
        else:
            shutil.copy(f, tmp_path / "mnist" / f.name)
    (tmp_path / "raw" / "mnist").mkdir(parents=True)
    for f in (SHARED / "mnist").glob("*.gz"):  # not gzipped at all
        (tmp_path / "raw" / "mnist" / f.name).write_bytes(gzip.decompress(f.read_bytes()))
    for name, root, message in (("quickdraw", tmp_path / "qd", "BadZipFile"),
                                ("mnist", tmp_path, "EOFError"),
                                ("mnist", tmp_path / "raw", "BadGzipFile")):
        with pytest.raises(ValueError, match=rf"{name}: cannot read the dataset files at .*{message}"):
            ds.load_raw(name, root, download=False)
    with pytest.raises(ValueError, match="cannot read the dataset files at .*not the expected format"):
        ds.load_raw(f"npz:{tmp_path / 'qd' / 'quickdraw4.npz'}")


def test_a_damaged_decode_cache_is_rebuilt(tmp_path):
    from nasbench_xfer.datasets.decode import _read_cache

    for content in (b"", b"PK\x03\x04 truncated"):
        cache = tmp_path / "c.npz"
        cache.write_bytes(content)
        assert _read_cache(cache, "cifar10", tmp_path) is None


def test_metadata_is_json(ds):
    task = ds.load_task("quickdraw", SHARED, download=False)
    json.dumps(task.meta)


def test_layouts_stay_under_the_data_root(ds, tmp_path, monkeypatch):
    """Only root / $NASBENCH_XFER_DATA / the default are searched: no hard-coded system paths."""
    assert all(not item.startswith("/") for items in ds.LAYOUTS.values() for item in items)
    monkeypatch.setenv("NASBENCH_XFER_DATA", str(tmp_path / "env-root"))
    assert ds.data_root() == tmp_path / "env-root" and ds.data_root(tmp_path) == tmp_path
    with pytest.raises(FileNotFoundError) as ei:
        ds.load_raw("fashion_mnist", download=False)
    assert all(str(tmp_path / "env-root") in p for p in str(ei.value).split("looked for: ")[1].split("; "))


def test_task_data_is_a_deprecated_alias_of_image_task(ds):
    with pytest.warns(DeprecationWarning, match="ImageTask"):
        assert ds.TaskData is ds.ImageTask
    import nasbench_xfer.datasets.loaders as loaders  # the former module still imports
    assert loaders.load_task is ds.load_task and loaders.ImageTask is ds.ImageTask
