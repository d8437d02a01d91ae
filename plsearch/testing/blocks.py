"""The block contract: what ``PLNet`` and ``plsearch.graph.wiring.estimate`` rely on from a registered block.

A block maps ``(b, cin, *spatial) -> (b, cout, *spatial)`` at any size (odd ones too), keeps its
weights in the block and its norms in per-application ``make_state()`` modules, gives every
parameter a gradient, is deterministic in eval mode, can silence input channels
(``zero_input_channels``, the zero-initialised backward skips), and answers ``params`` and ``macs``
analytically, equal to what the built module holds and what fvcore counts.
"""

from __future__ import annotations

from typing import Any

from plsearch.testing.common import require


def _apply(block: Any, state: Any) -> Any:
    from torch import nn

    class Applied(nn.Module):  # one application, as a module fvcore can trace
        def __init__(self) -> None:
            super().__init__()
            self.block, self.state = block, state

        def forward(self, x: Any) -> Any:
            return self.block(x, self.state)

    return Applied()


def check_block(
    name_or_cls: str | Any,
    *,
    dims: tuple[int, ...] = (2, 3),
    channels: tuple[tuple[int, int], ...] = ((4, 4), (6, 3)),
    size: int = 7,
    macs: bool = True,
) -> None:
    """Check a block class (or registered name) against the contract; raises ``ContractError``.

    Args:
        dims: spatial dimensionalities to try (2D and 3D).
        channels: ``(cin, cout)`` pairs, equal and different.
        size: spatial size of the test input (odd: blocks keep the resolution).
        macs: also compare ``macs`` with fvcore's count of one eval-mode application.
    """
    import torch

    from plsearch.config.registry import get_block

    cls: Any = get_block(name_or_cls) if isinstance(name_or_cls, str) else name_or_cls
    who = getattr(cls, "block_name", cls.__name__)
    for d in dims:
        for cin, cout in channels:
            torch.manual_seed(0)
            block = cls(cin, cout, d)
            states = [block.make_state(), block.make_state()]
            x = torch.randn(2, cin, *([size] * d))
            ys = [block(x, s) for s in states]
            want = (2, cout, *([size] * d))
            require(
                all(tuple(y.shape) == want for y in ys),
                f"{who} ({d}D, {cin}->{cout}): output {tuple(ys[0].shape)}, expected {want}",
            )
            require(all(torch.isfinite(y).all() for y in ys), f"{who} ({d}D): non-finite output")
            shared, per_app = cls.params(cin, cout, d)
            counted = sum(p.numel() for p in block.parameters())
            require(
                shared == counted, f"{who}.params({cin}, {cout}, {d}) says {shared} shared, the block holds {counted}"
            )
            held = sum(p.numel() for p in states[0].parameters())
            require(per_app == held, f"{who}.params says {per_app} per application, make_state() holds {held}")
            require(
                not set(map(id, states[0].parameters())) & set(map(id, states[1].parameters())),
                f"{who}: two make_state() calls share parameters; each application needs its own",
            )
            sum(y.sum() for y in ys).backward()
            missing = [n for n, p in block.named_parameters() if p.grad is None]
            require(not missing, f"{who}: parameters without a gradient: {missing}")
            block.eval()
            for s in states:
                s.eval()
            with torch.no_grad():
                a, b = block(x, states[0]), block(x, states[0])
            require(torch.equal(a, b), f"{who}: eval mode is not deterministic")
            if cin != cout:  # a backward skip widens the input (cin != cout) and starts silent:
                half = slice(0, cin // 2)  # zero_input_channels makes the output ignore those channels
                block.zero_input_channels(half)
                noisy = x.clone()
                noisy[:, half] = torch.randn_like(noisy[:, half]) * 10
                with torch.no_grad():
                    same = torch.allclose(block(x, states[0]), block(noisy, states[0]), atol=1e-5)
                require(same, f"{who}.zero_input_channels({half}) leaves the output depending on those channels")
            if macs and (cin, cout) == channels[0]:  # one fvcore trace per dimensionality (traces are slow)
                from plsearch.nn.profile import count_macs

                counted_macs, _ = count_macs(_apply(block, states[0]).eval(), x[:1])
                voxels = size**d
                require(
                    counted_macs == cls.macs(cin, cout, d, voxels),
                    f"{who}.macs({cin}, {cout}, {d}, {voxels}) = {cls.macs(cin, cout, d, voxels)}, fvcore counts "
                    f"{counted_macs}",
                )
