"""The NAS-Bench-Graph space (Qin et al., NeurIPS 2022 Datasets and Benchmarks).

An architecture is a GNN cell of 4 computing nodes.  Node ``i`` (1-based) reads
the output of node ``links[i-1]`` (``0`` is the cell input, ``k`` the output of
node ``k``, ``k < i``), applies ``ops[i-1]`` to it; the cell output combines the
nodes nobody reads.  This is the PyPI package ``nas_bench_graph``'s
``Arch(lk, op)``: :class:`GraphArch` ``(links, ops)`` is exactly its
``(link, ops)``.

Operations: the package's 9 (``gat gcn gin cheb sage arma graph fc skip``), or
a subset given as ``config={"ops": [...]}``; the ``proteins`` dataset of the
benchmark trained only ``gcn sage arma fc skip`` (:data:`PROTEINS_OPS`).

Raw specifications and canonical form.  A raw spec has any ``links`` with
``0 <= links[i] <= i`` (24 link tuples) and any ops except all ``skip``.  Many
raw specs are the same network; the benchmark stores one entry per class under
the key ``nas_bench_graph.Arch(links, ops).valid_hash()``: ``link_index * 10**4``
plus the 4 op ids as base-10 digits over the 9-op list (also for proteins),
where ``link_index`` indexes the package's 9 canonical link tuples
``link_list``.  :meth:`GraphSpace.canonical` maps a raw spec to the decoded key
(``link_list[link_index]``, ops), and :meth:`GraphSpace.table_key` gives the key.
The canonicalisation is the package's own: the full raw->key table is computed
once per process with the package's rules (vectorised with numpy; see
:func:`raw_to_key_table`) and the tests check it against ``valid_hash`` on all
157,464 raw specs.

Token encoding: 5 tokens ``[link_index, op1, op2, op3, op4]``; ids ``0..8`` are
the 9 canonical link tuples, ids ``9..9+len(ops)-1`` the ops.  A raw spec whose
link tuple is not one of the 9 is encoded as its canonical form (same network).
Every masked sequence is valid except all-``skip`` ops, which strict decoding
rejects and ``decode(repair=True)`` repairs (last op -> the first non-skip op).

String form: compact JSON ``{"links":[0,0,1,2],"ops":["gcn","gat","sage","skip"]}``.

Hash: of the canonical form's tokens over the 9-op ids, whatever the space's op list, so the
same network has the same hash in an op subset (the proteins store) as in the 9-op space.
"""
from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import EnumerableSpace, SpaceError

try:  # the peer package holds the canonicalisation rules; it is a dependency
    from nas_bench_graph import Arch as _PeerArch
except ImportError:  # pragma: no cover - reported when a GraphSpace is built
    _PeerArch = None

#: the package's 9 operations, in the order of its table keys' digits
GNN_OPS: tuple[str, ...] = ("gat", "gcn", "gin", "cheb", "sage", "arma", "graph", "fc", "skip")
#: the operations of the ``proteins`` dataset (``nas_bench_graph.gnn_list_proteins``)
PROTEINS_OPS: tuple[str, ...] = ("gcn", "sage", "arma", "fc", "skip")
#: the 9 canonical link tuples (``nas_bench_graph.link_list``), indexed by link token / key // 10**4
LINK_LIST: tuple[tuple[int, int, int, int], ...] = (
    (0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 1, 1), (0, 0, 1, 2), (0, 0, 1, 3),
    (0, 1, 1, 1), (0, 1, 1, 2), (0, 1, 2, 2), (0, 1, 2, 3))
LINK_INDEX: dict[tuple[int, ...], int] = {lk: i for i, lk in enumerate(LINK_LIST)}
N_LINKS = len(LINK_LIST)
#: all 24 raw link tuples (``links[i]`` in ``0..i``), in lexicographic order (dense-index order)
RAW_LINKS: tuple[tuple[int, int, int, int], ...] = tuple(
    itertools.product(range(1), range(2), range(3), range(4)))
