"""The block registry: names, duplicates, errors that list the choices."""

from __future__ import annotations

import pytest

from plsearch.config.registry import get_block, list_blocks, register_block

# The block contract over every registered block is plsearch.testing.check_block (tests/test_conformance.py).


def test_builtin_costs_are_the_blocks_own():
    from plsearch.graph.costs import BLOCK_COSTS

    for name, cost in BLOCK_COSTS.items():  # plsearch.graph.costs answers estimate without torch; the classes agree
        cls = get_block(name)
        assert cls.params(6, 3, 2) == cost.params(6, 3, 2) and cls.macs(6, 3, 3, 343) == cost.macs(6, 3, 3, 343)


def test_register_rejects_duplicate_names():
    with pytest.raises(ValueError, match="already registered"):
        register_block("plconv")(type("Other", (), {}))


def test_unknown_block_lists_choices():
    with pytest.raises(ValueError, match="plconv"):
        get_block("nope")


def test_block_names_known_without_importing_them():
    assert {"plconv", "convbnrelu", "residual"} <= set(list_blocks())
