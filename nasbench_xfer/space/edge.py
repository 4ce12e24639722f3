"""Cell spaces with one operation per edge: NAS-Bench-201 and TransNAS-Bench-101 micro.

A cell has 4 nodes; node 0 is the cell input and node 3 the cell output.  Each
of the 6 edges ``j <- i`` (``i < j``) applies one operation to node ``i``'s
output, and a node sums its incoming edges.  The edges are always listed in this
order (the order of both benchmarks' own strings)::

    position 0: 1<-0    position 1: 2<-0    position 2: 2<-1
    position 3: 3<-0    position 4: 3<-1    position 5: 3<-2

Token encoding: 6 tokens, one per edge in that order; token id = index of the
edge's operation in the space's op list (so ``vocab_size`` = number of ops and
every sequence of 6 in-range ids is a valid architecture).

Canonical form: every specification is its own canonical form.  Some cells of
these spaces compute the same function (e.g. a ``none`` edge into a node whose
output is discarded anyway), but the tabular benchmarks list every one of the
``n_ops ** 6`` specifications as an entry with its own trained result, so the
store keeps them apart too: :meth:`EdgeCellSpace.canonical` returns ``arch``.

Strings:

* NAS-Bench-201 cell string (:meth:`~EdgeCellSpace.to_string`, accepted by both spaces)::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|

* TransNAS-Bench-101 micro only: the op-index tuple ``"(2, 3, 2, 3, 2, 3)"`` (as in
  NASLib's exports) and the benchmark's micro string ``"64-41414-2_33_222"`` (the
  ``64-41414-`` macro prefix is optional; digits are op ids, grouped by target node).
"""
from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import EnumerableSpace, SpaceError

#: the 6 edges as (target, source), in token/string order
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_EDGES = len(EDGES)

NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: TransNAS-Bench-101 micro ops, indexed as the benchmark numbers them (0 zero, 1 skip, 2 conv1x1, 3 conv3x3)
TRANSNAS_MICRO_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3")

#: the macro skeleton prefix of TransNAS-Bench-101 micro strings
TRANSNAS_MACRO_PREFIX = "64-41414-"


@dataclass(frozen=True)
class EdgeCellArch:
    """A cell: the operation of each of the 6 edges in :data:`EDGES` order (immutable, hashable)."""

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.ops, tuple):
            object.__setattr__(self, "ops", tuple(self.ops))

    def __str__(self) -> str:
        return nb201_string(self.ops)


def nb201_string(ops: Sequence[str]) -> str:
    """NAS-Bench-201 cell string of 6 edge ops in :data:`EDGES` order."""
    nodes = []
    k = 0
    for target in (1, 2, 3):
        parts = []
        for source in range(target):
            parts.append(f"{ops[k]}~{source}")
            k += 1
        nodes.append("|" + "|".join(parts) + "|")
    return "+".join(nodes)


