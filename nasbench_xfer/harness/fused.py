"""Horizontal fusion: K networks of the NASNet space trained as one network.

Every network of the space shares one skeleton (stem, ``3N + 2`` cells of ``B``
blocks, classifier); only the operations and the inputs of each block, and so
the width of each cell's output, differ.  :class:`FusedNetwork` stacks K of
them on the channel axis (architecture ``k`` owns channels ``[k*C, (k+1)*C)``
of every tensor) and runs, at each position of the skeleton, one kernel per
*distinct* operation instead of one per network: the networks that use the same
operation at that position are packed into one grouped convolution (or pool)
and one BatchNorm over their channels.  HFTA (Wang et al., MLSys 2021) did this
for K copies of one model; here the K models differ, so each position first
gathers each network's input channels (its block inputs differ) and then
scatters the group outputs back into network order (:class:`ChannelGather`).

The K trainings stay exactly the trainings one at a time would be:

* parameters, BatchNorm statistics and momentum are per channel, so a grouped
  kernel computes each network's part from its own channels only;
* the loss is the sum of the K cross-entropies, whose gradient with respect to
  network ``k``'s parameters is network ``k``'s own gradient;
* gradient clipping is per network (:meth:`FusedNetwork.clip_grad_norm_`), not
  over the fused parameters;
* cell outputs, whose width differs between networks (the number of unused
  blocks), are zero-padded to the widest; the padded channels meet only
  zero-padded weights, which get zero gradients and stay zero;
* a parameter a network never uses (in a cell whose output no later cell reads,
  which the space allows) gets a zero gradient and weight decay where one at a time
  it gets no gradient and no update: it never reaches the output either way;
* each network keeps its own data order and augmentation (its seed) and its own
  initialisation (the networks are built one by one and packed); its drop-path
  masks are its own draws (independent across networks) but come from one
  generator shared by the fused networks, so with drop-path > 0 a fused network's
  masks, and hence its record, differ from those it would get trained alone (as
  another seed's would).  Without drop-path the records are the same to float
  rounding (``tests/test_fused.py``).

The tests check fused against separate trainings step by step on CPU.  What is
not fused: a network's ``concat_unused_inputs`` and auxiliary-head options (both
off in the paper's search protocol; asking for them raises).
"""
from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import DeviceSplit
from .engine import ArchTrainer, sgd_update_
from .network import Cell, NetConfig, Network
from .ops import FactorizedReduce, Identity, Pool
from .protocols import Protocol

__all__ = ["ChannelGather", "FusedNetwork", "FusedTrainer", "pack_modules"]

ZERO = -1  #: the source id of zero channels in a :class:`ChannelGather`


class ChannelGather(nn.Module):
    """Pick channel ranges of several source tensors, in a fixed order, into one tensor.

    ``picks`` lists ``(source, start, width)``: channels ``[start, start + width)`` of
    source ``source`` (:data:`ZERO`: ``width`` zero channels).  The output holds the
    picks one after another.  One ``index_select`` per source and one permutation
    at most (none when a source is taken whole and in order), so the backward pass
    scatters into each source once.
    """

    def __init__(self, picks: Sequence[tuple[int, int, int]]):
        super().__init__()
        if not picks:
            raise ValueError("a channel gather needs at least one pick")
        self.sources: list[int] = sorted({s for s, _, _ in picks if s != ZERO})
        if not self.sources:
            raise ValueError("a channel gather needs at least one non-zero source")
        for s, start, width in picks:
            if width < 1:
                raise ValueError(f"pick {(s, start, width)} has no channels")
        out_at = list(itertools.accumulate((w for _, _, w in picks), initial=0))  # each pick's output offset
        self.out_channels = out_at[-1]
        self.zero_width = max((w for s, _, w in picks if s == ZERO), default=0)
        # where each output channel sits in the concatenation of the sources' selections (then the zeros)
        where = [0] * self.out_channels
        offset = 0
        self._whole: dict[int, bool] = {}
        for s in self.sources:
            idx: list[int] = []
            for (ss, start, w), at in zip(picks, out_at):
                if ss == s:
                    where[at:at + w] = range(offset + len(idx), offset + len(idx) + w)
                    idx += range(start, start + w)
            self.register_buffer(f"idx_{s}", torch.tensor(idx, dtype=torch.int64), persistent=False)
            self._whole[s] = False
            offset += len(idx)
        for (ss, _, w), at in zip(picks, out_at):
            if ss == ZERO:
                where[at:at + w] = range(offset, offset + w)
        self.identity_perm = where == list(range(self.out_channels))
        self.register_buffer("perm", torch.tensor(where, dtype=torch.int64), persistent=False)

    def mark_whole(self, source: int, width: int) -> None:
        """Declare source ``source`` ``width`` channels wide, so an in-order pick of all of it needs no copy."""
        idx = self._index(source)
        self._whole[source] = bool(len(idx) == width and torch.equal(idx.cpu(), torch.arange(width)))

    def forward(self, tensors: Sequence[torch.Tensor | None] | dict[int, torch.Tensor]) -> torch.Tensor:
        parts = []
        for s in self.sources:
            t = tensors[s]
            assert t is not None, f"source {s} of a channel gather is missing"
            parts.append(t if self._whole[s] else t.index_select(1, self._index(s)))
        if self.zero_width:
            ref = parts[0]
            parts.append(ref.new_zeros((ref.shape[0], self.zero_width, *ref.shape[2:])))
        out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        return out if self.identity_perm else out.index_select(1, cast(torch.Tensor, self.perm))

    def _index(self, source: int) -> torch.Tensor:
        return cast(torch.Tensor, getattr(self, f"idx_{source}"))


