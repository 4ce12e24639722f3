"""Tasks: a raw dataset split, standardised and held in memory (:class:`ImageTask`).

Owns the paper's splits (appendix B), the preprocessing record (appendix A)
and the task container.  :func:`make_task` turns a
:class:`~nasbench_xfer.datasets.decode.RawDataset` into an :class:`ImageTask`;
:func:`load_task` is :func:`~nasbench_xfer.datasets.discovery.load_raw`
followed by :func:`make_task`.

Splits (appendix B).  Datasets with a standard train/test split keep it and
hold out ``val_size`` (5,000) training images for validation, chosen by a
seeded permutation (``split_seed``; the indices are kept in
:attr:`ImageTask.val_indices` and their SHA-1 in the metadata).  *Pooled* sets
(Quickdraw, an ``npz``/image folder without a test split) pick
``num_classes`` classes at random (seeded) and per class ``train_per_class``
(450) training, ``val_per_class`` (50) validation and ``test_per_class`` (100)
test images at random.

Preprocessing (appendix A), recorded in ``meta["preprocessing"]``: images stay
uint8; per-channel standardisation uses the mean and standard deviation of the
training split (after the hold-out, before any ``train_limit``); grayscale
images (1 channel) smaller than ``pad_to`` (32) are zero-padded symmetrically
at load time (28x28 -> 32x32: 2 zero pixels on each side) and stay 1-channel.
Training augmentation (pad 4 + random 32x32 crop, horizontal flip, optional
cutout 16) is applied per batch on the device by
:mod:`nasbench_xfer.harness.data`.
"""
from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nasbench_xfer.datasets.decode import RawDataset
from nasbench_xfer.datasets.discovery import load_raw

__all__ = ["ImageTask", "make_task", "load_task"]


@dataclass
class ImageTask:
    """A task: uint8 image tensors ``(N, C, H, W)`` and int64 labels for train/val/test, plus metadata.

    (Called ``TaskData`` before; :class:`nasbench_xfer.optimizer.TaskData` is an
    unrelated class, a source task's architectures and scores.)
    """

    name: str
    train_x: Any
    train_y: Any
    val_x: Any
    val_y: Any
    test_x: Any
    test_y: Any
    classes: list[str]
    meta: dict[str, Any] = field(default_factory=dict)
    val_indices: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])

    @property
    def preprocessing(self) -> dict[str, Any]:
        return self.meta.get("preprocessing", {})

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train_y), "val": len(self.val_y), "test": len(self.test_y)}

    def subset(self, train: int | None = None, val: int | None = None, test: int | None = None,
               seed: int = 0) -> ImageTask:
        """A smaller task: random (seeded) ``train``/``val``/``test`` images of each split.

        The preprocessing statistics stay those of the full training split.
        """
        import torch
        rng = np.random.default_rng(seed)

        def pick(x, y, n):
            if n is None or n >= len(y):
                return x, y
            idx = torch.as_tensor(np.sort(rng.permutation(len(y))[:n]))
            return x[idx], y[idx]

        tx, ty = pick(self.train_x, self.train_y, train)
        vx, vy = pick(self.val_x, self.val_y, val)
        sx, sy = pick(self.test_x, self.test_y, test)
        meta = dict(self.meta)
        meta["subset"] = {"train": train, "val": val, "test": test, "seed": seed}
        meta["sizes"] = {"train": len(ty), "val": len(vy), "test": len(sy)}
        return ImageTask(self.name, tx, ty, vx, vy, sx, sy, list(self.classes), meta, self.val_indices)


#: train, val, test: (images, labels) each, as numpy arrays
_Splits = list[tuple[np.ndarray, np.ndarray]]


def _pad_gray(x: np.ndarray, pad_to: int | None) -> tuple[np.ndarray, dict | None]:
    if pad_to is None or x.shape[1] != 1 or x.shape[-1] >= pad_to:
        return x, None
    h, w = x.shape[-2:]
    ph, pw = pad_to - h, pad_to - w
    pads = ((0, 0), (0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2))
    rule = {"from": [int(h), int(w)], "to": [pad_to, pad_to],
            "rule": f"zero padding, {ph // 2} px top/left and {ph - ph // 2} px bottom/right"}
    return np.pad(x, pads), rule


