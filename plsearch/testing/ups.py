"""The up unit contract: what ``PLNet`` and ``plsearch.graph.wiring`` rely on from a registered up unit.

An up unit (``plsearch.config.registry.register_up``, a ``plsearch.nn.blocks.UpUnit``) maps
``(b, below, *s)`` to ``(b, out_width(below, here), *2s)``, keeps its weights in the unit and its norms in
``make_state()``, gives every parameter a gradient, is deterministic in eval mode, and answers ``params``,
``macs`` and ``out_width`` before it is built, equal to the built module and to what fvcore counts.
"""

from __future__ import annotations

from typing import Any

from plsearch.testing.blocks import _apply
from plsearch.testing.common import require


def check_up(
    name_or_cls: str | Any,
    *,
    dims: tuple[int, ...] = (2, 3),
    widths: tuple[tuple[int, int], ...] = ((8, 4), (4, 4)),
    size: int = 4,
    macs: bool = True,
) -> None:
    """Check an up unit class (or registered name, ``register_up``) against the contract; raises ``ContractError``.

    An up unit maps ``(b, below, *s)`` to ``(b, out_width(below, here), *2s)``, keeps its weights in the
    unit and its norms in ``make_state()``, gives every parameter a gradient, is deterministic in eval mode,
    and answers ``params``, ``macs`` and ``out_width`` before it is built, equal to the built module and fvcore.

    Args:
        widths: ``(below, here)`` pairs: the width of the level it reads and of the level it lands on.
        size: spatial size of the input (the output is twice it).
    """
    import torch

    from plsearch.config.registry import get_up

    cls: Any = get_up(name_or_cls) if isinstance(name_or_cls, str) else name_or_cls
    who = getattr(cls, "up_name", "") or cls.__name__
    for d in dims:
        for below, here in widths:
            cout = cls.out_width(below, here)
            require(
                isinstance(cout, int) and not isinstance(cout, bool) and cout >= 1,
                f"{who}.out_width({below}, {here}) = {cout!r}; expected a positive int",
            )
            torch.manual_seed(0)
            unit = cls(below, cout, d)
            state = unit.make_state()
            x = torch.randn(2, below, *([size] * d))
            y = unit(x, state)
            want = (2, cout, *([2 * size] * d))
            require(tuple(y.shape) == want, f"{who} ({d}D, {below}->{cout}): output {tuple(y.shape)}, expected {want}")
            require(bool(torch.isfinite(y).all()), f"{who} ({d}D): non-finite output")
            shared, per_app = cls.params(below, cout, d)
            counted = sum(p.numel() for p in unit.parameters())
            require(
                shared == counted, f"{who}.params({below}, {cout}, {d}) says {shared} shared, the unit holds {counted}"
            )
            held = sum(p.numel() for p in state.parameters())
            require(per_app == held, f"{who}.params says {per_app} per application, make_state() holds {held}")
            y.sum().backward()
            missing = [n for n, p in unit.named_parameters() if p.grad is None]
            require(not missing, f"{who}: parameters without a gradient: {missing}")
            unit.eval()
            state.eval()
            with torch.no_grad():
                require(torch.equal(unit(x, state), unit(x, state)), f"{who}: eval mode is not deterministic")
            if macs and (below, here) == widths[0]:
                from plsearch.nn.profile import count_macs

                counted_macs, _ = count_macs(_apply(unit, state).eval(), x[:1])
                voxels = (2 * size) ** d
                require(
                    counted_macs == cls.macs(below, cout, d, voxels),
                    f"{who}.macs({below}, {cout}, {d}, {voxels}) = {cls.macs(below, cout, d, voxels)}, fvcore counts "
                    f"{counted_macs}",
                )
