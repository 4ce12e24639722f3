"""The 19 operations of the XferNAS NASNet space as PyTorch modules.

Every operation maps ``C_in`` channels to ``C_out`` channels at stride 1 or 2
and works for any spatial size, odd sizes included.  Conventions (they follow
the TensorFlow NAO code the paper's appendix C points to, and NASNet):

* **Output size.**  At stride ``s`` every operation returns ``ceil(H / s)``
  rows and ``ceil(W / s)`` columns ("SAME" padding).  Odd kernels pad
  ``dilation * (k - 1) / 2`` on each side.  **Even kernels** (the 2x2 pools)
  use TensorFlow's SAME rule: total padding ``max((ceil(H/s) - 1) * s + k - H, 0)``,
  ``floor(total / 2)`` before and the rest after; so a 2x2 pool at stride 1
  pads one row/column at the bottom/right and at stride 2 on an even size
  pads nothing.
* **Pool padding.**  Max pooling pads with ``-inf`` (a padded cell never wins),
  min pooling is ``-maxpool(-x)`` with the same padding, average pooling
  excludes padded cells from the mean (``count_include_pad=False``, as TF's
  SAME average pooling).  A pool whose ``C_in != C_out`` is followed by a
  ReLU-1x1 conv-BN.
* **conv kxk**: ReLU-conv-BN.  **conv 1xk+kx1**: ReLU-conv(1xk, stride)-BN-
  ReLU-conv(kx1)-BN (NAO's factorised convolution, two BNs).
* **sep_conv kxk**: (ReLU-depthwise kxk-pointwise 1x1-BN) twice, the stride on
  the first depthwise conv (NASNet/NAO/DARTS).  **dil_sep_conv kxk**: the same
  with dilation 2, by default also twice, as in the TF NAO code the paper used
  (``dil_sep_layers=2``); only then do the paper's parameter counts come out
  (with DARTS's single ``dil_conv``, ``dil_sep_layers=1``, XferNASNet at F=32
  has 4.27M parameters, 5.2% under the paper's 4.5M; with two, 4.46M).
* **identity**: the input itself at stride 1 with equal channels; a
  ReLU-1x1 conv-BN if only the channels differ; a factorized reduction
  (:class:`FactorizedReduce`) at stride 2.

All convolutions are bias-free and followed by an affine BatchNorm.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..space.nasnet import OPS

__all__ = ["OPS", "build_op", "same_pad", "ReLUConvBN", "FactorizedReduce", "SepConv",
           "DilSepConv", "FactorizedConv", "Pool", "Identity", "op_kind"]


def same_pad(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding of one axis so that the output has ``ceil(size / stride)`` cells."""
    eff = dilation * (kernel - 1) + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


