"""The spaces of imported benchmarks: NAS-Bench-201, TransNAS-Bench-101 micro, NAS-Bench-Graph."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from nasbench_xfer.space import (
    EdgeCellArch,
    GraphArch,
    GraphSpace,
    NB201Space,
    SpaceError,
    TransNASMicroSpace,
    get_space,
    list_spaces,
)
from nasbench_xfer.space import graph as graph_mod

nbg = pytest.importorskip("nas_bench_graph")

NB201_EXAMPLE = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+"
                 "|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")


@pytest.fixture(scope="module")
def spaces():
    return {
        "nb201": get_space("nb201"),
        "transnas_micro": get_space("transnas_micro"),
        "nas_bench_graph": get_space("nas_bench_graph"),
        "proteins": get_space("nas_bench_graph", {"ops": list(graph_mod.PROTEINS_OPS)}),
    }


def test_registered():
    names = list_spaces()
    for n in ("nb201", "transnas_micro", "nas_bench_graph"):
        assert n in names
    assert isinstance(get_space("nb201"), NB201Space)
    assert isinstance(get_space("transnas_micro"), TransNASMicroSpace)
    assert get_space("nas_bench_graph").config() == {"ops": list(graph_mod.GNN_OPS)}
    assert get_space("nas_bench_graph", {"ops": ["gcn", "skip"]}).vocab_size == 9 + 2


@pytest.mark.parametrize("name", ["nb201", "transnas_micro", "nas_bench_graph", "proteins"])
def test_encode_decode_string_roundtrip(spaces, name):
    space = spaces[name]
    rng = np.random.default_rng(0)
    mask = space.token_mask()
    assert mask.shape == (space.seq_len, space.vocab_size)
    for arch in space.sample_many(200, rng):
        toks = space.encode(arch)
        assert len(toks) == space.seq_len
        assert all(mask[i, t] for i, t in enumerate(toks))
        assert space.decode(toks) == arch
        text = space.to_string(arch)
        assert space.from_string(text) == arch
        assert space.hash(arch) == space.hash(space.from_string(text))
        assert space.canonical(space.canonical(arch)) == space.canonical(arch)
        hash(arch)  # hashable


@pytest.mark.parametrize("name", ["nb201", "transnas_micro", "nas_bench_graph", "proteins"])
def test_repair_never_raises(spaces, name):
    space = spaces[name]
    rng = np.random.default_rng(1)
    for _ in range(500):
        n = int(rng.integers(0, 21))
        toks = rng.integers(-5, 51, size=n).tolist()
        arch = space.decode(toks, repair=True)
        # a repaired architecture is valid: it encodes and decodes strictly
        assert space.decode(space.encode(arch)) == arch


@pytest.mark.parametrize("name", ["nb201", "nas_bench_graph"])
def test_strict_decode_names_position(spaces, name):
    space = spaces[name]
    good = list(space.encode(space.sample(np.random.default_rng(0))))
    bad = list(good)
    bad[3] = space.vocab_size + 7
    with pytest.raises(SpaceError, match="position 3"):
        space.decode(bad)
    with pytest.raises(SpaceError, match="expected"):
        space.decode(good[:-1])


def test_graph_all_skip_decode(spaces):
    space = spaces["nas_bench_graph"]
    skip = space.n_links + space.op_index["skip"]
    with pytest.raises(SpaceError, match="skip"):
        space.decode([0, skip, skip, skip, skip])
    arch = space.decode([0, skip, skip, skip, skip], repair=True)
    assert not all(op == "skip" for op in arch.ops)
    # graph link token positions name the link
    with pytest.raises(SpaceError, match="link tuple"):
        space.decode([space.n_links, skip, skip, skip, skip])


def test_enumerate_counts(spaces):
    nb = spaces["nb201"]
    archs = list(nb.enumerate())
    assert len(archs) == nb.size == 15625
    assert [nb.dense_index(a) for a in archs[:50]] == list(range(50))
    assert nb.dense_index(archs[-1]) == 15624
    tn = spaces["transnas_micro"]
    archs = list(tn.enumerate())
    assert len(archs) == tn.size == 4096 == len(set(archs))
    toks = np.array([tn.encode(a) for a in archs])
    assert (tn.dense_index_tokens(toks) == np.arange(4096)).all()
    assert tn.from_dense_index(1234) == archs[1234]
    g = spaces["nas_bench_graph"]
    garchs = list(g.enumerate())
    assert len(garchs) == g.size == 26206
    assert len({g.hash(a) for a in garchs}) == 26206
    p = spaces["proteins"]
    assert len(list(p.enumerate())) == p.size == 2021


def test_graph_enumerate_matches_peer_tables(spaces):
    keys = set(nbg.light_read("cora"))
    assert {spaces["nas_bench_graph"].table_key(a) for a in spaces["nas_bench_graph"].enumerate()} == keys
    pkeys = set(nbg.light_read("proteins"))
    assert set(spaces["proteins"].table_keys().tolist()) == pkeys


def test_graph_key_table_equals_peer_valid_hash():
    """The vectorised raw->key table equals nas_bench_graph's valid_hash on every raw spec."""
    table = graph_mod.raw_to_key_table()
    assert table.shape == (graph_mod.DENSE_SIZE,) == (24 * 9 ** 4,)
    for r, lk in enumerate(graph_mod.RAW_LINKS):
        for j, ops in enumerate(itertools.product(graph_mod.GNN_OPS, repeat=4)):
            d = r * 9 ** 4 + j
            if all(o == "skip" for o in ops):
                assert table[d] == -1
            else:
                assert table[d] == nbg.Arch(list(lk), list(ops)).valid_hash()


