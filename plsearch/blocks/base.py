"""The block contract: shared weights plus per-application state.

IPL runs one level's convs in several passes and stages with shared weights, but every
application gets its own BatchNorm (BiO-Net: "BNs are NOT reusable"). A block therefore owns
only the shared weights; ``make_state()`` returns a fresh module holding what one application
owns (its norms), and ``forward(x, state)`` applies the block with that state.

``params(cin, cout, dims)`` and ``macs(...)`` answer analytically, so a wiring can be costed
without building torch modules; a test holds them equal to the built model and to fvcore.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_nd(dims: int) -> type[nn.Module]:
    return {2: nn.Conv2d, 3: nn.Conv3d}[dims]


def conv_transpose_nd(dims: int) -> type[nn.Module]:
    return {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[dims]


def norm_nd(dims: int) -> type[nn.Module]:
    return {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims]


class Block(nn.Module):
    """A conv unit mapping ``(b, cin, *s)`` to ``(b, cout, *s)`` at the same resolution."""

    block_name: str = ""

    def __init__(self, cin: int, cout: int, dims: int) -> None:
        super().__init__()
        self.cin, self.cout, self.dims = cin, cout, dims

    def make_state(self) -> nn.Module:
        """Per-application parameters and buffers (norms); one per (stage, pass) use."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, state: nn.Module) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    @staticmethod
    def params(cin: int, cout: int, dims: int) -> tuple[int, int]:
        """(shared trainable params, trainable params of one application's state)."""
        raise NotImplementedError

    @staticmethod
    def macs(cin: int, cout: int, dims: int, out_voxels: int) -> int:
        """Multiply-adds for one application in eval mode, counted as fvcore does."""
        raise NotImplementedError