def _channel_stats(x: np.ndarray) -> tuple[list[float], list[float]]:
    C = x.shape[1]
    s = np.zeros(C, np.float64)
    s2 = np.zeros(C, np.float64)
    n = 0
    for i in range(0, len(x), 4096):  # exact integer sums, chunked to bound memory
        chunk = x[i: i + 4096]
        s += chunk.sum(axis=(0, 2, 3), dtype=np.int64)
        sq = chunk.astype(np.int32)
        s2 += np.einsum("nchw,nchw->c", sq, sq, dtype=np.int64)
        n += chunk.shape[0] * chunk.shape[2] * chunk.shape[3]
    mean = s / n
    std = np.sqrt(np.maximum(s2 / n - mean ** 2, 1e-12))
    return [float(v) for v in mean], [float(v) for v in std]


def _sha1(a: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(a, dtype=np.int64).tobytes()).hexdigest()


def _split_standard(raw: RawDataset, rng: np.random.Generator, val_size: int,
                    num_classes: int | None) -> tuple[_Splits, np.ndarray, list[str], dict]:
    """Standard train/test split: hold ``val_size`` seeded-random training images out for validation."""
    n = len(raw.train_y)
    if not 0 <= val_size < n:
        raise ValueError(f"{raw.name}: {n} training images, but the validation split holds {val_size} of them "
                         f"(val_size, the paper's protocol: 5,000) and training needs at least one more; a "
                         f"dataset with a standard train/test split needs more than {val_size} training images")
    perm = rng.permutation(n)
    val_idx = np.sort(perm[:val_size])
    train_idx = np.sort(perm[val_size:])
    assert raw.test_x is not None and raw.test_y is not None, "a standard split has a test set"
    splits = [(raw.train_x[train_idx], raw.train_y[train_idx]), (raw.train_x[val_idx], raw.train_y[val_idx]),
              (raw.test_x, raw.test_y)]
    rule = {"rule": "standard train/test; validation held out of train by a seeded "
                    "permutation (numpy default_rng(split_seed).permutation)",
            "val_size": int(val_size)}
    if num_classes is not None and num_classes != len(raw.classes):
        raise ValueError(f"{raw.name} has a fixed class set ({len(raw.classes)}); num_classes applies "
                         f"to pooled sets (quickdraw, npz without a test split)")
    return splits, val_idx, list(raw.classes), rule


def _split_pooled(raw: RawDataset, rng: np.random.Generator, num_classes: int | None, train_per_class: int,
                  val_per_class: int, test_per_class: int) -> tuple[_Splits, np.ndarray, list[str], dict]:
    """Pooled set: pick ``num_classes`` classes, then per class random train/val/test images."""
    avail = np.unique(raw.train_y)
    k = len(avail) if num_classes is None else int(num_classes)
    if not 2 <= k <= len(avail):
        raise ValueError(f"{raw.name}: num_classes (--num-classes) must be between 2 and the {len(avail)} "
                         f"classes available, got {k}")
    chosen = np.sort(rng.choice(avail, size=k, replace=False))
    tr, va, te = [], [], []
    for c in chosen:
        idx = rng.permutation(np.flatnonzero(raw.train_y == c))
        need = train_per_class + val_per_class
        if len(idx) < need:
            raise ValueError(f"{raw.name}: class {raw.classes[c]!r} has {len(idx)} images, "
                             f"{need} needed ({train_per_class} train + {val_per_class} val)")
        tr.append(idx[:train_per_class])
        va.append(idx[train_per_class:need])
        te.append(idx[need: need + test_per_class])
    remap = np.full(int(raw.train_y.max()) + 1, -1, np.int64)
    remap[chosen] = np.arange(k)
    train_idx, val_idx, test_idx = (np.sort(np.concatenate(a)) for a in (tr, va, te))
    splits = [(raw.train_x[i], remap[raw.train_y[i]]) for i in (train_idx, val_idx, test_idx)]
    rule = {"rule": "pooled: num_classes random classes, then per class random "
                    "train/val/test drawings (appendix B)",
            "class_ids": [int(c) for c in chosen], "train_per_class": train_per_class,
            "val_per_class": val_per_class, "test_per_class": test_per_class}
    return splits, val_idx, [raw.classes[c] for c in chosen], rule


