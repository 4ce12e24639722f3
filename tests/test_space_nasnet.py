"""The paper's NASNet space: encoding, canonical hash, appendix-C JSON."""
from __future__ import annotations

import json

import numpy as np
import pytest

from nasbench_xfer.space import OPS, XFERNASNET_JSON, Block, NASNetArch, NASNetSpace, SpaceError, get_space, named_arch
from nasbench_xfer.space.nasnet import from_json, to_json, unused_blocks


@pytest.fixture
def space() -> NASNetSpace:
    return NASNetSpace()


def test_nineteen_ops_named_as_appendix_c():
    assert len(OPS) == 19 and len(set(OPS)) == 19
    for op in ("identity", "conv 1x3+3x1", "min_pool 2x2", "max_pool 7x7", "dil_sep_conv 7x7"):
        assert op in OPS


def test_vocabulary_and_lengths(space):
    assert space.seq_len == 40 and space.vocab_size == 26
    assert len(space.vocabulary()) == 26
    mask = space.token_mask()
    assert mask.shape == (40, 26)
    # block 0 may read only the two cell inputs, block 4 any of 0..5
    assert mask[0].tolist()[:3] == [True, True, False]
    assert mask[16, :6].all() and not mask[16, 6:].any()
    assert mask[1, 7:].all() and not mask[1, :7].any()


def test_paper_json_round_trips_byte_for_byte():
    arch = named_arch("xfernasnet")
    assert to_json(arch) == XFERNASNET_JSON
    assert NASNetArch.from_json(arch.to_json()) == arch
    # the paper's cells, read back correctly
    assert arch.normal[0] == Block(0, "sep_conv 3x3", 1, "conv 3x3")
    assert arch.normal[4] == Block(4, "conv 3x3", 0, "conv 1x1")
    assert arch.reduction[3] == Block(1, "max_pool 2x2", 4, "sep_conv 3x3")
    assert unused_blocks(arch.normal) == [1, 3, 4]
    assert unused_blocks(arch.reduction) == [3, 4]


def test_encode_decode_round_trip(space, rng):
    for _ in range(500):
        a = space.sample(rng)
        t = space.encode(a)
        assert len(t) == 40
        assert space.decode(t) == a
        assert space.from_string(space.to_string(a)) == a


def test_sampling_is_seeded_and_uniform(space):
    a = [space.sample(np.random.default_rng(7)) for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(3000)]
    ops = np.array([OPS.index(b.op_a) for x in archs for b in x.normal])
    counts = np.bincount(ops, minlength=19)
    assert counts.min() > 0.7 * counts.mean()  # roughly uniform over the 19 ops
    last_inputs = np.bincount([x.normal[4].input_a for x in archs], minlength=6)
    assert last_inputs.min() > 0.7 * last_inputs.mean()  # uniform over the 6 inputs of block 4


def test_decode_never_crashes_on_garbage(space):
    rng = np.random.default_rng(3)
    for _ in range(500):
        toks = rng.integers(-5, 60, size=rng.integers(0, 70)).tolist()
        arch = space.decode(toks, repair=True)
        space.validate(arch)
        if len(toks) != 40 or any(not space.token_mask()[i, t] if 0 <= t < 26 else True
                                  for i, t in enumerate(toks)):
            with pytest.raises(SpaceError):
                space.decode(toks)
    with pytest.raises(SpaceError, match="position 0 .normal cell block 0 input_a"):
        space.decode([5] + [0] * 39)
    with pytest.raises(SpaceError, match="expected 40 tokens, got 3"):
        space.decode([0, 7, 0])
    with pytest.raises(SpaceError, match="integers"):
        space.decode(["a"] * 40)


