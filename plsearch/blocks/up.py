"""Up-sampling units and the 1x1 prediction head (fixed kinds, not searched through the registry)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from plsearch.blocks.base import Block, batch_norm, conv_nd, conv_transpose_nd, fast_conv, fold_conv_bn, norm_nd


class UpConvT3(Block):
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
        return batch_norm(F.relu(self.conv(x), inplace=True), state)

    def fuse(self, state: nn.Module, *, self_concat: bool = False) -> nn.Module:
        return fold_conv_bn(self.conv, state, dims=self.dims, post="clamp", self_concat=self_concat,
                            transposed=True)

    @staticmethod
    def params(cin: int, cout: int, dims: int) -> tuple[int, int]:
        return cin * cout * 3**dims + cout, 2 * cout

    @staticmethod
    def macs(cin: int, cout: int, dims: int, out_voxels: int) -> int:
        in_voxels = out_voxels // 2**dims  # fvcore counts transposed convs on the input grid
        return in_voxels * cin * cout * 3**dims + 2 * out_voxels * cout


class UpConvT2Half(Block):
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

    @staticmethod
    def params(cin: int, cout: int, dims: int) -> tuple[int, int]:
        return cin * cout * 2**dims + cout, 0

    @staticmethod
    def macs(cin: int, cout: int, dims: int, out_voxels: int) -> int:
        return (out_voxels // 2**dims) * cin * cout * 2**dims


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

    @staticmethod
    def params(cin: int, cout: int, dims: int) -> tuple[int, int]:
        return cin * cout + cout, 0

    @staticmethod
    def macs(cin: int, cout: int, dims: int, out_voxels: int) -> int:
        return out_voxels * cin * cout
