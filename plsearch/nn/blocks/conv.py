"""The paper's conv unit (BiO-Net order: conv with bias, ReLU, BN) and the common conv-BN-ReLU."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from plsearch.config.registry import register_block
from plsearch.graph.costs import BLOCK_COSTS
from plsearch.nn.blocks.base import Block, batch_norm, conv_fn, conv_nd, fast_conv, fold_conv_bn, fold_halves, norm_nd


@register_block("plconv")
class PLConv(Block):
    """3x3 conv (bias) -> ReLU -> BN, as PL-Net/BiO-Net; needed to reproduce the paper's counts."""

    def __init__(self, cin: int, cout: int, dims: int) -> None:
        super().__init__(cin, cout, dims)
        self.conv = conv_nd(dims)(cin, cout, 3, padding=1, bias=True)
        nn.init.kaiming_normal_(self.conv.weight, nonlinearity="relu")  # Keras he_normal
        nn.init.zeros_(self.conv.bias)

    def make_state(self) -> nn.Module:
        return norm_nd(self.dims)(self.cout)

    def forward(self, x: torch.Tensor, state: nn.Module) -> torch.Tensor:
        return state(F.relu(self.conv(x), inplace=True))

    def forward_self_concat(self, x: torch.Tensor, state: nn.Module) -> torch.Tensor:
        z = conv_fn(self.dims)(x, fold_halves(self.conv.weight), self.conv.bias, padding=1)
        return state(F.relu(z, inplace=True))

    def fast_forward(self, x: torch.Tensor, state: nn.Module, training: bool) -> torch.Tensor:
        return batch_norm(F.relu(fast_conv(x, self.conv.weight, self.conv.bias, 1, training), inplace=True), state)

    def fast_self_concat(self, x: torch.Tensor, state: nn.Module, training: bool) -> torch.Tensor:
        z = fast_conv(x, fold_halves(self.conv.weight), self.conv.bias, 1, training)
        return batch_norm(F.relu(z, inplace=True), state)

    def fuse(self, state: nn.Module, *, self_concat: bool = False) -> nn.Module:
        # BN after ReLU: a * relu(z) + b = max(a * z + b, b) for a >= 0 (exact; see FusedConv)
        return fold_conv_bn(self.conv, state, dims=self.dims, post="clamp", self_concat=self_concat)

    params = staticmethod(BLOCK_COSTS["plconv"].params)  # plsearch.graph.costs: the one analytic count (no torch)
    macs = staticmethod(BLOCK_COSTS["plconv"].macs)


@register_block("convbnrelu")
class ConvBNReLU(Block):
    """3x3 conv (no bias) -> BN -> ReLU: the classic U-Net's unit in most PyTorch code."""

    def __init__(self, cin: int, cout: int, dims: int) -> None:
        super().__init__(cin, cout, dims)
        self.conv = conv_nd(dims)(cin, cout, 3, padding=1, bias=False)

    def make_state(self) -> nn.Module:
        return norm_nd(self.dims)(self.cout)

    def forward(self, x: torch.Tensor, state: nn.Module) -> torch.Tensor:
        return F.relu(state(self.conv(x)), inplace=True)

    def forward_self_concat(self, x: torch.Tensor, state: nn.Module) -> torch.Tensor:
        return F.relu(state(conv_fn(self.dims)(x, fold_halves(self.conv.weight), None, padding=1)), inplace=True)

    def fast_forward(self, x: torch.Tensor, state: nn.Module, training: bool) -> torch.Tensor:
        return F.relu(batch_norm(fast_conv(x, self.conv.weight, None, 1, training), state), inplace=True)

    def fast_self_concat(self, x: torch.Tensor, state: nn.Module, training: bool) -> torch.Tensor:
        return F.relu(batch_norm(fast_conv(x, fold_halves(self.conv.weight), None, 1, training), state), inplace=True)

    def fuse(self, state: nn.Module, *, self_concat: bool = False) -> nn.Module:
        return fold_conv_bn(self.conv, state, dims=self.dims, post="relu", self_concat=self_concat)

    params = staticmethod(BLOCK_COSTS["convbnrelu"].params)  # plsearch.graph.costs: the one analytic count (no torch)
    macs = staticmethod(BLOCK_COSTS["convbnrelu"].macs)
