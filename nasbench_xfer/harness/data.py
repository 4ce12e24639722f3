"""Batched, device-resident data pipeline: augmentation as tensor ops.

The whole split lives on the training device as uint8 ``(N, C, H, W)``; each
batch is gathered, augmented and standardised there with a handful of tensor
ops (no DataLoader, no per-image Python).  The same code runs on CPU.

Augmentation (appendix A), in this order, on the 0..255 pixel scale:

1. pad ``pad`` (4) zero pixels on every side and take a random crop of the
   original size (offsets uniform in ``0 .. 2 * pad``);
2. flip horizontally with probability 1/2 (``hflip``);
3. standardise per channel: ``(x - mean) / std`` (training-split statistics);
4. cutout (``cutout`` > 0, e.g. 16): zero a ``cutout x cutout`` square (clipped at
   the border) centred at a uniform random pixel, after standardisation (as
   DeVries & Taylor's and DARTS's code do).

Random decisions (the epoch's permutation, crop offsets, flips, cutout centres)
are drawn from a CPU :class:`torch.Generator` seeded by the caller and then
moved to the device, so a seed gives the same batches and the same
augmentation on any device.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["Augment", "DeviceSplit", "augment_batch", "standardize"]


@dataclass(frozen=True)
class Augment:
    """Training-time augmentation settings."""

    pad: int = 4
    hflip: bool = True
    cutout: int = 0

    def to_dict(self) -> dict:
        return {"pad": self.pad, "hflip": self.hflip, "cutout": self.cutout}


def standardize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / std`` per channel; ``x`` float on the 0..255 scale, mean/std shape ``(C,)``."""
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def _draw(n: int, H: int, W: int, aug: Augment, gen: torch.Generator) -> torch.Tensor:
    """(n, 5) int64 on CPU: crop dy, crop dx, flip, cutout cy, cutout cx."""
    p = aug.pad
    r = torch.empty((n, 5), dtype=torch.int64)
    r[:, 0] = torch.randint(0, 2 * p + 1, (n,), generator=gen)
    r[:, 1] = torch.randint(0, 2 * p + 1, (n,), generator=gen)
    r[:, 2] = torch.randint(0, 2, (n,), generator=gen) if aug.hflip else 0
    r[:, 3] = torch.randint(0, H, (n,), generator=gen)
    r[:, 4] = torch.randint(0, W, (n,), generator=gen)
    return r


def augment_batch(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, aug: Augment,
                  rand: torch.Tensor) -> torch.Tensor:
    """Augment and standardise a uint8 batch ``x`` (B, C, H, W) with the draws ``rand`` (B, 5).

    Returns float32 on ``x``'s device.
    """
    B, C, H, W = x.shape
    dev = x.device
    xf = x.float()
    p = aug.pad
    if p > 0:
        xf = F.pad(xf, (p, p, p, p))
        rows = rand[:, 0:1] + torch.arange(H, device=dev)          # (B, H)
        cols = rand[:, 1:2] + torch.arange(W, device=dev)          # (B, W)
        b = torch.arange(B, device=dev)[:, None, None]
        xf = xf.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
        xf = xf.permute(0, 3, 1, 2)
    if aug.hflip:
        flip = rand[:, 2].bool().view(B, 1, 1, 1)
        xf = torch.where(flip, xf.flip(3), xf)
    xf = standardize(xf, mean, std)
    if aug.cutout > 0:
        half = aug.cutout // 2
        cy, cx = rand[:, 3:4], rand[:, 4:5]
        ar_h = torch.arange(H, device=dev)
        ar_w = torch.arange(W, device=dev)
        in_r = (ar_h >= cy - half) & (ar_h < cy - half + aug.cutout)   # (B, H)
        in_c = (ar_w >= cx - half) & (ar_w < cx - half + aug.cutout)   # (B, W)
        hole = (in_r[:, :, None] & in_c[:, None, :]).unsqueeze(1)
        xf = xf.masked_fill(hole, 0.0)
    return xf.contiguous()


