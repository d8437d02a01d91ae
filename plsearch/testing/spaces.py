"""The space contract: a search space parses, and every corner that is a valid config runs.

Corners (all low, all high, each axis at each end) are where a space's combinations break. A corner
may be an invalid combination (the search records it as infeasible), but at least one must be
valid, and every valid one must build a model whose parameters ``estimate`` predicts and whose
forward runs, at a tiny width and the smallest image the network accepts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plsearch.testing.common import require


def check_space(space: Any, *, base_width: int = 2, forward: bool = True) -> list[dict[str, Any]]:
    """Check a space (a ``SearchSpace`` or a YAML path); returns the valid corners' params.

    Raises ``ContractError`` naming the corner that broke.
    """
    import torch

    from plsearch.config.gate import StrideError, resolve
    from plsearch.config.schema import ConfigError
    from plsearch.graph.wiring import estimate
    from plsearch.nn.model import PLNet
    from plsearch.search.space import SearchSpace, load_space

    sp: SearchSpace = space if isinstance(space, SearchSpace) else load_space(Path(space))
    valid: list[dict[str, Any]] = []
    for params in sp.corner_params():
        try:
            cfg = sp.build(params)
        except StrideError:
            cfg = None  # the fidelity's images are too small for this corner: infeasible, fine
        except ConfigError:
            continue
        if cfg is None:
            continue
        valid.append(params)
        if not forward:
            continue
        small = resolve(cfg, {"model.base_width": base_width, "data.image_size": max(8, cfg.model.total_stride())})
        m = small.model
        torch.manual_seed(0)
        model = PLNet.from_config(m)
        n = sum(p.numel() for p in model.parameters() if p.requires_grad)
        size = small.data.image_size
        require(estimate(m, size).params == n, f"space {sp.name}, corner {params}: estimate disagrees with the model")
        x = torch.randn(2, m.in_channels, *([size] * m.spatial_dims))  # 2: BatchNorm needs two values
        outs = model.train()(x)
        require(
            len(outs) == m.stages and all(o.shape[2:] == x.shape[2:] for o in outs),
            f"space {sp.name}, corner {params}: the training forward returned {[tuple(o.shape) for o in outs]}",
        )
        require(
            all(bool(torch.isfinite(o).all()) for o in outs), f"space {sp.name}, corner {params}: non-finite output"
        )
    require(valid, f"space {sp.name}: no corner is a valid config; every trial at the extremes would be infeasible")
    return valid
