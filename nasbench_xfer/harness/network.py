"""Build a trainable network from a :class:`~nasbench_xfer.space.nasnet.NASNetArch`.

Layout (NASNet/NAO CIFAR layout, section 4.1 of the paper)::

    stem: conv 3x3 (in_channels -> stem_multiplier * F) + BN
    stage 1: N normal cells, F channels per block
    reduction cell (2F), stage 2: N normal cells (2F)
    reduction cell (4F), stage 3: N normal cells (4F)
    ReLU, global average pooling, (dropout), linear classifier

so ``3N + 2`` cells in all.  Cell ``i`` reads the outputs of cells ``i-2`` and
``i-1`` (the stem output stands in for both before the first cell).  Each input
is *calibrated* to the cell's shape: a factorized reduction where its spatial
size is twice the other's (the output of the cell before a reduction cell),
otherwise a ReLU-1x1 conv-BN where its channel count differs from the cell's
``C`` (with ``always_project_prev=True``, as in NAO-TF, the previous cell's
output is projected even when the counts agree).  In a reduction cell the
operations that read a cell input use stride 2; those that read a block output
stride 1.  The cell output concatenates every block output that no block of
the cell reads (``concat_unused_inputs=True`` also concatenates unused cell
inputs, as NASNet/NAO-TF do; not the paper's definition, so off by default).

Drop-path (NASNet "v3" schedule, as in NAO): every operation output except
``identity`` is dropped per example (independently per operation, from one
random draw per cell) with probability
``drop_path * (cell_index + 1) / (3N + 2) * progress`` where ``progress`` runs
from 0 to 1 over training.  ``drop_path * progress`` lives in the buffer
``drop_path_prob`` (a 0-d tensor updated in place by
:meth:`Network.set_drop_path_progress`), so CUDA graphs and ``torch.compile``
need no rebuild when it changes.

Parameter-count convention (tests/test_harness.py): :func:`count_params`
counts every parameter except the auxiliary head's (the NAO/DARTS convention,
under which the paper's Table 1/2 counts are reproduced).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..space.nasnet import Block, NASNetArch, unused_blocks
from .ops import FactorizedReduce, Identity, ReLUConvBN, build_op

__all__ = ["NetConfig", "Network", "Cell", "AuxHead", "build_network", "count_params", "count_flops",
           "drop_path"]


@dataclass(frozen=True)
class NetConfig:
    """Everything but the architecture that decides a network."""

    num_cells: int = 6            # N: normal cells per stage
    filters: int = 32             # F: channels per block in the first stage
    num_classes: int = 10
    in_channels: int = 3
    input_size: int = 32
    stem_multiplier: int = 3
    auxiliary: bool = False       # auxiliary head after the second reduction cell
    drop_path: float = 0.0        # the base drop-path probability (paper: 0.3)
    dropout: float = 0.0          # dropout before the classifier
    dil_sep_layers: int = 2       # 2: NAO-TF (matches the paper's counts); 1: DARTS dil_conv
    always_project_prev: bool = False
    concat_unused_inputs: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def drop_path(x: torch.Tensor, prob: torch.Tensor, keep_draw: torch.Tensor | None = None,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero whole examples with probability ``prob`` (a 0-d tensor), rescale the rest.

    ``keep_draw`` (shape ``(B,)``, uniform in [0, 1)) is the random draw to use; by
    default one is drawn here (from ``generator`` if given).  No data-dependent
    branch: with ``prob == 0`` the mask is all ones.
    """
    keep = 1.0 - prob
    if keep_draw is None:
        keep_draw = torch.rand((x.shape[0],), device=x.device, generator=generator)
    mask = (keep_draw.view(-1, 1, 1, 1) < keep).to(x.dtype)
    return x * (mask / keep.to(x.dtype))


