"""Analytic cost of the built-in layers, without torch: parameters and eval-mode MACs per application.

``plsearch.graph.wiring.estimate`` sums these over a wiring, so a search screens configs against budgets
before torch is imported. An up unit's cost also says its output width (``UpCost.out_width``), which
the wiring reads to size the decoder. Each built-in block class answers the same numbers through its ``params``
and ``macs`` static methods (``plsearch.nn.blocks``); a test holds them equal, and equal to what fvcore
measures on the built model. A plug-in block carries its own methods on its class (``get_block``).
Counting follows fvcore: one fused multiply-add = 1, transposed convs on the input grid, BN 2 per
element, pools, activations and concatenations free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Cost:
    """``params(cin, cout, dims) -> (shared, per application state)``; ``macs(cin, cout, dims, out_voxels)``."""

    params: Callable[[int, int, int], tuple[int, int]]
    macs: Callable[[int, int, int, int], int]


def _conv3_bn_params(bias: bool) -> Callable[[int, int, int], tuple[int, int]]:
    return lambda cin, cout, dims: (cin * cout * 3**dims + (cout if bias else 0), 2 * cout)


def _conv3_bn_macs(cin: int, cout: int, dims: int, out_voxels: int) -> int:
    return out_voxels * cin * cout * 3**dims + 2 * out_voxels * cout


def _residual_params(cin: int, cout: int, dims: int) -> tuple[int, int]:
    k = 3**dims
    shared = cin * cout * k + cout * cout * k + (cin * cout if cin != cout else 0)
    return shared, 2 * cout * (3 if cin != cout else 2)


def _residual_macs(cin: int, cout: int, dims: int, out_voxels: int) -> int:
    k = 3**dims
    m = out_voxels * (cin * cout * k + cout * cout * k) + 2 * 2 * out_voxels * cout
    if cin != cout:
        m += out_voxels * cin * cout + 2 * out_voxels * cout
    return m


def _convt3_macs(cin: int, cout: int, dims: int, out_voxels: int) -> int:
    in_voxels = out_voxels // 2**dims  # fvcore counts transposed convs on the input grid
    return in_voxels * cin * cout * 3**dims + 2 * out_voxels * cout


BLOCK_COSTS: dict[str, Cost] = {
    "plconv": Cost(_conv3_bn_params(bias=True), _conv3_bn_macs),  # conv(+bias) -> ReLU -> BN
    "convbnrelu": Cost(_conv3_bn_params(bias=False), _conv3_bn_macs),  # conv -> BN -> ReLU
    "residual": Cost(_residual_params, _residual_macs),
}


@dataclass(frozen=True)
class UpCost(Cost):
    """An up unit's cost and ``out_width(below, here)``: its output width from the width of the level it
    reads (``below``) and of the level it lands on (``here``)."""

    out_width: Callable[[int, int], int]


UP_COSTS: dict[str, UpCost] = {
    # 3x3 transposed conv, stride 2, BN; keeps the width (BiO-Net)
    "convt3": UpCost(_conv3_bn_params(bias=True), _convt3_macs, lambda below, here: below),
    # 2x2 transposed conv, stride 2, to the width of the level it lands on (U-Net: half)
    "convt2_half": UpCost(
        lambda cin, cout, dims: (cin * cout * 2**dims + cout, 0),
        lambda cin, cout, dims, v: (v // 2**dims) * cin * cout * 2**dims,
        lambda below, here: here,
    ),
}
HEAD_COST = Cost(lambda cin, cout, dims: (cin * cout + cout, 0), lambda cin, cout, dims, v: v * cin * cout)