def test_graph_canonical_equality(spaces):
    g = spaces["nas_bench_graph"]
    ops = ("gcn", "gat", "sage", "arma")
    raw = GraphArch((0, 0, 0, 2), ops)
    reg = nbg.Arch([0, 0, 0, 2], list(ops)).regularize()
    regular = GraphArch(tuple(reg.link), tuple(reg.ops))
    assert regular.links == (0, 0, 0, 1)
    assert g.canonical(raw) == g.canonical(regular)
    assert g.hash(raw) == g.hash(regular)
    assert g.table_key(raw) == nbg.Arch([0, 0, 0, 2], list(ops)).valid_hash()
    # permuting the ops of interchangeable branches gives the same network
    a = GraphArch((0, 0, 0, 0), ("sage", "gcn", "gat", "fc"))
    b = GraphArch((0, 0, 0, 0), ("fc", "gat", "gcn", "sage"))
    assert g.canonical(a) == g.canonical(b) and g.hash(a) == g.hash(b)
    assert g.table_key(a) == nbg.Arch([0, 0, 0, 0], list(a.ops)).valid_hash()
    c = GraphArch((0, 1, 2, 3), ("sage", "gcn", "gat", "fc"))
    assert g.hash(c) != g.hash(a)
    # the canonical form is a table key decoded
    key = g.table_key(raw)
    assert g.arch_of_key(key) == g.canonical(raw)
    assert g.canonical(raw).links in graph_mod.LINK_LIST
    # a raw spec with a non-canonical link tuple encodes as its canonical form
    assert g.decode(g.encode(raw)) == g.canonical(raw)
    # dense map: raw -> canonical
    tab = g.dense_canonical_table()
    assert tab[g.dense_index(raw)] == g.dense_index(g.canonical(raw))
    dense = g.dense_index_arrays(np.array([raw.links]), np.array([[graph_mod.GNN_INDEX[o] for o in ops]]))
    assert dense.tolist() == [g.dense_index(raw)]


def test_graph_invalid_specs(spaces):
    g = spaces["nas_bench_graph"]
    with pytest.raises(SpaceError, match="skip"):
        g.canonical(GraphArch((0, 0, 1, 2), ("skip",) * 4))
    with pytest.raises(SpaceError, match="node 3: link 5"):
        g.canonical(GraphArch((0, 0, 5, 2), ("gcn",) * 4))
    with pytest.raises(SpaceError, match="unknown operation 'gatt'"):
        g.encode(GraphArch((0, 0, 1, 2), ("gatt", "gcn", "gcn", "gcn")))
    with pytest.raises(SpaceError, match="this space's ops"):
        spaces["proteins"].encode(GraphArch((0, 0, 1, 2), ("gat", "gcn", "gcn", "gcn")))
    for text, msg in [("{", "malformed JSON"), ('{"links":[0,0,1],"ops":["gcn","gcn","gcn","gcn"]}', "4 integers"),
                      ('{"links":[0,0,1,2],"ops":["gcn","gcn","gcn"]}', "4 operation"),
                      ('{"links":[0,0,1,2]}', "exactly the keys"),
                      ('{"links":[0,0,1,2],"ops":["gcn","gcn","gcn","xx"]}', "node 4: unknown operation")]:
        with pytest.raises(SpaceError, match=msg):
            g.from_string(text)
    with pytest.raises(SpaceError):
        GraphSpace(ops=["gcn", "nope"])
    assert g.to_string(GraphArch((0, 0, 1, 2), ("gcn", "gat", "sage", "skip"))) == \
        '{"links":[0,0,1,2],"ops":["gcn","gat","sage","skip"]}'