class Cell(nn.Module):
    """One normal or reduction cell of ``len(blocks)`` blocks."""

    def __init__(self, blocks: tuple[Block, ...], C_pp: int, C_p: int, C: int, reduction: bool,
                 reduction_prev: bool, layer_ratio: float, cfg: NetConfig):
        super().__init__()
        self.reduction = reduction
        self.layer_ratio = float(layer_ratio)
        used_inputs = {i for b in blocks for i in (b.input_a, b.input_b) if i < 2}
        self.input_concat = [i for i in (0, 1) if i not in used_inputs] if cfg.concat_unused_inputs else []
        needed = used_inputs | set(self.input_concat)
        # a cell input nothing reads gets no calibration (no dead parameters)
        self.pre0: nn.Module | None = None
        self.pre1: nn.Module | None = None
        if 0 in needed:
            if reduction_prev:
                self.pre0 = FactorizedReduce(C_pp, C)
            elif C_pp != C:
                self.pre0 = ReLUConvBN(C_pp, C, 1)
            else:
                self.pre0 = Identity()
        if 1 in needed:
            self.pre1 = ReLUConvBN(C_p, C, 1) if (C_p != C or cfg.always_project_prev) else Identity()
        self.blocks: list[tuple[int, str, int, str]] = [tuple(b) for b in blocks]  # type: ignore[misc]
        self.ops = nn.ModuleList()
        self.droppable: list[tuple[bool, bool]] = []
        for b in blocks:
            for inp, op in ((b.input_a, b.op_a), (b.input_b, b.op_b)):
                stride = 2 if reduction and inp < 2 else 1
                self.ops.append(build_op(op, C, C, stride, dil_sep_layers=cfg.dil_sep_layers))
            self.droppable.append((b.op_a != "identity", b.op_b != "identity"))
        self.num_droppable = sum(a + b for a, b in self.droppable)
        self.concat = [k + 2 for k in unused_blocks(blocks)]
        # unused cell inputs in a reduction cell must be reduced to the output size
        self.input_reduce = nn.ModuleDict(
            {str(i): FactorizedReduce(C, C) for i in self.input_concat} if reduction else {})
        self.out_channels = C * (len(self.concat) + len(self.input_concat))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: torch.Tensor | None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """``s0`` = h[i-2], ``s1`` = h[i-1]; ``drop_prob``: this cell's drop-path probability.

        Drop-path draws once per cell: one ``(B, ops)`` uniform tensor whose columns
        decide, independently, which examples each droppable operation drops
        (``generator``: where the draw comes from; default: the global generator).
        """
        states: list = [self.pre0(s0) if self.pre0 is not None else None,
                        self.pre1(s1) if self.pre1 is not None else None]
        use_drop = self.training and drop_prob is not None and self.num_droppable > 0
        draws = None
        if use_drop:
            assert drop_prob is not None
            ref = states[0] if states[0] is not None else states[1]
            draws = torch.rand((ref.shape[0], self.num_droppable), device=ref.device, generator=generator)
        col = 0
        for j, (ia, _, ib, _) in enumerate(self.blocks):
            ha = self.ops[2 * j](states[ia])
            hb = self.ops[2 * j + 1](states[ib])
            if use_drop:
                assert draws is not None and drop_prob is not None
                da, db = self.droppable[j]
                if da:
                    ha = drop_path(ha, drop_prob, draws[:, col])
                    col += 1
                if db:
                    hb = drop_path(hb, drop_prob, draws[:, col])
                    col += 1
            states.append(ha + hb)
        outs = []
        for i in self.input_concat:
            outs.append(self.input_reduce[str(i)](states[i]) if self.reduction else states[i])
        outs += [states[k] for k in self.concat]
        return torch.cat(outs, dim=1)