class ReLUConvBN(nn.Module):
    """ReLU, one bias-free convolution, BatchNorm."""

    def __init__(self, C_in: int, C_out: int, kernel: int | tuple[int, int] = 1, stride: int = 1,
                 padding: int | tuple[int, int] = 0, dilation: int = 1):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel, stride=stride, padding=padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(C_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class FactorizedReduce(nn.Module):
    """Halve the spatial size without losing every other pixel (NASNet).

    ReLU, then two 1x1 convolutions at stride 2, one on the input and one on
    the input shifted by one pixel (padded with zeros at the bottom/right), whose
    outputs are concatenated (``C_out // 2`` and the rest) and batch-normalised.
    Output size ``ceil(H / 2)`` for even and odd ``H``.
    """

    def __init__(self, C_in: int, C_out: int):
        super().__init__()
        c1 = C_out // 2
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, c1, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out - c1, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(C_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


class SepConv(nn.Module):
    """``layers`` x (ReLU, depthwise kxk, pointwise 1x1, BN); stride on the first depthwise conv."""

    def __init__(self, C_in: int, C_out: int, kernel: int, stride: int, dilation: int = 1,
                 layers: int = 2):
        super().__init__()
        pad = dilation * (kernel - 1) // 2
        mods: list[nn.Module] = []
        c = C_in
        for i in range(layers):
            c_next = C_out if i == layers - 1 else C_in
            mods += [
                nn.ReLU(inplace=False),
                nn.Conv2d(c, c, kernel, stride=stride if i == 0 else 1, padding=pad,
                          dilation=dilation, groups=c, bias=False),
                nn.Conv2d(c, c_next, 1, bias=False),
                nn.BatchNorm2d(c_next),
            ]
            c = c_next
        self.op = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


def DilSepConv(C_in: int, C_out: int, kernel: int, stride: int, layers: int = 2) -> SepConv:
    """Dilated (rate 2) separable convolution, ``layers`` times (NAO-TF: twice; DARTS ``dil_conv``: once)."""
    return SepConv(C_in, C_out, kernel, stride, dilation=2, layers=layers)


class FactorizedConv(nn.Module):
    """conv 1xk + kx1: ReLU-conv(1xk, stride)-BN-ReLU-conv(kx1)-BN."""

    def __init__(self, C_in: int, C_out: int, kernel: int, stride: int):
        super().__init__()
        p = kernel // 2
        self.op = nn.Sequential(
            ReLUConvBN(C_in, C_out, (1, kernel), stride=stride, padding=(0, p)),
            ReLUConvBN(C_out, C_out, (kernel, 1), stride=1, padding=(p, 0)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Pool(nn.Module):
    """max / avg / min pooling with SAME output size (see the module doc for padding)."""

    def __init__(self, kind: str, kernel: int, stride: int, C_in: int, C_out: int):
        super().__init__()
        if kind not in ("max", "avg", "min"):
            raise ValueError(f"unknown pooling {kind!r}")
        self.kind, self.kernel, self.stride = kind, kernel, stride
        self.proj = ReLUConvBN(C_in, C_out, 1) if C_in != C_out else None

    def extra_repr(self) -> str:
        return f"{self.kind}, kernel={self.kernel}, stride={self.stride}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel, self.stride
        H, W = x.shape[-2:]
        if k % 2 == 1:  # symmetric padding: PyTorch's own pooling does it
            p = k // 2
            if self.kind == "avg":
                y = F.avg_pool2d(x, k, s, p, count_include_pad=False)
            elif self.kind == "max":
                y = F.max_pool2d(x, k, s, p)
            else:
                y = -F.max_pool2d(-x, k, s, p)
        else:
            ph, pw = same_pad(int(H), k, s), same_pad(int(W), k, s)
            pads = (pw[0], pw[1], ph[0], ph[1])
            if self.kind == "avg":
                y = F.avg_pool2d(F.pad(x, pads), k, s)
                if any(pads):  # exclude padded cells from the mean
                    ones = torch.ones((1, 1, int(H), int(W)), dtype=x.dtype, device=x.device)
                    y = y / F.avg_pool2d(F.pad(ones, pads), k, s)
            elif self.kind == "max":
                y = F.max_pool2d(F.pad(x, pads, value=-math.inf), k, s)
            else:
                y = -F.max_pool2d(F.pad(-x, pads, value=-math.inf), k, s)
        return self.proj(y) if self.proj is not None else y


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def op_kind(name: str) -> str:
    """'identity', 'conv', 'pool', 'sep' or 'dil_sep'."""
    if name == "identity":
        return "identity"
    if name.startswith("dil_sep_conv"):
        return "dil_sep"
    if name.startswith("sep_conv"):
        return "sep"
    if name.startswith("conv"):
        return "conv"
    if "_pool" in name:
        return "pool"
    raise ValueError(f"unknown operation {name!r}; known: {', '.join(OPS)}")


def _kernel(name: str) -> int:
    return int(name.split(" ")[1].split("x")[0])


def build_op(name: str, C_in: int, C_out: int, stride: int = 1, *,
             dil_sep_layers: int = 2) -> nn.Module:
    """The module of operation ``name`` (one of :data:`OPS`) from ``C_in`` to ``C_out`` channels."""
    if name not in OPS:
        raise ValueError(f"unknown operation {name!r}; known: {', '.join(OPS)}")
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride!r}")
    kind = op_kind(name)
    if kind == "identity":
        if stride == 2:
            return FactorizedReduce(C_in, C_out)
        return Identity() if C_in == C_out else ReLUConvBN(C_in, C_out, 1)
    if kind == "pool":
        return Pool(name.split("_")[0], _kernel(name), stride, C_in, C_out)
    if kind == "sep":
        return SepConv(C_in, C_out, _kernel(name), stride, layers=2)
    if kind == "dil_sep":
        return DilSepConv(C_in, C_out, _kernel(name), stride, layers=dil_sep_layers)
    # convolutions
    spec = name.split(" ")[1]
    if "+" in spec:  # "1x3+3x1", "1x7+7x1"
        k = int(spec.split("+")[0].split("x")[1])
        return FactorizedConv(C_in, C_out, k, stride)
    k = _kernel(name)
    return ReLUConvBN(C_in, C_out, k, stride=stride, padding=k // 2)