# ------------------------------------------------------------------------------ packing
class FusedFactorizedReduce(nn.Module):
    """:class:`~nasbench_xfer.harness.ops.FactorizedReduce` of G networks: the two halves
    interleaved per network before the BatchNorm, so each network's channels stay together."""

    def __init__(self, mods: Sequence[FactorizedReduce], pad_in: int | None, owners: list[int],
                 registry: dict[int, list[int]]):
        super().__init__()
        self.G = len(mods)
        self.c1 = mods[0].conv_1.out_channels
        self.c2 = mods[0].conv_2.out_channels
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = pack_modules([m.conv_1 for m in mods], pad_in, owners, registry)
        self.conv_2 = pack_modules([m.conv_2 for m in mods], pad_in, owners, registry)
        self.bn = pack_modules([m.bn for m in mods], None, owners, registry)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        a, b = self.conv_1(x), self.conv_2(shifted)
        B, _, h, w = a.shape
        out = torch.cat([a.reshape(B, self.G, self.c1, h, w), b.reshape(B, self.G, self.c2, h, w)], dim=2)
        return self.bn(out.reshape(B, self.G * (self.c1 + self.c2), h, w))


def _same_type(mods: Sequence[nn.Module]) -> type:
    t = type(mods[0])
    for m in mods[1:]:
        if type(m) is not t:
            raise ValueError(f"cannot pack {t.__name__} with {type(m).__name__}")
    return t


