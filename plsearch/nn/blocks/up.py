"""Up-sampling units (the up-unit registry, ``ModelConfig.up``) and the 1x1 prediction head (one fixed kind).

A new up unit is one registered class: a subclass of ``UpUnit`` decorated with
``plsearch.config.registry.register_up``, with ``params``, ``macs`` and ``out_width`` static methods
(``plsearch.config.registry.UpUnitType``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from plsearch.config.registry import register_up
from plsearch.graph.costs import HEAD_COST, UP_COSTS
from plsearch.nn.blocks.base import (
    Block,
    batch_norm,
    conv_nd,
    conv_transpose_nd,
    fast_conv,
    fast_conv_transpose,
    fold_conv_bn,
    norm_nd,
)


class UpUnit(Block):
    """An up unit: ``(b, cin, *s)`` to ``(b, cout, *2s)``, one per decoder level (weights shared like a block's).

    ``out_width(below, here)``: its output width from the width of the level it reads (``below``) and of the
    level it lands on (``here``), answered before it is built (the wiring sizes the decoder with it)."""

    up_name: str = ""

    @staticmethod
    def out_width(below: int, here: int) -> int:
        raise NotImplementedError


@register_up("convt3")
class UpConvT3(UpUnit):
    """BiO-Net's up unit: 3x3 transposed conv, stride 2, channel-preserving, then ReLU and BN."""

    def __init__(self, cin: int, cout: int, dims: int) -> None:
        super().__init__(cin, cout, dims)
        self.conv = conv_transpose_nd(dims)(cin, cout, 3, stride=2, padding=1, output_padding=1)
        nn.init.xavier_uniform_(self.conv.weight)  # Keras glorot_uniform
        nn.init.zeros_(self.conv.bias)

    def make_state(self) -> nn.Module:
        return norm_nd(self.dims)(self.cout)

    def forward(self, x: torch.Tensor, state: nn.Module) -> torch.Tensor:
        return state(F.relu(self.conv(x), inplace=True))

    def fast_forward(self, x: torch.Tensor, state: nn.Module, training: bool) -> torch.Tensor:
        c = self.conv
        z = fast_conv_transpose(x, c.weight, c.bias, c.stride[0], c.padding[0], c.output_padding[0], training)
        return batch_norm(F.relu(z, inplace=True), state)

    def fuse(self, state: nn.Module, *, self_concat: bool = False) -> nn.Module:
        return fold_conv_bn(self.conv, state, dims=self.dims, post="clamp", self_concat=self_concat, transposed=True)

    params = staticmethod(UP_COSTS["convt3"].params)  # plsearch.graph.costs: the one analytic count (no torch)
    macs = staticmethod(UP_COSTS["convt3"].macs)
    out_width = staticmethod(UP_COSTS["convt3"].out_width)


@register_up("convt2_half")
class UpConvT2Half(UpUnit):
    """U-Net's up unit: 2x2 transposed conv, stride 2 (halves the width in the U-Net preset)."""

    def __init__(self, cin: int, cout: int, dims: int) -> None:
        super().__init__(cin, cout, dims)
        self.conv = conv_transpose_nd(dims)(cin, cout, 2, stride=2)

    def make_state(self) -> nn.Module:
        return nn.Identity()

    def forward(self, x: torch.Tensor, state: nn.Module) -> torch.Tensor:
        return self.conv(x)

    def fast_forward(self, x: torch.Tensor, state: nn.Module, training: bool) -> torch.Tensor:
        return self.conv.forward(x)

    params = staticmethod(UP_COSTS["convt2_half"].params)  # plsearch.graph.costs: the one analytic count (no torch)
    macs = staticmethod(UP_COSTS["convt2_half"].macs)
    out_width = staticmethod(UP_COSTS["convt2_half"].out_width)


class Head(Block):
    """1x1 conv to class logits; one per stage."""

    def __init__(self, cin: int, cout: int, dims: int) -> None:
        super().__init__(cin, cout, dims)
        self.conv = conv_nd(dims)(cin, cout, 1)

    def make_state(self) -> nn.Module:
        return nn.Identity()

    def forward(self, x: torch.Tensor, state: nn.Module) -> torch.Tensor:
        return self.conv(x)

    def fast_forward(self, x: torch.Tensor, state: nn.Module, training: bool) -> torch.Tensor:
        return fast_conv(x, self.conv.weight, self.conv.bias, 0, training)

    params = staticmethod(HEAD_COST.params)  # plsearch.graph.costs: the one analytic count (no torch)
    macs = staticmethod(HEAD_COST.macs)