class AuxHead(nn.Module):
    """NASNet/NAO auxiliary classifier: ReLU, 5x5/3 avg pool, 1x1 conv 128, conv 768, linear."""

    def __init__(self, C: int, size: int, num_classes: int):
        super().__init__()
        k = min(5, size)
        pooled = (size - k) // 3 + 1
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AvgPool2d(k, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=False),
            nn.Conv2d(128, 768, pooled, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=False),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class Network(nn.Module):
    """A NASNet-space CNN; ``forward`` returns logits, or ``(logits, aux_logits)`` when training with an aux head."""

    #: the drop-path probability of the last cell (a buffer, so that it lives on the device)
    drop_path_prob: torch.Tensor

    def __init__(self, arch: NASNetArch, cfg: NetConfig = NetConfig()):
        super().__init__()
        if cfg.num_cells < 1 or cfg.filters < 1 or cfg.num_classes < 1 or cfg.in_channels < 1:
            raise ValueError(f"bad network config {cfg}")
        self.arch, self.cfg = arch, cfg
        N, Fn = cfg.num_cells, cfg.filters
        C_stem = cfg.stem_multiplier * Fn
        self.stem = nn.Sequential(nn.Conv2d(cfg.in_channels, C_stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(C_stem))
        total = 3 * N + 2
        self.total_cells = total
        C_pp, C_p, C = C_stem, C_stem, Fn
        size = cfg.input_size
        reduction_prev = False
        self.cells = nn.ModuleList()
        self.aux_index = -1
        self.auxiliary_head: AuxHead | None = None
        for i in range(total):
            reduction = i in (N, 2 * N + 1)
            if reduction:
                C *= 2
                size = -(-size // 2)
            cell = Cell(arch.reduction if reduction else arch.normal, C_pp, C_p, C, reduction,
                        reduction_prev, (i + 1) / total, cfg)
            self.cells.append(cell)
            reduction_prev = reduction
            C_pp, C_p = C_p, cell.out_channels
            if cfg.auxiliary and i == 2 * N + 1:
                self.aux_index = i
                self.auxiliary_head = AuxHead(C_p, size, cfg.num_classes)
        self.out_channels = C_p
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else None
        self.classifier = nn.Linear(C_p, cfg.num_classes)
        self.register_buffer("drop_path_prob", torch.zeros(()), persistent=False)
        #: where drop-path masks are drawn from (None: the global generator of the device)
        self.drop_generator: torch.Generator | None = None

    def set_drop_path_progress(self, progress: float | torch.Tensor) -> None:
        """Set the drop-path probability to ``cfg.drop_path * progress`` (in place)."""
        with torch.no_grad():
            if isinstance(progress, torch.Tensor):
                self.drop_path_prob.copy_(progress.clamp(0, 1) * self.cfg.drop_path)
            else:
                self.drop_path_prob.fill_(self.cfg.drop_path * min(max(float(progress), 0.0), 1.0))

    def forward(self, x: torch.Tensor):
        s0 = s1 = self.stem(x)
        use_drop = self.cfg.drop_path > 0
        aux = None
        for i, cell in enumerate(self.cells):
            p = self.drop_path_prob * cast(Cell, cell).layer_ratio if use_drop else None
            s0, s1 = s1, cell(s0, s1, p, self.drop_generator)
            if i == self.aux_index and self.training and self.auxiliary_head is not None:
                aux = self.auxiliary_head(s1)
        out = F.adaptive_avg_pool2d(F.relu(s1), 1).flatten(1)
        if self.dropout is not None:
            out = self.dropout(out)
        logits = self.classifier(out)
        if aux is not None:
            return logits, aux
        return logits


def build_network(arch: NASNetArch, **kwargs: Any) -> Network:
    """``Network(arch, NetConfig(**kwargs))``."""
    return Network(arch, NetConfig(**kwargs))


def count_params(model: nn.Module, include_auxiliary: bool = False) -> int:
    """Number of parameters, without the auxiliary head unless ``include_auxiliary``."""
    return sum(p.numel() for name, p in model.named_parameters()
               if include_auxiliary or not name.startswith("auxiliary_head"))


@torch.no_grad()
def count_flops(model: nn.Module, input_shape: tuple[int, int, int] | None = None) -> int:
    """Multiply-adds per image of every Conv2d and Linear (eval mode, no auxiliary head).

    ``input_shape`` is ``(channels, height, width)``; by default the network's own.
    """
    if input_shape is None:
        cfg: NetConfig = model.cfg  # type: ignore[assignment]
        input_shape = (cfg.in_channels, cfg.input_size, cfg.input_size)
    total = [0]

    def conv_hook(m: nn.Conv2d, inp, out) -> None:
        kh, kw = m.kernel_size
        total[0] += out[0].numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Linear, inp, out) -> None:
        total[0] += m.in_features * m.out_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        p = next(model.parameters())
        model(torch.zeros((1, *input_shape), device=p.device, dtype=p.dtype))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return int(total[0])
