"""Conformance kit: the contracts a block, metric, preset or search space must keep.

Modules: ``blocks``, ``metrics``, ``presets``, ``spaces`` (one contract each); ``common`` (the error they raise).

The project's own tests run these over every registered entry and shipped space; run them on a
plug-in the same way (as ``optuna.testing`` does for samplers)::

    from plsearch.testing import check_block, check_metric, check_space

    check_block("dwsep")                        # a block you registered
    check_metric("val_sens")                    # a metric you registered
    check_space("my_space.yaml")                # every corner builds and runs a forward

Each check raises ``ContractError`` (an ``AssertionError``) naming the broken rule, so it reads
well under pytest; each runs in seconds at the tiny sizes it uses.
"""

from __future__ import annotations

from plsearch.testing.blocks import check_block
from plsearch.testing.common import ContractError
from plsearch.testing.metrics import check_metric
from plsearch.testing.presets import check_preset
from plsearch.testing.spaces import check_space

__all__ = ["ContractError", "check_block", "check_metric", "check_preset", "check_space"]
