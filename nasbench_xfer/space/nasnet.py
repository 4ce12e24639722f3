"""The NASNet search space of the XferNAS paper (section 4.1, appendix C).

An architecture is a normal cell and a reduction cell of ``B`` blocks each.
Block ``j`` (0-based) sums two branches; each branch applies one of the 19
operations to one input.  Input ids inside a cell:

* ``0`` - output of the cell before the previous one, h[i-2]  (JSON ``node_1``)
* ``1`` - output of the previous cell, h[i-1]                  (JSON ``node_2``)
* ``k + 2`` - output of block ``k`` of the same cell, ``k < j`` (JSON ``node_{k+3}``)

Token encoding (NAO's NASNet encoding): 4 tokens per block, ``[input_a, op_a,
input_b, op_b]``, the normal cell's B blocks then the reduction cell's, so
``8 * B`` tokens (40 for B=5).  Vocabulary: ids ``0 .. B+1`` are input ids, ids
``B+2 .. B+20`` are the 19 operations in :data:`OPS` order (26 tokens for
B=5).  Every sequence that respects :meth:`NASNetSpace.token_mask` is a valid
architecture, so NAO's masked decoder can never produce an invalid one.  (NAO
splits each operation into an op-type token and a kernel token; with that split
some pairs, e.g. ``min_pool 7x7``, would be invalid, which this encoding rules
out by construction.)
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .base import SearchSpace, SpaceError

#: The 19 operations (section 4.1), named as in the paper's appendix C.
OPS: tuple[str, ...] = (
    "identity",
    "conv 1x1",
    "conv 3x3",
    "conv 1x3+3x1",
    "conv 1x7+7x1",
    "max_pool 2x2",
    "max_pool 3x3",
    "max_pool 5x5",
    "max_pool 7x7",
    "avg_pool 2x2",
    "avg_pool 3x3",
    "avg_pool 5x5",
    "min_pool 2x2",
    "sep_conv 3x3",
    "sep_conv 5x5",
    "sep_conv 7x7",
    "dil_sep_conv 3x3",
    "dil_sep_conv 5x5",
    "dil_sep_conv 7x7",
)
OP_INDEX = {op: i for i, op in enumerate(OPS)}


class Block(NamedTuple):
    """One block: ``op_a(input_a) + op_b(input_b)``; inputs as in the module doc."""

    input_a: int
    op_a: str
    input_b: int
    op_b: str


Cell = tuple[Block, ...]


@dataclass(frozen=True)
class NASNetArch:
    """A NASNet-space architecture: a normal and a reduction cell (immutable, hashable)."""

    normal: Cell
    reduction: Cell

    @property
    def num_blocks(self) -> int:
        return len(self.normal)

    def to_json(self) -> str:
        return to_json(self)

    @classmethod
    def from_json(cls, text: str) -> NASNetArch:
        return from_json(text)

    def __str__(self) -> str:
        return to_json(self, compact=True)


def _cell_inputs_ok(cell: Sequence[Block], where: str) -> None:
    for j, b in enumerate(cell):
        for inp, op in ((b.input_a, b.op_a), (b.input_b, b.op_b)):
            if op not in OP_INDEX:
                raise SpaceError(f"{where} block {j} (node_{j + 3}): unknown operation {op!r}; "
                                 f"known: {', '.join(OPS)}")
            if not isinstance(inp, (int, np.integer)) or not 0 <= inp <= j + 1:
                raise SpaceError(f"{where} block {j} (node_{j + 3}): input {inp!r} out of range "
                                 f"(block {j} may read inputs 0..{j + 1})")


def _canonical_cell(cell: Sequence[Block]) -> Cell:
    """Lexicographically smallest relabelling of a cell over all topological orders.

    Equivalent cells (branches swapped, independent blocks reordered) map to the
    same value.  Greedy with branching on ties, which is exact: the relabelled
    form of a block depends only on blocks already placed.
    """
    n = len(cell)
    deps = [{i - 2 for i in (b.input_a, b.input_b) if i >= 2} for b in cell]
    best: list[tuple] | None = None

    def form(old: int, pos: dict[int, int]) -> tuple:
        b = cell[old]
        pa = (b.input_a if b.input_a < 2 else pos[b.input_a - 2] + 2, OP_INDEX[b.op_a])
        pb = (b.input_b if b.input_b < 2 else pos[b.input_b - 2] + 2, OP_INDEX[b.op_b])
        return (pa, pb) if pa <= pb else (pb, pa)

    def rec(pos: dict[int, int], seq: list[tuple]) -> None:
        nonlocal best
        if len(seq) == n:
            if best is None or seq < best:
                best = list(seq)
            return
        ready = [k for k in range(n) if k not in pos and deps[k] <= pos.keys()]
        forms = {k: form(k, pos) for k in ready}
        low = min(forms.values())
        if best is not None and seq + [low] > best[: len(seq) + 1]:
            return
        for k in ready:
            if forms[k] == low:
                pos[k] = len(seq)
                rec(pos, seq + [low])
                del pos[k]

    rec({}, [])
    assert best is not None
    return tuple(Block(pa[0], OPS[pa[1]], pb[0], OPS[pb[1]]) for pa, pb in best)


class NASNetSpace(SearchSpace[NASNetArch]):
    """NASNet cells with ``num_blocks`` blocks (default 5) and the paper's 19 operations."""

    name = "nasnet"

    def __init__(self, num_blocks: int = 5):
        if not isinstance(num_blocks, int) or num_blocks < 1:
            raise SpaceError(f"nasnet: num_blocks must be a positive integer, got {num_blocks!r}")
        self.num_blocks = num_blocks
        self.num_ops = len(OPS)
        self.seq_len = 8 * num_blocks
        self.vocab_size = num_blocks + 2 + len(OPS)
        self._op_offset = num_blocks + 2
        mask = np.zeros((self.seq_len, self.vocab_size), dtype=bool)
        for pos in range(self.seq_len):
            j = (pos // 4) % num_blocks
            if pos % 2 == 0:
                mask[pos, : j + 2] = True
            else:
                mask[pos, self._op_offset:] = True
        mask.setflags(write=False)
        self._mask = mask

    def config(self) -> dict[str, Any]:
        return {"num_blocks": self.num_blocks}

    # -------------------------------------------------------------- encoding
    def token_mask(self) -> np.ndarray:
        return self._mask

    def vocabulary(self) -> list[str]:
        inputs = ["h[i-2]", "h[i-1]"] + [f"block{k}" for k in range(self.num_blocks)]
        return inputs + list(OPS)

    def describe_position(self, i: int) -> str:
        cell = "normal" if i < 4 * self.num_blocks else "reduction"
        j = (i // 4) % self.num_blocks
        what = ["input_a", "op_a", "input_b", "op_b"][i % 4]
        return f"{cell} cell block {j} {what}"

    def encode(self, arch: NASNetArch) -> tuple[int, ...]:
        self.validate(arch)
        off = self._op_offset
        return tuple(t for cell in (arch.normal, arch.reduction) for b in cell
                     for t in (b.input_a, off + OP_INDEX[b.op_a], b.input_b, off + OP_INDEX[b.op_b]))

    def _from_tokens(self, tokens: tuple[int, ...]) -> NASNetArch:
        off, B = self._op_offset, self.num_blocks
        blocks = [Block(tokens[i], OPS[tokens[i + 1] - off], tokens[i + 2], OPS[tokens[i + 3] - off])
                  for i in range(0, self.seq_len, 4)]
        return NASNetArch(tuple(blocks[:B]), tuple(blocks[B:]))

    def validate(self, arch: Any) -> NASNetArch:
        """Return ``arch`` if it is a valid architecture of this space, else raise SpaceError."""
        if not isinstance(arch, NASNetArch):
            raise SpaceError(f"nasnet: expected a NASNetArch, got {type(arch).__name__}")
        for cell, where in ((arch.normal, "normal cell"), (arch.reduction, "reduction cell")):
            if len(cell) != self.num_blocks:
                raise SpaceError(f"nasnet: {where} has {len(cell)} blocks, expected B={self.num_blocks}")
            _cell_inputs_ok(cell, where)
        return arch

    # ------------------------------------------------------------- identity
    def sample(self, rng: np.random.Generator) -> NASNetArch:
        def cell() -> Cell:
            return tuple(
                Block(int(rng.integers(j + 2)), OPS[rng.integers(len(OPS))],
                      int(rng.integers(j + 2)), OPS[rng.integers(len(OPS))])
                for j in range(self.num_blocks))
        return NASNetArch(cell(), cell())

    def canonical(self, arch: NASNetArch) -> NASNetArch:
        self.validate(arch)
        return NASNetArch(_canonical_cell(arch.normal), _canonical_cell(arch.reduction))

    def augment(self, arch: NASNetArch, rng: np.random.Generator) -> NASNetArch:
        """NAO's symmetry augmentation: swap the two branches of each block with probability 1/2."""
        def cell(c: Cell) -> Cell:
            return tuple(Block(b.input_b, b.op_b, b.input_a, b.op_a) if rng.random() < 0.5 else b
                         for b in c)
        return NASNetArch(cell(arch.normal), cell(arch.reduction))

    def to_string(self, arch: NASNetArch) -> str:
        return to_json(self.validate(arch), compact=True)

    def from_string(self, text: str) -> NASNetArch:
        arch = from_json(text)
        if arch.num_blocks != self.num_blocks:
            raise SpaceError(f"nasnet: architecture has B={arch.num_blocks} blocks, "
                             f"space has B={self.num_blocks}")
        return arch


# ------------------------------------------------------------------- JSON I/O
_CELL_KEYS = (("conv_dag", "normal"), ("reduc_dag", "reduction"))


def _cell_json(cell: Cell) -> dict[str, list]:
    nodes: dict[str, list] = {"node_1": ["node_1", None, None, None, None],
                              "node_2": ["node_2", None, None, None, None]}
    for j, b in enumerate(cell):
        name = f"node_{j + 3}"
        nodes[name] = [name, f"node_{b.input_a + 1}", f"node_{b.input_b + 1}", b.op_a, b.op_b]
    return nodes


def to_json(arch: NASNetArch, compact: bool = False) -> str:
    """Appendix-C JSON; the default layout is the paper's (2-space indent, a node per line)."""
    doc = {key: _cell_json(getattr(arch, attr)) for key, attr in _CELL_KEYS}
    if compact:
        return json.dumps(doc, separators=(",", ":"))
    lines = ["{"]
    for ci, (key, _) in enumerate(_CELL_KEYS):
        lines.append(f'  "{key}": {{')
        nodes = list(doc[key].items())
        for ni, (name, row) in enumerate(nodes):
            comma = "," if ni < len(nodes) - 1 else ""
            lines.append(f'    "{name}": [{", ".join(json.dumps(v) for v in row)}]{comma}')
        lines.append("  }," if ci < len(_CELL_KEYS) - 1 else "  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _parse_cell(nodes: Any, where: str) -> Cell:
    if not isinstance(nodes, dict):
        raise SpaceError(f"{where}: expected an object of nodes, got {type(nodes).__name__}")
    for special in ("node_1", "node_2"):
        row = nodes.get(special)
        if row is None:
            raise SpaceError(f"{where}: missing cell input {special}")
        if not (isinstance(row, list) and len(row) == 5 and row[0] == special
                and all(v is None for v in row[1:])):
            raise SpaceError(f"{where} {special}: a cell input must be "
                             f'["{special}", null, null, null, null], got {row!r}')
    names = [k for k in nodes if k not in ("node_1", "node_2")]
    index: dict[str, int] = {"node_1": 0, "node_2": 1}
    for name in names:
        if not (name.startswith("node_") and name[5:].isdigit()):
            raise SpaceError(f"{where}: bad node name {name!r} (expected node_<k>)")
    names.sort(key=lambda s: int(s[5:]))
    raw: dict[str, tuple[str, str, str, str]] = {}
    for name in names:
        row = nodes[name]
        if not (isinstance(row, list) and len(row) == 5):
            raise SpaceError(f"{where} {name}: expected [name, input_a, input_b, op_a, op_b], got {row!r}")
        if row[0] != name:
            raise SpaceError(f"{where} {name}: first entry {row[0]!r} should repeat the node name")
        _, ia, ib, oa, ob = row
        for v in (ia, ib, oa, ob):
            if not isinstance(v, str):
                raise SpaceError(f"{where} {name}: inputs and operations must be strings, got {v!r}")
        for op in (oa, ob):
            if op not in OP_INDEX:
                raise SpaceError(f"{where} {name}: unknown operation {op!r}; known: {', '.join(OPS)}")
        for inp in (ia, ib):
            if inp not in nodes:
                raise SpaceError(f"{where} {name}: input {inp!r} out of range "
                                 f"(no such node; nodes are {', '.join(['node_1', 'node_2'] + names)})")
            if inp == name:
                raise SpaceError(f"{where} {name}: cycle: {name} reads its own output")
        raw[name] = (ia, ib, oa, ob)
    # topological order (Kahn, ties by node number) and cycle detection
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        if n in index or state.get(n) == 2:
            return
        if state.get(n) == 1:
            cyc = path[path.index(n):] + [n]
            raise SpaceError(f"{where} {n}: cycle: {' -> '.join(cyc)}")
        state[n] = 1
        for inp in raw[n][:2]:
            visit(inp, path + [n])
        state[n] = 2
        order.append(n)

    for name in names:
        visit(name, [])
    for k, name in enumerate(order):
        index[name] = k + 2
    return tuple(Block(index[raw[n][0]], raw[n][2], index[raw[n][1]], raw[n][3]) for n in order)


def from_json(text: str | dict) -> NASNetArch:
    """Parse appendix-C JSON (a string or an already-loaded dict).

    Blocks may be listed in any order as long as they form a DAG; they are
    renumbered in topological order.  Errors name the cell, the node and the
    problem.
    """
    if isinstance(text, (str, bytes)):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpaceError(f"nasnet: malformed JSON: {exc}") from None
    else:
        doc = text
    if not isinstance(doc, dict):
        raise SpaceError("nasnet: expected a JSON object with 'conv_dag' and 'reduc_dag'")
    missing = [k for k, _ in _CELL_KEYS if k not in doc]
    if missing:
        raise SpaceError(f"nasnet: missing {', '.join(missing)} (expected 'conv_dag' and 'reduc_dag')")
    cells = [_parse_cell(doc[key], key) for key, _ in _CELL_KEYS]
    if len(cells[0]) != len(cells[1]):
        raise SpaceError(f"nasnet: wrong block count: conv_dag has {len(cells[0])} blocks, "
                         f"reduc_dag has {len(cells[1])}")
    if not cells[0]:
        raise SpaceError("nasnet: wrong block count: cells have no blocks")
    return NASNetArch(cells[0], cells[1])


#: XferNASNet, the architecture the paper found on CIFAR-10 (appendix C), verbatim.
XFERNASNET_JSON = """{
  "conv_dag": {
    "node_1": ["node_1", null, null, null, null],
    "node_2": ["node_2", null, null, null, null],
    "node_3": ["node_3", "node_1", "node_2", "sep_conv 3x3", "conv 3x3"],
    "node_4": ["node_4", "node_1", "node_3", "identity", "avg_pool 2x2"],
    "node_5": ["node_5", "node_1", "node_3", "dil_sep_conv 5x5", "identity"],
    "node_6": ["node_6", "node_1", "node_2", "conv 1x1", "avg_pool 5x5"],
    "node_7": ["node_7", "node_5", "node_1", "conv 3x3", "conv 1x1"]
  },
  "reduc_dag": {
    "node_1": ["node_1", null, null, null, null],
    "node_2": ["node_2", null, null, null, null],
    "node_3": ["node_3", "node_2", "node_1", "identity", "conv 1x3+3x1"],
    "node_4": ["node_4", "node_2", "node_2", "max_pool 5x5", "conv 1x3+3x1"],
    "node_5": ["node_5", "node_4", "node_3", "avg_pool 3x3", "dil_sep_conv 5x5"],
    "node_6": ["node_6", "node_2", "node_5", "max_pool 2x2", "sep_conv 3x3"],
    "node_7": ["node_7", "node_4", "node_1", "sep_conv 7x7", "sep_conv 3x3"]
  }
}
"""

NAMED_ARCHS: dict[str, str] = {"xfernasnet": XFERNASNET_JSON}


def named_arch(name: str) -> NASNetArch:
    """A published architecture by name (``xfernasnet``)."""
    try:
        return from_json(NAMED_ARCHS[name.lower()])
    except KeyError:
        raise SpaceError(f"unknown named architecture {name!r}; known: {', '.join(NAMED_ARCHS)}") from None


def unused_blocks(cell: Iterable[Block]) -> list[int]:
    """Indices of blocks no other block reads: their outputs are concatenated as the cell output."""
    cell = list(cell)
    used = {i - 2 for b in cell for i in (b.input_a, b.input_b) if i >= 2}
    return [k for k in range(len(cell)) if k not in used]