def _preprocess(splits: _Splits, pad_to: int | None) -> tuple[_Splits, dict[str, Any]]:
    """Zero-pad small grayscale images to ``pad_to``; the standardisation record from the training split."""
    padded = [_pad_gray(x, pad_to) for x, _ in splits]
    gray = padded[0][1]  # the rule applied (None: no padding), the same for every split
    splits = [(x, y) for (x, _), (_, y) in zip(padded, splits)]
    tx = splits[0][0]
    mean, std = _channel_stats(tx)
    record = {
        "standardize": "per-channel (x - mean) / std on the 0..255 pixel scale",
        "mean": mean, "std": std, "stats_from": "training split (after the validation hold-out)",
        "grayscale_pad": gray,
        "augment_defaults": {"pad": 4, "crop": int(tx.shape[-1]), "hflip": True, "cutout": 0},
    }
    return splits, record


def _limit(splits: _Splits, split_seed: int, limits: Sequence[int | None]) -> _Splits:
    """A seeded random subset of at most ``limits[i]`` images of split ``i`` (None: all)."""
    rng = np.random.default_rng([split_seed, 1])
    out = []
    for (x, y), n in zip(splits, limits):
        if n is not None and n < len(y):
            idx = np.sort(rng.permutation(len(y))[:n])
            x, y = x[idx], y[idx]
        out.append((x, y))
    return out


def make_task(raw: RawDataset, *, split_seed: int = 0, val_size: int = 5000,
              num_classes: int | None = None, train_per_class: int = 450, val_per_class: int = 50,
              test_per_class: int = 100, train_limit: int | None = None, val_limit: int | None = None,
              test_limit: int | None = None, pad_to: int | None = 32,
              task_name: str | None = None) -> ImageTask:
    """Split ``raw`` into an :class:`ImageTask` (see the module doc for the rules).

    ``train_limit``/``val_limit``/``test_limit`` keep a seeded random subset of each
    split (cheap proxies and tests); the normalisation statistics are computed on
    the training split before the limit.
    """
    import torch
    rng = np.random.default_rng(split_seed)
    meta: dict[str, Any] = {"dataset": raw.name, "source": raw.source, "split_seed": int(split_seed)}
    if raw.test_x is not None:
        splits, val_idx, classes, meta["split"] = _split_standard(raw, rng, val_size, num_classes)
    else:
        splits, val_idx, classes, meta["split"] = _split_pooled(raw, rng, num_classes, train_per_class,
                                                                val_per_class, test_per_class)
    splits, preprocessing = _preprocess(splits, pad_to)
    meta["val_indices_sha1"] = _sha1(val_idx)
    meta["num_val_indices"] = int(len(val_idx))
    meta["preprocessing"] = preprocessing
    (tx, ty), (vx, vy), (sx, sy) = _limit(splits, split_seed, (train_limit, val_limit, test_limit))
    meta["limits"] = {"train": train_limit, "val": val_limit, "test": test_limit}
    meta["sizes"] = {"train": int(len(ty)), "val": int(len(vy)), "test": int(len(sy))}
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return ImageTask(task_name or raw.name, t(tx), t(ty.astype(np.int64)), t(vx), t(vy.astype(np.int64)),
                     t(sx), t(sy.astype(np.int64)), classes, meta, val_idx)


def load_task(name: str, root: str | os.PathLike | None = None, *, download: bool | None = None,
              split_seed: int = 0, val_size: int = 5000, num_classes: int | None = None,
              train_per_class: int = 450, val_per_class: int = 50, test_per_class: int = 100,
              train_limit: int | None = None, val_limit: int | None = None,
              test_limit: int | None = None, pad_to: int | None = 32,
              classes: Sequence[str] | None = None) -> ImageTask:
    """:func:`load_raw` followed by :func:`make_task` (all splits in memory as uint8 tensors)."""
    t0 = time.perf_counter()
    raw = load_raw(name, root, download=download, classes=classes)
    task = make_task(raw, split_seed=split_seed, val_size=val_size, num_classes=num_classes,
                     train_per_class=train_per_class, val_per_class=val_per_class,
                     test_per_class=test_per_class, train_limit=train_limit, val_limit=val_limit,
                     test_limit=test_limit, pad_to=pad_to)
    task.meta["load_seconds"] = round(time.perf_counter() - t0, 3)
    return task