RAW_LINK_INDEX: dict[tuple[int, ...], int] = {lk: i for i, lk in enumerate(RAW_LINKS)}
GNN_INDEX = {op: i for i, op in enumerate(GNN_OPS)}
SKIP = GNN_INDEX["skip"]
N_GNN = len(GNN_OPS)
OPS_PER_LINK = N_GNN ** 4
#: number of raw specs addressed by :meth:`GraphSpace.dense_index` (24 * 9**4 = 157,464)
DENSE_SIZE = len(RAW_LINKS) * OPS_PER_LINK
_DIGITS = np.array([1000, 100, 10, 1], dtype=np.int64)
_BASE9 = np.array([N_GNN ** 3, N_GNN ** 2, N_GNN, 1], dtype=np.int64)


@dataclass(frozen=True)
class GraphArch:
    """A NAS-Bench-Graph spec: ``links`` (node i reads ``links[i]``) and one op per node."""

    links: tuple[int, ...]  # 4 entries
    ops: tuple[str, ...]  # 4 entries

    def __post_init__(self) -> None:
        if not isinstance(self.links, tuple):
            object.__setattr__(self, "links", tuple(self.links))
        if not isinstance(self.ops, tuple):
            object.__setattr__(self, "ops", tuple(self.ops))

    def to_peer(self):
        """The same spec as a ``nas_bench_graph.Arch``."""
        if _PeerArch is None:  # pragma: no cover
            raise SpaceError("nas_bench_graph is not installed (pip install nas-bench-graph)")
        return _PeerArch(list(self.links), list(self.ops))

    def __str__(self) -> str:
        return json.dumps({"links": list(self.links), "ops": list(self.ops)}, separators=(",", ":"))


# ------------------------------------------------------------ canonicalisation
_TABLE: np.ndarray | None = None


def _peer_rules_probe(link: list[int], labels: list[str], step: str) -> tuple[list[int], list[str]]:
    a = _PeerArch(list(link), list(labels))
    if step == "regularize":
        b = a.regularize()
        return list(b.link), list(b.ops)
    a.move_skip_op()
    return list(a.link), list(a.ops)


