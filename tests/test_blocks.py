"""Contract tests over the block registry: a new block needs no new test code."""

from __future__ import annotations

import pytest
import torch

from plsearch.registry import BLOCKS, get_block, register_block


@pytest.mark.parametrize("name", sorted(BLOCKS))
@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("cin, cout", [(4, 4), (6, 3)])
def test_block_contract(name, dims, cin, cout):
    cls = get_block(name)
    block = cls(cin, cout, dims)
    states = [block.make_state(), block.make_state()]
    x = torch.randn(2, cin, *([7] * dims))  # odd size: blocks keep the resolution
    ys = [block(x, s) for s in states]
    assert all(y.shape == (2, cout, *([7] * dims)) for y in ys)
    shared, per_app = cls.params(cin, cout, dims)
    assert shared == sum(p.numel() for p in block.parameters())
    assert per_app == sum(p.numel() for p in states[0].parameters())
    sum(y.sum() for y in ys).backward()
    assert all(p.grad is not None for p in block.parameters())
    # Per-application state is separate: two applications do not share norm parameters.
    assert not set(map(id, states[0].parameters())) & set(map(id, states[1].parameters()))


def test_register_rejects_duplicate_names():
    with pytest.raises(ValueError, match="already registered"):
        register_block("plconv")(type("Other", (), {}))


def test_unknown_block_lists_choices():
    with pytest.raises(ValueError, match="plconv"):
        get_block("nope")