def test_edge_strings(spaces):
    nb = spaces["nb201"]
    arch = nb.from_string(NB201_EXAMPLE)
    assert arch == EdgeCellArch(("nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3",
                                 "skip_connect", "nor_conv_3x3", "skip_connect"))
    assert nb.to_string(arch) == NB201_EXAMPLE
    assert nb.canonical(arch) is arch
    cases = [
        ("|none~0|+|none~0|none~1|", "3 node groups"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2: wrong edge count"),
        ("|none~0|+|none~0|none~2|+|none~0|none~1|none~2|", "edge 2<-1: wrong source index"),
        ("|none~0|+|none~0|none~1|+|none~0|conv~1|none~2|", "edge 3<-1: unknown operation 'conv'"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none|", "edge 3<-2"),
        ("", "empty"),
    ]
    for text, msg in cases:
        with pytest.raises(SpaceError, match=msg):
            nb.from_string(text)
    tn = spaces["transnas_micro"]
    with pytest.raises(SpaceError, match="unknown operation 'avg_pool_3x3'"):
        tn.from_string(NB201_EXAMPLE)
    a = tn.from_string("(2, 3, 2, 3, 2, 3)")
    assert tn.encode(a) == (2, 3, 2, 3, 2, 3)
    assert tn.from_string("64-41414-2_32_323") == a
    assert tn.from_string("2_32_323") == a
    assert tn.micro_string(a) == "64-41414-2_32_323"
    assert tn.from_string(tn.to_string(a)) == a
    for text, msg in [("(2, 3, 2)", "expected 6 op ids"), ("(2, 3, 2, 3, 2, 4)", "edge 3<-2: op id 4"),
                      ("(2, 3, x)", "malformed"), ("2_3_222", "node 2: wrong edge count"),
                      ("64-1-2_33_222", "macro skeleton")]:
        with pytest.raises(SpaceError, match=msg):
            tn.from_string(text)


def test_edge_dense_index(spaces):
    nb = spaces["nb201"]
    arch = nb.from_string(NB201_EXAMPLE)
    ids = nb.encode(arch)
    assert nb.dense_index(arch) == sum(t * 5 ** (5 - i) for i, t in enumerate(ids))
    rng = np.random.default_rng(3)
    toks = rng.integers(0, 5, size=(100, 6))
    got = nb.dense_index_tokens(toks)
    assert got.tolist() == [nb.dense_index(nb.decode(t)) for t in toks]
    with pytest.raises(SpaceError):
        nb.dense_index_tokens(np.full((2, 6), 5))
    assert (nb.dense_canonical_table() == np.arange(15625)).all()


@pytest.mark.parametrize("name", ["nb201", "transnas_micro", "nas_bench_graph", "proteins"])
def test_sampling_reproducible(spaces, name):
    space = spaces[name]
    a = space.sample_many(30, np.random.default_rng(42))
    b = space.sample_many(30, np.random.default_rng(42))
    assert a == b
    if name.startswith("nas") or name == "proteins":
        assert all(arch.links in graph_mod.LINK_LIST for arch in a)
        assert not any(all(op == "skip" for op in arch.ops) for arch in a)


def test_spaces_equal_by_config(spaces):
    assert get_space("nb201") == spaces["nb201"]
    assert get_space("nas_bench_graph") != spaces["proteins"]
    assert get_space("nas_bench_graph", {"ops": list(graph_mod.PROTEINS_OPS)}) == spaces["proteins"]


def test_constants_match_peer_package():
    assert graph_mod.GNN_OPS == tuple(nbg.gnn_list)
    assert graph_mod.PROTEINS_OPS == tuple(nbg.gnn_list_proteins)
    assert graph_mod.LINK_LIST == tuple(tuple(lk) for lk in nbg.link_list)