class DeviceSplit:
    """One split (uint8 images + labels) resident on ``device``, served in batches."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, mean: Sequence[float], std: Sequence[float],
                 device: torch.device | str = "cpu"):
        if x.dtype != torch.uint8 or x.dim() != 4:
            raise ValueError(f"expected uint8 (N, C, H, W) images, got {x.dtype} {tuple(x.shape)}")
        if len(x) != len(y):
            raise ValueError(f"{len(x)} images but {len(y)} labels")
        self.device = torch.device(device)
        self.x = x.to(self.device)
        self.y = y.to(self.device, dtype=torch.int64)
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=self.device)
        self.std = torch.as_tensor(std, dtype=torch.float32, device=self.device)
        if self.mean.numel() != x.shape[1]:
            raise ValueError(f"{self.mean.numel()} channel means for {x.shape[1]}-channel images")

    def __len__(self) -> int:
        return len(self.y)

    def num_batches(self, batch_size: int, drop_last: bool) -> int:
        n = len(self)
        if drop_last and n >= batch_size:
            return n // batch_size
        return -(-n // batch_size)

    def train_batches(self, batch_size: int, aug: Augment, gen: torch.Generator,
                      drop_last: bool = True) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One shuffled, augmented epoch.  With ``drop_last`` the last partial batch is
        skipped (static shapes for compiled models) unless the split is smaller than a batch."""
        n = len(self)
        perm = torch.randperm(n, generator=gen)
        rand = _draw(n, self.x.shape[2], self.x.shape[3], aug, gen)
        perm, rand = perm.to(self.device, non_blocking=True), rand.to(self.device, non_blocking=True)
        nb = self.num_batches(batch_size, drop_last)
        for i in range(nb):
            idx = perm[i * batch_size: (i + 1) * batch_size]
            if len(idx) < 2 and nb > 1:  # a batch of one breaks BatchNorm in training
                break
            yield augment_batch(self.x[idx], self.mean, self.std, aug,
                                rand[i * batch_size: (i + 1) * batch_size]), self.y[idx]

    def epoch_buffer(self, batch_size: int, aug: Augment, gen: torch.Generator,
                     out: torch.Tensor | None = None, chunk: int = 8192,
                     memory_format: torch.memory_format = torch.contiguous_format
                     ) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        """One epoch of ``train_batches(..., drop_last=True)``, augmented at once: ``(x, y, batches, batch_len)``.

        ``x[i * batch_len: (i + 1) * batch_len]`` is exactly batch ``i`` of
        :meth:`train_batches` with the same generator state (same permutation and
        draws; augmentation is per image, so doing it in chunks changes nothing).
        Every batch has ``batch_len`` images (``batch_size``, or the whole split when
        it is smaller), the static shape a captured CUDA graph needs.  ``out`` (float,
        the shape returned before) is reused when given, so a loop allocates its
        epoch buffer once.
        """
        n = len(self)
        perm = torch.randperm(n, generator=gen)
        rand = _draw(n, self.x.shape[2], self.x.shape[3], aug, gen)
        nb = self.num_batches(batch_size, drop_last=True)
        blen = min(batch_size, n)
        total = nb * blen
        perm = perm[:total].to(self.device, non_blocking=True)
        rand = rand[:total].to(self.device, non_blocking=True)
        C, H, W = self.x.shape[1:]
        if out is None or tuple(out.shape) != (total, C, H, W):
            out = torch.empty((total, C, H, W), dtype=torch.float32, device=self.device,
                              memory_format=memory_format)
        for i in range(0, total, chunk):
            j = min(i + chunk, total)
            out[i:j].copy_(augment_batch(self.x[perm[i:j]], self.mean, self.std, aug, rand[i:j]))
        return out, self.y[perm], nb, blen

    def eval_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Standardised, unaugmented batches in order."""
        for i in range(0, len(self), batch_size):
            yield standardize(self.x[i: i + batch_size].float(), self.mean, self.std), self.y[i: i + batch_size]