def raw_to_key_table() -> np.ndarray:
    """Peer table key of every raw spec, indexed by :meth:`GraphSpace.dense_index` (-1: all-skip).

    Equal to ``nas_bench_graph.Arch(links, ops).valid_hash()`` for every raw spec
    (the tests check all of them).  ``valid_hash`` is ``regularize`` (a fixed op
    permutation per link tuple), ``move_skip_op`` (a link rewrite and op
    permutation that depend only on the link tuple and *which* ops are ``skip``)
    and ``equalpart_sort`` (sorting op ids inside groups fixed by the link tuple).
    The first two are learnt by running the package's own methods on
    position-labelled ops once per (link tuple, skip pattern), 24 * 16 calls;
    then everything is applied to all 9**4 op combinations at once with numpy.
    Built once per process (well under a second) and cached.
    """
    global _TABLE
    if _TABLE is not None:
        return _TABLE
    if _PeerArch is None:  # pragma: no cover
        raise SpaceError("nas_bench_graph is not installed (pip install nas-bench-graph)")
    labels = [f"#{i}" for i in range(4)]
    ops_all = np.array(list(itertools.product(range(N_GNN), repeat=4)), dtype=np.int64)  # (6561, 4)
    table = np.full(DENSE_SIZE, -1, dtype=np.int64)
    for r, raw in enumerate(RAW_LINKS):
        # 1. regularize: fixed permutation per link tuple
        link1, perm = _peer_rules_probe(list(raw), labels, "regularize")
        ops1 = ops_all[:, [int(p[1:]) for p in perm]]
        is_skip = ops1 == SKIP
        pattern = is_skip @ np.array([1, 2, 4, 8])
        out = np.full(OPS_PER_LINK, -1, dtype=np.int64)
        for pat in range(16):
            rows = np.flatnonzero(pattern == pat)
            if rows.size == 0 or pat == 15:  # all-skip: not an architecture
                continue
            # 2. move_skip_op: depends on which ops are skip only
            lab = ["skip" if pat >> i & 1 else labels[i] for i in range(4)]
            link2, lab2 = _peer_rules_probe(link1, lab, "move_skip")
            src = [int(x[1:]) if x != "skip" else -1 for x in lab2]
            o = np.where(np.array(src) >= 0, ops1[rows][:, [max(s, 0) for s in src]], SKIP)
            # 3. equalpart_sort (the package's rules, on 9-op ids)
            lk = list(link2)
            equal_parts: dict[tuple[int, ...], list[int]] = {
                (0, 0, 0, 0): [0, 1, 2, 3], (0, 0, 0, 1): [1, 2], (0, 0, 1, 1): [2, 3],
                (0, 1, 1, 1): [1, 2, 3], (0, 1, 2, 2): [2, 3]}
            ids = equal_parts.get(tuple(lk))
            if ids is not None:
                o[:, ids] = np.sort(o[:, ids], axis=1)
            elif tuple(lk) == (0, 0, 1, 2):
                swap = (o[:, 0] > o[:, 1]) | ((o[:, 0] == o[:, 1]) & (o[:, 2] > o[:, 3]))
                o[swap] = o[swap][:, [1, 0, 3, 2]]
            if tuple(lk) not in LINK_INDEX:  # pragma: no cover - never happens with the package's rules
                raise SpaceError(f"nas_bench_graph: link tuple {raw} canonicalises to {lk}, "
                                 f"which is not one of its 9 link tuples")
            out[rows] = LINK_INDEX[tuple(lk)] * 10 ** 4 + o @ _DIGITS
        table[r * OPS_PER_LINK:(r + 1) * OPS_PER_LINK] = out
    table.setflags(write=False)
    _TABLE = table
    return table


def decode_key(key: int) -> tuple[tuple[int, int, int, int], tuple[str, str, str, str]]:
    """(links, ops) of a peer table key."""
    key = int(key)
    li, digits = divmod(key, 10 ** 4)
    d = f"{digits:04d}"
    if not (0 <= li < len(LINK_LIST) and key >= 0 and all(c in "012345678" for c in d)):
        raise SpaceError(f"nas_bench_graph: {key} is not a table key (link index 0..8, then 4 digits 0..8)")
    return LINK_LIST[li], tuple(GNN_OPS[int(c)] for c in d)  # type: ignore[return-value]