def pack_modules(mods: Sequence[nn.Module], pad_in: int | None, owners: list[int],
                 registry: dict[int, list[int]]) -> nn.Module:
    """One module computing ``mods`` (same structure, one per network) side by side on
    channel-stacked input (network ``owners[g]``'s channels are the ``g``-th chunk).

    Convolutions become grouped convolutions (``groups * G``), BatchNorms one BatchNorm
    over ``G * C`` channels, with the parameters and statistics copied.  ``pad_in``:
    each network's input is zero-padded to this many channels; the first convolutions
    get zero weights there.  Every new parameter's owner list goes into ``registry``
    (keyed by ``id``): its leading dimension is one chunk per owner.
    """
    t = _same_type(mods)
    G = len(mods)
    if t is nn.Conv2d:
        convs = cast(list[nn.Conv2d], list(mods))
        m0 = convs[0]
        for m in convs:
            if (m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups) != \
                    (m0.out_channels, m0.kernel_size, m0.stride, m0.padding, m0.dilation, m0.groups) \
                    or m.bias is not None or (pad_in is None and m.in_channels != m0.in_channels):
                raise ValueError("cannot pack convolutions of different shapes")
        cin = m0.in_channels
        if pad_in is not None and m0.groups == 1:
            cin = pad_in
            if any(m.in_channels > pad_in for m in convs):
                raise ValueError(f"input padding {pad_in} is narrower than a convolution's input")
        conv = nn.Conv2d(G * cin, G * m0.out_channels, m0.kernel_size, stride=m0.stride,  # type: ignore[arg-type]
                         padding=m0.padding, dilation=m0.dilation, groups=G * m0.groups,  # type: ignore[arg-type]
                         bias=False)
        with torch.no_grad():
            ws = [F.pad(m.weight, (0, 0, 0, 0, 0, cin // m0.groups - m.weight.shape[1])) for m in convs]
            conv.weight.copy_(torch.cat(ws, dim=0))
        registry[id(conv.weight)] = list(owners)
        return conv
    if t is nn.BatchNorm2d:
        bns = cast(list[nn.BatchNorm2d], list(mods))
        b0 = bns[0]
        bn = nn.BatchNorm2d(G * b0.num_features, eps=b0.eps, momentum=b0.momentum, affine=b0.affine,
                            track_running_stats=b0.track_running_stats)
        with torch.no_grad():
            for name in ("weight", "bias", "running_mean", "running_var"):
                dst = getattr(bn, name)
                if dst is not None:
                    dst.copy_(torch.cat([getattr(m, name) for m in bns]))
            if b0.num_batches_tracked is not None and bn.num_batches_tracked is not None:
                bn.num_batches_tracked.copy_(b0.num_batches_tracked)
        if bn.affine:
            registry[id(bn.weight)] = list(owners)
            registry[id(bn.bias)] = list(owners)
        return bn
    if t is FactorizedReduce:
        return FusedFactorizedReduce(cast(list[FactorizedReduce], list(mods)), pad_in, owners, registry)
    if t in (nn.ReLU, Identity) or (t is Pool and cast(Pool, mods[0]).proj is None):
        return copy.deepcopy(mods[0])
    if any(True for _ in mods[0].parameters(recurse=False)) or t is nn.Linear:
        raise ValueError(f"cannot pack {t.__name__}: it has parameters of its own")
    # a container whose forward only routes through its children (Sequential,
    # ReLUConvBN, SepConv, FactorizedConv, Pool with a projection): pack child by child
    new = copy.copy(mods[0])
    new._modules = dict(new._modules)
    new._parameters = {}
    new._buffers = dict(new._buffers)
    for name, _ in mods[0].named_children():
        setattr(new, name, pack_modules([getattr(m, name) for m in mods], pad_in, owners, registry))
    return new


# ------------------------------------------------------------------------------ positions
class FusedPosition(nn.Module):
    """One position of the skeleton (a block's branch, a cell's input calibration) in K
    networks: the networks grouped by their module there, one packed module per group.

    ``modules[k]`` is network ``k``'s module (``None``: the network computes nothing
    here, its channels are zero); ``keys[k]`` decides which networks share a packed
    module; ``inputs[k]`` is the source network ``k`` reads and ``in_width`` the width
    of each network's chunk of every source (``read[k]`` channels of it are read:
    all of it for a convolution over a padded input, the first ``C`` for an identity);
    ``band[k]`` tells networks whose inputs differ in spatial size apart (the stride).
    """

    def __init__(self, modules: Sequence[nn.Module | None], keys: Sequence[Any], inputs: Sequence[int],
                 in_width: int, read: Sequence[int], out_width: int, pad_in: Sequence[int | None],
                 registry: dict[int, list[int]], source_widths: dict[int, int], band: Sequence[int] | None = None):
        super().__init__()
        K = len(modules)
        band = list(band) if band is not None else [0] * K
        groups: dict[Any, list[int]] = {}
        for k in range(K):
            if modules[k] is not None:
                groups.setdefault(keys[k], []).append(k)
        self.packed = nn.ModuleList()
        where: dict[int, tuple[int, int]] = {}
        # groups whose inputs have one spatial size (a reduction cell's strided branches read the
        # cell inputs, the others block outputs of half the size) share one gather, then split
        bands: dict[int, list[int]] = {}
        for gi, members in enumerate(groups.values()):
            members.sort(key=lambda k: (inputs[k], k))  # networks that read one source together
            bands.setdefault(band[members[0]], []).append(gi)
            self.packed.append(pack_modules([cast(nn.Module, modules[k]) for k in members], pad_in[members[0]],
                                            members, registry))
            for pos, k in enumerate(members):
                where[k] = (gi, pos)
        members_of = list(groups.values())
        self.gathers = nn.ModuleList()
        self.bands: list[tuple[list[int], list[int]]] = []  # (group ids, split sizes) per gather
        for gids in bands.values():
            gather = ChannelGather([(inputs[k], k * in_width, read[k]) for gi in gids for k in members_of[gi]])
            for s in gather.sources:
                gather.mark_whole(s, source_widths[s])
            self.gathers.append(gather)
            self.bands.append((gids, [sum(read[k] for k in members_of[gi]) for gi in gids]))
        self.out_width = out_width
        self.assemble = ChannelGather([(where[k][0], where[k][1] * out_width, out_width) if k in where
                                       else (ZERO, 0, out_width) for k in range(K)])
        for gi, members in enumerate(members_of):
            self.assemble.mark_whole(gi, len(members) * out_width)
        self.num_groups = len(groups)

    def forward(self, sources: Sequence[torch.Tensor | None]) -> torch.Tensor:
        outs: list[torch.Tensor | None] = [None] * self.num_groups
        for gather, (gids, sizes) in zip(self.gathers, self.bands):
            x = gather(sources)
            parts = torch.split(x, sizes, dim=1) if len(sizes) > 1 else (x,)
            for gi, part in zip(gids, parts):
                outs[gi] = self.packed[gi](part)
        return self.assemble(outs)


class FusedCell(nn.Module):
    """Cell ``i`` of K networks (see :class:`~nasbench_xfer.harness.network.Cell`)."""

    droppable: torch.Tensor

    def __init__(self, cells: Sequence[Cell], C: int, w0: int, w1: int, registry: dict[int, list[int]]):
        super().__init__()
        K = len(cells)
        self.K, self.C = K, C
        self.reduction = cells[0].reduction
        self.layer_ratio = cells[0].layer_ratio

        def pre(which: str, width: int) -> FusedPosition | None:
            mods = [getattr(c, which) for c in cells]
            if all(m is None for m in mods):
                return None
            keys = [type(m).__name__ for m in mods]
            read = [C if isinstance(m, Identity) else width for m in mods]
            pad = [None if isinstance(m, Identity) else width for m in mods]
            return FusedPosition(mods, keys, [0] * K, width, read, C, pad, registry, {0: K * width})

        self.pre0 = pre("pre0", w0)
        self.pre1 = pre("pre1", w1)
        nb = len(cells[0].blocks)
        self.num_slots = 2 * nb
        self.slots = nn.ModuleList()
        drop = torch.zeros((self.num_slots, K))
        for j in range(nb):
            for side in (0, 1):
                inputs = [cast(int, c.blocks[j][2 * side]) for c in cells]
                names = [cast(str, c.blocks[j][2 * side + 1]) for c in cells]
                strides = [2 if self.reduction and inp < 2 else 1 for inp in inputs]
                mods = [c.ops[2 * j + side] for c in cells]
                keys = list(zip(names, strides))
                widths = {s: K * C for s in range(2 + j)}
                self.slots.append(FusedPosition(mods, keys, inputs, C, [C] * K, C, [None] * K, registry, widths,
                                                band=strides))
                drop[2 * j + side] = torch.tensor([float(n != "identity") for n in names])
        self.register_buffer("droppable", drop, persistent=False)
        self.has_droppable = bool(drop.any())
        concat = [c.concat for c in cells]
        self.M = max(len(c) for c in concat)
        picks = []
        for k in range(K):
            for p in range(self.M):
                picks.append((concat[k][p], k * C, C) if p < len(concat[k]) else (ZERO, 0, C))
        self.output = ChannelGather(picks)
        self.out_width = self.M * C  # per network

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: torch.Tensor | None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        states: list[torch.Tensor | None] = [self.pre0([s0]) if self.pre0 is not None else None,
                                             self.pre1([s1]) if self.pre1 is not None else None]
        use_drop = self.training and drop_prob is not None and self.has_droppable
        mask = None
        if use_drop:
            assert drop_prob is not None
            ref = states[0] if states[0] is not None else states[1]
            assert ref is not None
            keep = 1.0 - drop_prob
            draws = torch.rand((ref.shape[0], self.num_slots, self.K), device=ref.device, generator=generator)
            kept = (draws < keep).to(ref.dtype) / keep.to(ref.dtype)
            # identity branches are never dropped
            mask = torch.where(self.droppable.to(torch.bool), kept, torch.ones_like(kept))
        for j in range(self.num_slots // 2):
            ha = self.slots[2 * j](states)
            hb = self.slots[2 * j + 1](states)
            if mask is not None:
                ha = self._drop(ha, mask[:, 2 * j])
                hb = self._drop(hb, mask[:, 2 * j + 1])
            states.append(ha + hb)
        return self.output(states)

    def _drop(self, h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        B, _, H, W = h.shape
        return (h.reshape(B, self.K, self.C, H, W) * m.reshape(B, self.K, 1, 1, 1)).reshape(B, -1, H, W)


class FusedNetwork(nn.Module):
    """K :class:`~nasbench_xfer.harness.network.Network` of one configuration as one module.

    Built from the K networks themselves (their parameters and BatchNorm statistics
    are copied, so each keeps its own initialisation).  ``forward`` takes images of
    shape ``(B, K, C, H, W)`` (each network its own batch) or ``(B, C, H, W)`` (one
    batch for all) and returns logits of shape ``(B, K, classes)``.
    """

    drop_path_prob: torch.Tensor

    def __init__(self, nets: Sequence[Network]):
        super().__init__()
        if not nets:
            raise ValueError("fusion needs at least one network")
        cfg: NetConfig = nets[0].cfg
        for n in nets[1:]:
            if n.cfg != cfg:
                raise ValueError(f"cannot fuse networks of different configurations: {n.cfg} vs {cfg}")
        if cfg.auxiliary or cfg.concat_unused_inputs:
            raise ValueError("fusion supports neither the auxiliary head nor concat_unused_inputs "
                             "(both off in the paper's search protocol)")
        K = len(nets)
        self.K, self.cfg = K, cfg
        self.archs = [n.arch for n in nets]
        registry: dict[int, list[int]] = {}
        everyone = list(range(K))
        self.stem = pack_modules([n.stem for n in nets], None, everyone, registry)
        w_stem = cfg.stem_multiplier * cfg.filters
        self.total_cells = nets[0].total_cells
        self.cells = nn.ModuleList()
        w_pp = w_p = w_stem
        for i in range(self.total_cells):
            cells = [cast(Cell, n.cells[i]) for n in nets]
            C = cells[0].out_channels // len(cells[0].concat)  # each block's output width
            fc = FusedCell(cells, C, w_pp, w_p, registry)
            self.cells.append(fc)
            w_pp, w_p = w_p, fc.out_width
        self.head_width = w_p
        classes = cfg.num_classes
        weight = torch.zeros((K, w_p, classes))
        with torch.no_grad():
            for k, n in enumerate(nets):
                weight[k, :n.classifier.in_features] = n.classifier.weight.t()
        self.head_weight = nn.Parameter(weight)
        self.head_bias = nn.Parameter(torch.stack([n.classifier.bias.detach().clone() for n in nets]))
        registry[id(self.head_weight)] = everyone
        registry[id(self.head_bias)] = everyone
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else None
        self.register_buffer("drop_path_prob", torch.zeros(()), persistent=False)
        self.drop_generator: torch.Generator | None = None
        #: for every parameter (by name), the network that owns each chunk of its first dimension
        self.owners: dict[str, tuple[int, ...]] = {}
        for name, p in self.named_parameters():
            if id(p) not in registry:
                raise AssertionError(f"fused parameter {name} has no owner")  # a packing bug
            self.owners[name] = tuple(registry[id(p)])

    def set_drop_path_progress(self, progress: float | torch.Tensor) -> None:
        """As :meth:`Network.set_drop_path_progress` (one schedule for all K networks)."""
        Network.set_drop_path_progress(self, progress)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        K = self.K
        if x.dim() == 4:
            x = x.unsqueeze(1).expand(x.shape[0], K, *x.shape[1:])
        if x.dim() != 5 or x.shape[1] != K:
            raise ValueError(f"expected images of shape (B, {K}, C, H, W) or (B, C, H, W), got {tuple(x.shape)}")
        B = x.shape[0]
        s0 = s1 = self.stem(x.reshape(B, K * x.shape[2], *x.shape[3:]))
        use_drop = self.cfg.drop_path > 0
        for cell in self.cells:
            p = self.drop_path_prob * cast(FusedCell, cell).layer_ratio if use_drop else None
            s0, s1 = s1, cell(s0, s1, p, self.drop_generator)
        feats = F.adaptive_avg_pool2d(F.relu(s1), 1).reshape(B, K, self.head_width)
        if self.dropout is not None:
            feats = self.dropout(feats)
        return torch.einsum("bkw,kwc->bkc", feats, self.head_weight) + self.head_bias

    # ---------------------------------------------------------------- flat storage, per-network views
    @torch.no_grad()
    def flatten_(self) -> None:
        """Put every parameter and its gradient into one flat buffer each (call after ``.to(device)``).

        The parameters become views of :attr:`flat_param` and their ``.grad`` views of
        :attr:`flat_grad` (backward accumulates into them in place), so the optimizer,
        the zeroing of the gradients and the per-network clipping are a handful of
        operations over one tensor instead of a few per parameter.
        """
        named = list(self.named_parameters())
        p0 = named[0][1]
        total = sum(p.numel() for _, p in named)
        flat = torch.empty(total, dtype=p0.dtype, device=p0.device)
        grad = torch.zeros_like(flat)
        starts, ends, owners = [], [], []
        o = 0
        for name, p in named:
            n = p.numel()
            flat[o:o + n].copy_(p.reshape(-1))
            p.data = flat[o:o + n].view_as(p)
            p.grad = grad[o:o + n].view_as(p)
            own = self.owners[name]
            chunk = n // len(own)
            for g, k in enumerate(own):
                starts.append(o + g * chunk)
                ends.append(o + (g + 1) * chunk)
                owners.append(k)
            o += n
        self.flat_param, self.flat_grad = flat, grad
        dev = p0.device
        self._chunk_start = torch.tensor(starts, dtype=torch.int64, device=dev)
        self._chunk_end = torch.tensor(ends, dtype=torch.int64, device=dev)
        self._chunk_owner = torch.tensor(owners, dtype=torch.int64, device=dev)
        self._owner_elem = torch.repeat_interleave(self._chunk_owner, self._chunk_end - self._chunk_start)

    @property
    def is_flat(self) -> bool:
        return getattr(self, "flat_param", None) is not None

    def _require_flat(self) -> None:
        if not self.is_flat:
            raise RuntimeError("per-network gradient norms need the flat buffers: call flatten_() "
                               "(after moving the network to its device) before the first backward pass")

    @torch.no_grad()
    def grad_norms(self) -> torch.Tensor:
        """Each network's gradient norm (over its own parameters), shape ``(K,)``; no host sync."""
        self._require_flat()
        # per-chunk sums of squares from one float64 running sum, then per network
        c = torch.cumsum(self.flat_grad.double().square(), 0)
        c = torch.cat([c.new_zeros(1), c])
        seg = c.index_select(0, self._chunk_end) - c.index_select(0, self._chunk_start)
        sq = torch.zeros(self.K, dtype=torch.float64, device=c.device).index_add_(0, self._chunk_owner, seg)
        return sq.clamp(min=0).sqrt().float()

    @torch.no_grad()
    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """``torch.nn.utils.clip_grad_norm_`` applied to each network's parameters alone; returns the K norms."""
        norms = self.grad_norms()
        coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        self.flat_grad.mul_(coef.index_select(0, self._owner_elem).to(self.flat_grad.dtype))
        return norms


# ------------------------------------------------------------------------------ training
class FusedTrainer(ArchTrainer):
    """Train the K networks of a :class:`FusedNetwork` at once under one protocol.

    The step is :class:`~nasbench_xfer.harness.engine.ArchTrainer`'s (the same epoch
    buffers, schedule, SGD and, on CUDA, the same single-graph capture) with three
    differences: each network draws its own epoch (data order and augmentation from
    ``seeds[k]``), the loss is the sum of the K networks' losses, and the gradient is
    clipped per network.  :attr:`results` holds one result per network, in order.
    """

    def __init__(self, model: FusedNetwork, train: DeviceSplit, val: DeviceSplit, test: DeviceSplit,
                 protocol: Protocol, seeds: Sequence[int], device: torch.device, fl: dict[str, Any],
                 log: Callable[[str], None] | None = None):
        if len(seeds) != model.K:
            raise ValueError(f"{model.K} fused networks but {len(seeds)} seeds")
        fl = dict(fl, channels_last=False)  # 5-d inputs: the fused step runs in NCHW
        super().__init__(model, train, val, test, protocol, int(seeds[0]), device, fl, log=log)  # type: ignore[arg-type]
        self.fused = model
        self.seeds = [int(s) for s in seeds]
        self.gens = [torch.Generator().manual_seed(s) for s in self.seeds]
        if not self.cuda:
            # CPU: one drop-path generator for the fused draws, seeded from all the seeds
            model.drop_generator = torch.Generator().manual_seed(hash(tuple(self.seeds)) % (2 ** 31) + 7919)
        if not model.is_flat:
            model.flatten_()
        self.params = [model.flat_param]
        self.bufs = [torch.zeros_like(model.flat_param)]
        self.loss_acc = torch.zeros((model.K,), device=device)
        self.correct_acc = torch.zeros((model.K,), dtype=torch.int64, device=device)
        self.results: list[dict[str, Any]] | None = None

    @staticmethod
    def _count_correct(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if y.dim() == 1:  # evaluation: one batch for every network
            y = y.unsqueeze(1)
        return (logits.argmax(2) == y).sum(0)

    def _epoch_buffer(self, buf: Any) -> tuple[Any, torch.Tensor, int, int]:
        """Each network's epoch (its own generator), stacked as ``(N, K, C, H, W)``."""
        bs = self.protocol.effective_batch_size
        ys, nb, blen = [], 0, 0
        for k, gen in enumerate(self.gens):
            if buf is None:
                x0, y0, nb, blen = self.train.epoch_buffer(bs, self.aug, gen)
                buf = torch.empty((x0.shape[0], self.fused.K, *x0.shape[1:]), dtype=x0.dtype, device=x0.device)
                buf[:, k].copy_(x0)
                del x0
            else:
                _, y0, nb, blen = self.train.epoch_buffer(bs, self.aug, gen, out=buf[:, k])
            ys.append(y0)
        return buf, torch.stack(ys, dim=1), nb, blen

    def _eager_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self._step_body(x, y)  # the gradients are views of one flat buffer: zeroed in the step

    def _step_body(self, x: torch.Tensor, y: torch.Tensor, cache: bool = True) -> None:
        fused = self.fused
        fused.flat_grad.zero_()
        with self._autocast(cache):
            logits = self.model(x)                               # (B, K, classes)
            B, K, classes = logits.shape
            per_net = F.cross_entropy(logits.reshape(B * K, classes).float(), y.reshape(-1),
                                      reduction="none").reshape(B, K).mean(0)
        per_net.sum().backward()
        if self.protocol.grad_clip:
            fused.clip_grad_norm_(self.protocol.grad_clip)
        sgd_update_([fused.flat_param], [fused.flat_grad], self.bufs, self.lr_t,
                    self.protocol.momentum, self.protocol.weight_decay, self.protocol.nesterov)
        with torch.no_grad():
            self.loss_acc.add_(per_net.detach().float() * B)
            self.correct_acc.add_(self._count_correct(logits.detach(), y))

    def _collect(self, loss_v: list, corr_v: list, valc_v: list, test_c: Any, seens: list[int],
                 train_s: float, wall: float) -> None:
        """One result per network (the timings are the fused training's, shared)."""
        out = []
        for k in range(self.fused.K):
            ArchTrainer._collect(self, [r[k] for r in loss_v], [r[k] for r in corr_v], [r[k] for r in valc_v],
                                 test_c[k], seens, train_s, wall)
            assert self.result is not None
            out.append(self.result)
        self.results = out
        self.result = None
