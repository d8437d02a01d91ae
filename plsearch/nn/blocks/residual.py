"""A pre-projection residual unit (ResNet basic block with a 1x1 projection when widths differ)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from plsearch.config.registry import register_block
from plsearch.graph.costs import BLOCK_COSTS
from plsearch.nn.blocks.base import Block, FusedConv, batch_norm, conv_nd, fast_conv, fold_conv_bn, norm_nd


@register_block("residual")
class ResidualUnit(Block):
    """conv-BN-ReLU-conv-BN plus identity (or 1x1 conv-BN) shortcut, then ReLU.

    Twice the convs of ``plconv`` per unit: a deeper unit at the same wiring, for the search.
    """

    def __init__(self, cin: int, cout: int, dims: int) -> None:
        super().__init__(cin, cout, dims)
        conv = conv_nd(dims)
        self.conv1 = conv(cin, cout, 3, padding=1, bias=False)
        self.conv2 = conv(cout, cout, 3, padding=1, bias=False)
        self.proj = conv(cin, cout, 1, bias=False) if cin != cout else None

    def input_convs(self) -> list[nn.Module]:
        return [self.conv1] + ([self.proj] if self.proj is not None else [])

    def make_state(self) -> nn.Module:
        norm = norm_nd(self.dims)
        n = 3 if self.proj is not None else 2
        return nn.ModuleList([norm(self.cout) for _ in range(n)])

    def forward(self, x: torch.Tensor, state: nn.Module) -> torch.Tensor:
        y = F.relu(state[0](self.conv1(x)), inplace=True)
        y = state[1](self.conv2(y))
        skip = x if self.proj is None else state[2](self.proj(x))
        return F.relu(y + skip)

    def fast_forward(self, x: torch.Tensor, state: nn.Module, training: bool) -> torch.Tensor:
        y = F.relu(batch_norm(fast_conv(x, self.conv1.weight, None, 1, training), state[0]), inplace=True)
        y = batch_norm(fast_conv(y, self.conv2.weight, None, 1, training), state[1])
        skip = x if self.proj is None else batch_norm(fast_conv(x, self.proj.weight, None, 0, training), state[2])
        return F.relu(y + skip)

    def fuse(self, state: nn.Module, *, self_concat: bool = False) -> nn.Module | None:
        d = self.dims
        if self_concat and self.proj is None:
            return None  # identity skip of [x, x]: leave it unfused
        proj = (
            None
            if self.proj is None
            else fold_conv_bn(self.proj, state[2], dims=d, post="none", self_concat=self_concat)
        )
        return _FusedResidual(
            fold_conv_bn(self.conv1, state[0], dims=d, post="relu", self_concat=self_concat),
            fold_conv_bn(self.conv2, state[1], dims=d, post="none"),
            proj,
        )

    params = staticmethod(BLOCK_COSTS["residual"].params)  # plsearch.graph.costs: the one analytic count (no torch)
    macs = staticmethod(BLOCK_COSTS["residual"].macs)


class _FusedResidual(nn.Module):
    """A ``ResidualUnit`` application with its norms folded into the convs (inference only)."""

    def __init__(self, conv1: FusedConv, conv2: FusedConv, proj: FusedConv | None) -> None:
        super().__init__()
        self.conv1, self.conv2, self.proj = conv1, conv2, proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return F.relu_(y + (x if self.proj is None else self.proj(x)))