class GraphSpace(EnumerableSpace[GraphArch]):
    """NAS-Bench-Graph GNN cells over ``ops`` (default: the package's 9; proteins: :data:`PROTEINS_OPS`)."""

    name = "nas_bench_graph"
    seq_len = 5

    def __init__(self, ops: Sequence[str] | None = None):
        if _PeerArch is None:  # pragma: no cover
            raise SpaceError("nas_bench_graph: the package nas-bench-graph is not installed "
                             "(pip install nas-bench-graph)")
        if isinstance(ops, str):
            raise SpaceError("nas_bench_graph: ops must be a list of operation names, not a string")
        ops = tuple(GNN_OPS if ops is None else ops)
        if not ops:
            raise SpaceError("nas_bench_graph: ops must be a non-empty list of operation names")
        for op in ops:
            if op not in GNN_INDEX:
                raise SpaceError(f"nas_bench_graph: unknown operation {op!r}; known: {', '.join(GNN_OPS)}")
        if len(set(ops)) != len(ops):
            raise SpaceError(f"nas_bench_graph: duplicate operations in {list(ops)}")
        if ops == ("skip",):
            raise SpaceError("nas_bench_graph: ops=['skip'] has no architectures (all-skip is invalid)")
        self.ops = ops
        self.op_index = {op: i for i, op in enumerate(ops)}
        self.n_links = len(LINK_LIST)
        self.vocab_size = self.n_links + len(ops)
        mask = np.zeros((self.seq_len, self.vocab_size), dtype=bool)
        mask[0, : self.n_links] = True
        mask[1:, self.n_links:] = True
        mask.setflags(write=False)
        self._mask = mask
        self._keys: np.ndarray | None = None
        self._dense_table: np.ndarray | None = None
        self.dense_size = DENSE_SIZE
        self._repair_op = next(op for op in ops if op != "skip")
        #: another op list than the 9 hashed over its own op ids before (see :meth:`hash`)
        self.hash_rule_changed = ops != GNN_OPS

    def config(self) -> dict[str, Any]:
        return {"ops": list(self.ops)}

    # -------------------------------------------------------------- encoding
    def token_mask(self) -> np.ndarray:
        return self._mask

    def vocabulary(self) -> list[str]:
        return ["links=" + "".join(map(str, lk)) for lk in LINK_LIST] + list(self.ops)

    def describe_position(self, i: int) -> str:
        if i == 0:
            return "link tuple"
        if 1 <= i <= 4:
            return f"op of node {i}"
        return f"position {i}"

    def validate(self, arch: Any) -> GraphArch:
        """Return ``arch`` if it is a raw spec of this space, else raise SpaceError."""
        if not isinstance(arch, GraphArch):
            raise SpaceError(f"{self.name}: expected a GraphArch, got {type(arch).__name__}")
        if len(arch.links) != 4:
            raise SpaceError(f"{self.name}: expected 4 links, got {len(arch.links)}")
        if len(arch.ops) != 4:
            raise SpaceError(f"{self.name}: expected 4 ops, got {len(arch.ops)}")
        for i, lk in enumerate(arch.links):
            if isinstance(lk, bool) or not isinstance(lk, (int, np.integer)) or not 0 <= lk <= i:
                raise SpaceError(f"{self.name}: node {i + 1}: link {lk!r} out of range "
                                 f"(node {i + 1} may read 0..{i}: 0 the cell input, k node k)")
        for i, op in enumerate(arch.ops):
            if op not in self.op_index:
                raise SpaceError(f"{self.name}: node {i + 1}: unknown operation {op!r}; "
                                 f"this space's ops: {', '.join(self.ops)}")
        if all(op == "skip" for op in arch.ops):
            raise SpaceError(f"{self.name}: all four ops are 'skip': not an architecture of the benchmark")
        return arch

    def encode(self, arch: GraphArch) -> tuple[int, ...]:
        self.validate(arch)
        if tuple(arch.links) not in LINK_INDEX:
            arch = self.canonical(arch)
        off = self.n_links
        return (LINK_INDEX[tuple(arch.links)],) + tuple(off + self.op_index[op] for op in arch.ops)

    def hash(self, arch: GraphArch) -> str:
        """Canonical hash over the package's 9-op ids, whatever this space's op list: the same
        network has the same hash in every op subset and order (a ``--proteins separate`` store
        and the 9-op store agree).  For the default 9 ops it is the base rule's value."""
        c = self.canonical(arch)
        return self._digest((LINK_INDEX[tuple(c.links)],) + tuple(N_LINKS + GNN_INDEX[op] for op in c.ops))

    def _from_tokens(self, tokens: tuple[int, ...]) -> GraphArch:
        off = self.n_links
        return GraphArch(LINK_LIST[tokens[0]], tuple(self.ops[t - off] for t in tokens[1:]))

    def _check_arch(self, arch: GraphArch) -> None:
        if all(op == "skip" for op in arch.ops):
            raise SpaceError(f"{self.name}: tokens at positions 1-4 (ops of nodes 1-4) are all 'skip': "
                             f"not an architecture")

    def _repair_arch(self, arch: GraphArch) -> GraphArch:
        if all(op == "skip" for op in arch.ops):
            return GraphArch(arch.links, arch.ops[:3] + (self._repair_op,))
        return arch

    # ------------------------------------------------------------- identity
    def sample(self, rng: np.random.Generator) -> GraphArch:
        """Uniform link tuple from the 9 canonical ones and uniform ops, redrawn while all-skip."""
        while True:
            li = int(rng.integers(self.n_links))
            ops = tuple(self.ops[int(i)] for i in rng.integers(len(self.ops), size=4))
            if not all(op == "skip" for op in ops):
                return GraphArch(LINK_LIST[li], ops)

    def dense_index(self, arch: GraphArch) -> int:
        """Index of a raw spec in 0..:attr:`dense_size`-1: raw link tuple index * 9**4 + op ids
        in base 9 (9-op list)."""
        self.validate(arch)
        return (RAW_LINK_INDEX[tuple(int(x) for x in arch.links)] * OPS_PER_LINK
                + sum(GNN_INDEX[op] * int(w) for op, w in zip(arch.ops, _BASE9)))

    def dense_index_arrays(self, links: np.ndarray, op_ids: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`dense_index`: ``links`` (N, 4) raw links, ``op_ids`` (N, 4) ids in the 9-op list."""
        links = np.asarray(links, dtype=np.int64)
        op_ids = np.asarray(op_ids, dtype=np.int64)
        if links.ndim != 2 or links.shape[1] != 4 or op_ids.shape != links.shape:
            raise SpaceError(f"{self.name}: expected links and op ids of shape (N, 4), "
                             f"got {links.shape} and {op_ids.shape}")
        if links.size and ((links < 0) | (links > np.arange(4))).any():
            raise SpaceError(f"{self.name}: links[i] must lie in 0..i")
        if op_ids.size and ((op_ids < 0) | (op_ids >= N_GNN)).any():
            raise SpaceError(f"{self.name}: op ids must lie in 0..{N_GNN - 1}")
        raw = links @ np.array([0, 12, 4, 1], dtype=np.int64)  # mixed radix (1, 2, 3, 4)
        return raw * OPS_PER_LINK + op_ids @ _BASE9

    def dense_index_tokens(self, tokens: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`dense_index` of token rows (N, 5) (link token, 4 op tokens).

        A token row names a spec whose link tuple is one of the 9 canonical ones, so
        this is the dense index of that raw spec (used by the store's lookup map).
        """
        t = np.asarray(tokens, dtype=np.int64)
        if t.ndim != 2 or t.shape[1] != self.seq_len:
            raise SpaceError(f"{self.name}: expected tokens of shape (N, {self.seq_len}), got {t.shape}")
        if t.size and (((t < 0) | (t >= self.vocab_size)).any()
                       or not self._mask[np.arange(self.seq_len), t].all()):
            raise SpaceError(f"{self.name}: tokens outside the token mask")
        canon_raw = np.array([RAW_LINK_INDEX[lk] for lk in LINK_LIST], dtype=np.int64)
        to_gnn = np.array([GNN_INDEX[op] for op in self.ops], dtype=np.int64)
        return canon_raw[t[:, 0]] * OPS_PER_LINK + to_gnn[t[:, 1:] - self.n_links] @ _BASE9

    def dense_canonical_table(self) -> np.ndarray:
        """For every raw spec (by :meth:`dense_index`), the dense index of its canonical form;
        -1 for all-skip and for specs using ops outside this space's op list.

        (The store's protocol for enumerable spaces: with :meth:`dense_index_tokens`
        it builds a raw-spec -> store-id lookup array.)
        """
        if self._dense_table is None:
            keys = raw_to_key_table()
            li, digits = np.divmod(np.maximum(keys, 0), 10 ** 4)
            d = (digits[:, None] // _DIGITS) % 10  # (D, 4) 9-op ids
            canon_raw = np.array([RAW_LINK_INDEX[lk] for lk in LINK_LIST], dtype=np.int64)
            out = canon_raw[li] * OPS_PER_LINK + d @ _BASE9
            allowed = np.zeros(N_GNN, dtype=bool)
            allowed[[GNN_INDEX[op] for op in self.ops]] = True
            raw_ops = np.array(list(itertools.product(range(N_GNN), repeat=4)), dtype=np.int64)
            ok = np.tile(allowed[raw_ops].all(axis=1), len(RAW_LINKS)) & (keys >= 0)
            out = np.where(ok, out, -1)
            out.setflags(write=False)
            self._dense_table = out
        return self._dense_table

    def table_key(self, arch: GraphArch) -> int:
        """The benchmark's table key of ``arch``'s canonical form (``Arch(...).valid_hash()``)."""
        return int(raw_to_key_table()[self.dense_index(arch)])

    def canonical(self, arch: GraphArch) -> GraphArch:
        key = self.table_key(arch)
        if key < 0:  # pragma: no cover - validate() already refuses such specs
            raise SpaceError(f"{self.name}: {arch} is not an architecture of the benchmark")
        links, ops = decode_key(key)
        return GraphArch(links, ops)

    def arch_of_key(self, key: int) -> GraphArch:
        """The canonical architecture of a peer table key (must be one of this space's)."""
        links, ops = decode_key(key)
        arch = GraphArch(links, ops)
        self.validate(arch)
        if self.table_key(arch) != int(key):
            raise SpaceError(f"{self.name}: {key} is not a canonical table key")
        return arch

    def to_string(self, arch: GraphArch) -> str:
        self.validate(arch)
        return json.dumps({"links": [int(x) for x in arch.links], "ops": list(arch.ops)},
                          separators=(",", ":"))

    def from_string(self, text: str) -> GraphArch:
        if not isinstance(text, str):
            raise SpaceError(f"{self.name}: expected a string, got {type(text).__name__}")
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpaceError(f"{self.name}: malformed JSON ({exc}); expected e.g. "
                             '{"links":[0,0,1,2],"ops":["gcn","gat","sage","skip"]}') from None
        if not isinstance(doc, dict) or set(doc) != {"links", "ops"}:
            raise SpaceError(f"{self.name}: expected a JSON object with exactly the keys 'links' "
                             f"and 'ops', got {text.strip()[:80]!r}")
        links, ops = doc["links"], doc["ops"]
        if not isinstance(links, list) or len(links) != 4 or not all(
                isinstance(x, int) and not isinstance(x, bool) for x in links):
            raise SpaceError(f"{self.name}: 'links' must be a list of 4 integers, got {links!r}")
        if not isinstance(ops, list) or len(ops) != 4 or not all(isinstance(x, str) for x in ops):
            raise SpaceError(f"{self.name}: 'ops' must be a list of 4 operation names, got {ops!r}")
        return self.validate(GraphArch(tuple(links), tuple(ops)))

    # ---------------------------------------------------- exhaustive spaces
    def table_keys(self) -> np.ndarray:
        """Sorted peer keys of all canonical architectures over this space's ops."""
        if self._keys is None:
            table = raw_to_key_table()
            allowed = np.zeros(N_GNN, dtype=bool)
            allowed[[GNN_INDEX[op] for op in self.ops]] = True
            ids = np.array(list(itertools.product(range(N_GNN), repeat=4)), dtype=np.int64)
            ok_ops = allowed[ids].all(axis=1)
            sel = np.tile(ok_ops, len(RAW_LINKS))
            keys = np.unique(table[sel])
            keys = keys[keys >= 0]
            keys.setflags(write=False)
            self._keys = keys
        return self._keys

    @property
    def size(self) -> int:  # type: ignore[override]
        return int(len(self.table_keys()))

    def enumerate(self) -> Iterator[GraphArch]:
        """Every canonical architecture, in ascending table-key order."""
        for key in self.table_keys():
            links, ops = decode_key(int(key))
            yield GraphArch(links, ops)