def test_canonical_hash_identifies_equivalent_specs(space, rng):
    arch = named_arch("xfernasnet")
    n = arch.normal
    # swap the branches of block 0
    swapped = NASNetArch((Block(n[0].input_b, n[0].op_b, n[0].input_a, n[0].op_a),) + n[1:],
                         arch.reduction)
    assert swapped != arch and space.hash(swapped) == space.hash(arch)
    # reorder independent blocks: block 3 (node_6) reads only cell inputs, so it can go first
    b = list(n)
    relabel = {0: 0, 1: 1, 2: 3, 3: 4, 4: 5, 5: 2}  # old input id -> new input id
    moved = [b[3]] + [Block(relabel[x.input_a], x.op_a, relabel[x.input_b], x.op_b)
                      for x in (b[0], b[1], b[2], b[4])]
    reordered = NASNetArch(tuple(moved), arch.reduction)
    space.validate(reordered)
    assert reordered != arch and space.hash(reordered) == space.hash(arch)
    # a real change changes the hash
    changed = NASNetArch((Block(0, "conv 1x1", 1, "conv 3x3"),) + n[1:], arch.reduction)
    assert space.hash(changed) != space.hash(arch)
    for _ in range(200):
        a = space.sample(rng)
        assert space.hash(space.augment(a, rng)) == space.hash(a)
        assert space.canonical(space.canonical(a)) == space.canonical(a)


def test_canonical_hash_separates_non_isomorphic_cells(space):
    # identical-looking multisets of blocks, wired differently
    cell_a = (Block(0, "conv 1x1", 0, "conv 1x1"), Block(0, "conv 1x1", 0, "conv 1x1"),
              Block(2, "conv 3x3", 2, "conv 3x3"), Block(2, "sep_conv 3x3", 2, "sep_conv 3x3"),
              Block(1, "identity", 1, "identity"))
    cell_b = (Block(0, "conv 1x1", 0, "conv 1x1"), Block(0, "conv 1x1", 0, "conv 1x1"),
              Block(2, "conv 3x3", 2, "conv 3x3"), Block(3, "sep_conv 3x3", 3, "sep_conv 3x3"),
              Block(1, "identity", 1, "identity"))
    red = cell_a
    assert space.hash(NASNetArch(cell_a, red)) != space.hash(NASNetArch(cell_b, red))


def _doc() -> dict:
    return json.loads(XFERNASNET_JSON)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["conv_dag"]["node_4"].__setitem__(3, "conv 9x9"),
     r"conv_dag node_4: unknown operation 'conv 9x9'"),
    (lambda d: d["reduc_dag"]["node_5"].__setitem__(1, "node_12"),
     r"reduc_dag node_5: input 'node_12' out of range"),
    (lambda d: (d["conv_dag"]["node_3"].__setitem__(1, "node_4")),
     r"conv_dag node_\d: cycle: node_\d -> node_\d -> node_\d"),
    (lambda d: d["conv_dag"]["node_5"].__setitem__(2, "node_5"), r"conv_dag node_5: cycle"),
    (lambda d: d["conv_dag"].pop("node_7"), r"wrong block count: conv_dag has 4 blocks, reduc_dag has 5"),
    (lambda d: d.pop("reduc_dag"), r"missing reduc_dag"),
    (lambda d: d["conv_dag"].__setitem__("node_2", ["node_2", "node_1", None, None, None]),
     r"conv_dag node_2: a cell input must be"),
])
def test_malformed_json_names_node_and_problem(mutate, message):
    doc = _doc()
    mutate(doc)
    with pytest.raises(SpaceError, match=message):
        from_json(json.dumps(doc))


def test_malformed_json_text():
    with pytest.raises(SpaceError, match="malformed JSON"):
        from_json("{not json")


def test_wrong_block_count_for_space():
    with pytest.raises(SpaceError, match="B=5 blocks, space has B=4"):
        NASNetSpace(4).from_string(XFERNASNET_JSON)


def test_blocks_in_any_order_are_renumbered():
    doc = _doc()
    cell = doc["conv_dag"]
    # rename node_3 <-> node_7 so that the listing is not topological
    renamed = {}
    swap = {"node_3": "node_7", "node_7": "node_3"}
    for name, row in cell.items():
        new = swap.get(name, name)
        renamed[new] = [new] + [swap.get(v, v) if isinstance(v, str) and v.startswith("node_") else v
                                for v in row[1:3]] + row[3:]
    doc["conv_dag"] = renamed
    arch = from_json(json.dumps(doc))
    space = NASNetSpace()
    assert space.hash(arch) == space.hash(named_arch("xfernasnet"))


def test_get_space_and_named_errors():
    assert get_space("nasnet", {"num_blocks": 5}) == NASNetSpace()
    with pytest.raises(SpaceError, match="unknown search space 'foo'"):
        get_space("foo")
    with pytest.raises(SpaceError, match="unknown named architecture"):
        named_arch("nope")
