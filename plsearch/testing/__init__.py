"""Conformance kit: the contracts a block, metric, preset, search space or data format must keep.

Modules: ``blocks``, ``metrics``, ``presets``, ``spaces``, ``formats`` (one contract each); ``common`` (the error
they raise).
Also ``pruners`` and ``samplers``: the search's pruner and sampler contracts (``check_pruner``, ``check_sampler``).
And ``ups``: the up unit's contract (``check_up``).

The project's own tests run these over every registered entry and shipped space; run them on a
plug-in the same way (as ``optuna.testing`` does for samplers)::

    from plsearch.testing import check_block, check_format, check_metric, check_space

    check_block("dwsep")                        # a block you registered
    check_up("bilinear")                        # an up unit you registered
    check_metric("val_sens")                    # a metric you registered
    check_space("my_space.yaml")                # every corner builds and runs a forward
    check_format("npy")                         # a data format you registered: load, split, read, write
    check_pruner("my_pruner")                   # its options, and it never stops the best trial
    check_sampler("cmaes")                      # it takes seed=, samples inside the axes, reproducibly

Each check raises ``ContractError`` (an ``AssertionError``) naming the broken rule, so it reads
well under pytest; each runs in seconds at the tiny sizes it uses.
"""

from __future__ import annotations

from plsearch.testing.blocks import check_block
from plsearch.testing.common import ContractError
from plsearch.testing.formats import check_format
from plsearch.testing.metrics import check_metric
from plsearch.testing.presets import check_preset
from plsearch.testing.pruners import check_pruner
from plsearch.testing.samplers import check_sampler
from plsearch.testing.spaces import check_space
from plsearch.testing.ups import check_up

__all__ = ["ContractError", "check_block", "check_format", "check_metric", "check_preset", "check_space"]
__all__ += ["check_pruner", "check_sampler"]
__all__ += ["check_up"]