class EdgeCellSpace(EnumerableSpace[EdgeCellArch]):
    """4-node, 6-edge cells with one op per edge; subclasses set ``name`` and ``OPS``."""

    OPS: tuple[str, ...] = ()
    seq_len = NUM_EDGES
    size: int

    def __init__(self) -> None:
        if not self.OPS:
            raise SpaceError("EdgeCellSpace is abstract: use NB201Space or TransNASMicroSpace")
        self.ops = tuple(self.OPS)
        self.n_ops = len(self.ops)
        self.op_index = {op: i for i, op in enumerate(self.ops)}
        self.vocab_size = self.n_ops
        self.size = self.dense_size = self.n_ops ** NUM_EDGES
        mask = np.ones((self.seq_len, self.vocab_size), dtype=bool)
        mask.setflags(write=False)
        self._mask = mask
        self._weights = self.n_ops ** np.arange(NUM_EDGES - 1, -1, -1, dtype=np.int64)
        self._dense_table: np.ndarray | None = None

    def config(self) -> dict[str, Any]:
        return {}

    # -------------------------------------------------------------- encoding
    def token_mask(self) -> np.ndarray:
        return self._mask

    def vocabulary(self) -> list[str]:
        return list(self.ops)

    def describe_position(self, i: int) -> str:
        if 0 <= i < NUM_EDGES:
            t, s = EDGES[i]
            return f"edge {t}<-{s}"
        return f"position {i}"

    def validate(self, arch: Any) -> EdgeCellArch:
        """Return ``arch`` if it is a valid architecture of this space, else raise SpaceError."""
        if not isinstance(arch, EdgeCellArch):
            raise SpaceError(f"{self.name}: expected an EdgeCellArch, got {type(arch).__name__}")
        if len(arch.ops) != NUM_EDGES:
            raise SpaceError(f"{self.name}: expected {NUM_EDGES} edge ops, got {len(arch.ops)}")
        for i, op in enumerate(arch.ops):
            if op not in self.op_index:
                raise SpaceError(f"{self.name}: {self.describe_position(i)}: unknown operation {op!r}; "
                                 f"known: {', '.join(self.ops)}")
        return arch

    def encode(self, arch: EdgeCellArch) -> tuple[int, ...]:
        self.validate(arch)
        return tuple(self.op_index[op] for op in arch.ops)

    def _from_tokens(self, tokens: tuple[int, ...]) -> EdgeCellArch:
        return EdgeCellArch(tuple(self.ops[t] for t in tokens))

    def arch_from_ids(self, ids: Sequence[int]) -> EdgeCellArch:
        """Architecture from 6 op ids (raises SpaceError naming the edge if one is out of range)."""
        ids = list(ids)
        if len(ids) != NUM_EDGES:
            raise SpaceError(f"{self.name}: expected {NUM_EDGES} op ids, got {len(ids)}")
        for i, t in enumerate(ids):
            if not isinstance(t, (int, np.integer)) or not 0 <= t < self.n_ops:
                raise SpaceError(f"{self.name}: {self.describe_position(i)}: op id {t!r} out of range "
                                 f"0..{self.n_ops - 1}")
        return EdgeCellArch(tuple(self.ops[int(t)] for t in ids))

    # ------------------------------------------------------------- identity
    def sample(self, rng: np.random.Generator) -> EdgeCellArch:
        return EdgeCellArch(tuple(self.ops[int(i)] for i in rng.integers(self.n_ops, size=NUM_EDGES)))

    def canonical(self, arch: EdgeCellArch) -> EdgeCellArch:
        """``arch`` itself: tabular benchmarks list every specification as its own entry."""
        return self.validate(arch)

    def to_string(self, arch: EdgeCellArch) -> str:
        return nb201_string(self.validate(arch).ops)

    def from_string(self, text: str) -> EdgeCellArch:
        if not isinstance(text, str):
            raise SpaceError(f"{self.name}: expected a string, got {type(text).__name__}")
        return self._parse_nb201(text.strip())

    def _parse_nb201(self, text: str) -> EdgeCellArch:
        if not text:
            raise SpaceError(f"{self.name}: empty architecture string")
        nodes = text.split("+")
        if len(nodes) != 3:
            raise SpaceError(f"{self.name}: expected 3 node groups separated by '+' "
                             f"(nodes 1, 2, 3), got {len(nodes)} in {text!r}")
        ops: list[str] = []
        for target, group in zip((1, 2, 3), nodes):
            if not (len(group) >= 2 and group.startswith("|") and group.endswith("|")):
                raise SpaceError(f"{self.name}: node {target}: group {group!r} must be written "
                                 f"'|op~i|...|'")
            edges = group[1:-1].split("|")
            if len(edges) != target:
                raise SpaceError(f"{self.name}: node {target}: wrong edge count: expected {target} "
                                 f"incoming edges (from nodes 0..{target - 1}), got {len(edges)} in {group!r}")
            for source, edge in enumerate(edges):
                where = f"edge {target}<-{source}"
                op, sep, src = edge.rpartition("~")
                if not sep:
                    raise SpaceError(f"{self.name}: {where}: expected 'op~{source}', got {edge!r}")
                if src != str(source):
                    raise SpaceError(f"{self.name}: {where}: wrong source index {src!r} in {edge!r}; "
                                     f"the edges into node {target} must read nodes 0..{target - 1} in order")
                if op not in self.op_index:
                    raise SpaceError(f"{self.name}: {where}: unknown operation {op!r}; "
                                     f"known: {', '.join(self.ops)}")
                ops.append(op)
        return EdgeCellArch(tuple(ops))

    # ---------------------------------------------------- exhaustive spaces
    def enumerate(self) -> Iterator[EdgeCellArch]:
        """All ``n_ops ** 6`` cells in :meth:`dense_index` order."""
        for ids in itertools.product(range(self.n_ops), repeat=NUM_EDGES):
            yield EdgeCellArch(tuple(self.ops[i] for i in ids))

    def dense_index(self, arch: EdgeCellArch) -> int:
        """Position of ``arch`` in :meth:`enumerate`: op ids as a base-``n_ops`` number, edge 1<-0 first."""
        return int(np.dot(self.encode(arch), self._weights))

    def dense_index_tokens(self, tokens: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`dense_index` of token rows, shape (N, 6) -> (N,) int64."""
        t = np.asarray(tokens)
        if t.ndim != 2 or t.shape[1] != NUM_EDGES:
            raise SpaceError(f"{self.name}: expected tokens of shape (N, {NUM_EDGES}), got {t.shape}")
        if t.size and (t.min() < 0 or t.max() >= self.n_ops):
            raise SpaceError(f"{self.name}: token ids must lie in 0..{self.n_ops - 1}")
        return t.astype(np.int64) @ self._weights

    def dense_canonical_table(self) -> np.ndarray:
        """Dense index of the canonical form of each spec, by dense index: the identity here.

        (The store's protocol for enumerable spaces: with :meth:`dense_index` and
        :meth:`dense_index_tokens` it builds a raw-spec -> store-id lookup array.)
        """
        if self._dense_table is None:
            t = np.arange(self.size, dtype=np.int64)
            t.setflags(write=False)
            self._dense_table = t
        return self._dense_table

    def from_dense_index(self, index: int) -> EdgeCellArch:
        """Inverse of :meth:`dense_index`."""
        if not 0 <= index < self.size:
            raise SpaceError(f"{self.name}: dense index {index} out of range 0..{self.size - 1}")
        ids = []
        for w in self._weights:
            d, index = divmod(int(index), int(w))
            ids.append(d)
        return EdgeCellArch(tuple(self.ops[i] for i in ids))


class NB201Space(EdgeCellSpace):
    """NAS-Bench-201 cells: 5 ops (none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3), 15,625 cells."""

    name = "nb201"
    OPS = NB201_OPS


_TUPLE_RE = re.compile(r"^\(\s*(-?\d+)\s*(?:,\s*(-?\d+)\s*)*,?\s*\)$")
_MICRO_RE = re.compile(r"^(?:(?P<macro>[^_]*)-)?(?P<cell>[0-9]+_[0-9]+_[0-9]+)$")


class TransNASMicroSpace(EdgeCellSpace):
    """TransNAS-Bench-101 micro cells: 4 ops (0 none, 1 skip_connect, 2 nor_conv_1x1, 3 nor_conv_3x3), 4,096 cells.

    :meth:`from_string` also reads the op-index tuple ``"(2, 3, 2, 3, 2, 3)"`` and
    the micro string ``"64-41414-2_33_222"`` (prefix optional).
    """

    name = "transnas_micro"
    OPS = TRANSNAS_MICRO_OPS

    def micro_string(self, arch: EdgeCellArch, prefix: bool = True) -> str:
        """TransNAS-Bench-101 micro string, e.g. ``64-41414-2_33_222``."""
        d = "".join(str(i) for i in self.encode(arch))
        cell = f"{d[0]}_{d[1:3]}_{d[3:6]}"
        return TRANSNAS_MACRO_PREFIX + cell if prefix else cell

    def from_string(self, text: str) -> EdgeCellArch:
        if not isinstance(text, str):
            raise SpaceError(f"{self.name}: expected a string, got {type(text).__name__}")
        s = text.strip()
        if s.startswith("("):
            if not _TUPLE_RE.match(s):
                raise SpaceError(f"{self.name}: malformed op-index tuple {s!r}; expected e.g. '(2, 3, 2, 3, 2, 3)'")
            ids = [int(x) for x in s.strip("()").split(",") if x.strip()]
            return self.arch_from_ids(ids)
        m = _MICRO_RE.match(s)
        if m and "|" not in s:
            macro = m.group("macro")
            if macro is not None and macro + "-" != TRANSNAS_MACRO_PREFIX:
                raise SpaceError(f"{self.name}: micro string prefix {macro + '-'!r} is not the "
                                 f"micro benchmark's macro skeleton {TRANSNAS_MACRO_PREFIX!r}")
            groups = m.group("cell").split("_")
            for target, g in zip((1, 2, 3), groups):
                if len(g) != target:
                    raise SpaceError(f"{self.name}: micro string {s!r}: node {target}: wrong edge count: "
                                     f"expected {target} digit(s), got {len(g)} ({g!r})")
            ids = [int(c) for c in "".join(groups)]
            return self.arch_from_ids(ids)
        return self._parse_nb201(s)
